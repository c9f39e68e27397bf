"""Tick files as a new user brings them: any column order, other names, ISO or epoch times, no
seq, CSV, JSON lines or Parquet; every refused row named by number and field."""

import contextlib
import csv
import json

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import Quote, encode
from streams.feed.tickfile import TickFileError, read_tick_file

EPOCH = 1796205600.0  # 2026-12-02T10:00:00Z
ROWS = [  # time, K, iv, note: a user's own names, in their own order
    {"time": "2026-12-02T10:00:00Z", "K": "1.10", "iv": "0.08", "note": "ok"},
    {"time": "2026-12-02T11:00:00+01:00", "K": "1.15", "iv": "abc", "note": "iv is text"},
    {"time": str(EPOCH + 1), "K": "-1", "iv": "0.09", "note": "negative strike"},
    {"time": "2026-12-02 10:00:02", "K": "1.20", "iv": "", "note": "no vol"},
    {"time": "yesterday", "K": "1.25", "iv": "0.1", "note": "bad time"},
    {"time": "2026-12-02T10:00:03.5", "K": "1.30", "iv": "0.11", "note": "ok, naive is UTC"},
]
FIXED = {"underlying": "EURUSD", "asset_class": "fx", "expiry": "2027-03-01", "source": "desk"}
MAP = {"ts": "time", "strike": "K", "mid_vol": "iv"}


def _expected():
    return [
        Quote(ts=EPOCH, strike=1.10, mid_vol=0.08, forward=1.1, seq=0, **FIXED),
        Quote(ts=EPOCH + 3.5, strike=1.30, mid_vol=0.11, forward=1.1, seq=5, **FIXED),
    ]


def _rows():
    return [{**r, **FIXED, "forward": "1.1"} for r in ROWS]


def _check(ticks):
    assert ticks.total == 6 and ticks.ignored == ["note"]
    assert ticks.quotes() == _expected()
    refused = [(p.row, p.field, p.reason) for p in ticks.rejected]
    assert refused == [
        (2, "mid_vol", "wrong_type"),
        (3, "strike", "out_of_range"),
        (4, "mid_vol", "missing_field"),
        (5, "ts", "wrong_type"),
    ]
    assert "abc" in ticks.rejected[0].detail and "yesterday" in ticks.rejected[3].detail


def test_csv_in_any_column_order_with_other_names_iso_times_and_no_seq(tmp_path):
    path = tmp_path / "ticks.csv"
    rows = _rows()
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted(rows[0], reverse=True))
        writer.writeheader()
        writer.writerows(rows)
    _check(read_tick_file(path, MAP))


def test_json_lines_with_a_column_of_mixed_types(tmp_path):
    path = tmp_path / "ticks.jsonl"
    rows = _rows()
    for r in rows:  # numbers as numbers where they are numbers: "abc" makes iv mixed
        for k in ("K", "iv", "forward"):
            with contextlib.suppress(ValueError):
                r[k] = float(r[k])
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _check(read_tick_file(path, MAP))


def test_parquet_with_typed_columns(tmp_path):
    path = tmp_path / "ticks.parquet"
    rows = _rows()
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    pq.write_table(table, path)
    _check(read_tick_file(path, MAP))


def test_a_missing_column_names_the_columns_the_file_has(tmp_path):
    path = tmp_path / "ticks.csv"
    path.write_text("time,K,iv,underlying,asset_class,expiry,source\n")
    with pytest.raises(
        TickFileError, match=r"no column for \['ts', 'strike'\].*\['K', 'iv', 'time'\]"
    ):
        read_tick_file(path)
    with pytest.raises(TickFileError, match="not quote fields"):
        read_tick_file(path, {"vol": "iv"})
    with pytest.raises(TickFileError, match=r"does not have"):
        read_tick_file(path, {"ts": "timestamp"})
    with pytest.raises(TickFileError, match="unknown tick file type"):
        read_tick_file(tmp_path / "ticks.xlsx")


def test_msgpack_streams_are_checked_quote_by_quote(tmp_path):
    good = _expected()
    path = tmp_path / "ticks.msgpack"
    path.write_bytes(
        b"".join(msgpack.unpackb(encode(q)) and encode(q) for q in good)
        + msgpack.packb({"type": "quote", "v": 1, "ts": "now"})
    )
    ticks = read_tick_file(path)
    assert ticks.quotes() == good and ticks.total == 3
    assert [(p.row, p.reason) for p in ticks.rejected] == [(3, "wrong_type")]
