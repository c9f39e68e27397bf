"""Tick files as a new user brings them: any column order, other names, ISO or epoch times, no
seq, CSV, JSON lines or Parquet; every refused row named by number and field."""

import contextlib
import csv
import dataclasses
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


def test_json_lines_whose_dates_pyarrow_would_read_as_timestamps(tmp_path):
    # a clean file: numbers as numbers, ISO times and expiries that pyarrow's reader types as
    # timestamps (the expiry then read back as "2027-03-01 00:00:00", refused as no date)
    path = tmp_path / "ticks.jsonl"
    rows = [
        {**FIXED, "time": "2026-12-02T10:00:00Z", "K": 1.1, "iv": 0.08, "forward": 1.1},
        {**FIXED, "time": "2026-12-02T10:00:03.5Z", "K": 1.3, "iv": 0.11, "forward": 1.1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ticks = read_tick_file(path, MAP)
    assert ticks.rejected == [] and ticks.total == 2
    assert ticks.quotes() == [dataclasses.replace(q, seq=i) for i, q in enumerate(_expected())]


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


# a desk's plain file: no source or asset_class column, FX and equity rows, its own order
PLAIN = [
    {"forward": "1.1", "mid_vol": "0.08"},  # fx
    {"spot": "5000", "rate": "0.04", "dividend": "0.015", "mid_vol": "0.2"},  # equity, a vol
    {"spot": "5000", "rate": "0.04", "dividend": "0.015", "mid_price": "150", "call": "true"},
    {"forward": "1.1", "bid_vol": "0.07", "ask_vol": "0.09"},  # fx, bid and ask
    {"forward": "1.1", "spot": "1.1", "mid_vol": "0.08"},  # fits both
    {"mid_vol": "0.08"},  # fits neither
    {"forward": "1.1", "bid_vol": "0.07"},  # a forward but no vol
    {"spot": "5000", "rate": "0.04", "dividend": "0.015"},  # a spot but no vol or price
    {"forward": "5100", "spot": "5000", "rate": "0.04", "dividend": "0.015", "mid_price": "150",
     "call": "false"},  # fx needs a vol: only equity fits
]  # fmt: skip
PLAIN_COLUMNS = (
    "mid_price", "call", "expiry", "ask_vol", "strike", "spot", "bid_vol", "underlying",
    "dividend", "time", "rate", "mid_vol", "forward",
)  # fmt: skip


def _plain_rows():
    return [
        {"time": f"2026-12-02T10:00:0{i}Z", "underlying": "SPX" if "spot" in r else "EURUSD",
         "expiry": "2027-03-01", "strike": "5000" if "spot" in r else "1.1", **r}
        for i, r in enumerate(PLAIN)
    ]  # fmt: skip


def _write(path, rows):
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=PLAIN_COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows)
    else:  # absent cells as nulls
        pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in PLAIN_COLUMNS}), path)


@pytest.mark.parametrize("name", ["ticks.csv", "ticks.parquet"])
def test_a_plain_file_takes_its_source_from_its_name_and_asset_class_from_its_fields(
    tmp_path, name
):
    path = tmp_path / "desk" / name
    path.parent.mkdir()
    _write(path, _plain_rows())
    ticks = read_tick_file(path, {"ts": "time"})
    quotes = ticks.quotes()
    assert ticks.total == len(PLAIN) and ticks.ignored == []
    assert [(q.seq, q.asset_class) for q in quotes] == [
        (0, "fx"), (1, "equity"), (2, "equity"), (3, "fx"), (8, "equity")
    ]  # fmt: skip
    assert {q.source for q in quotes} == {name}  # the name, not the path
    assert quotes[0] == Quote(
        ts=EPOCH, underlying="EURUSD", asset_class="fx", expiry="2027-03-01", strike=1.1,
        source=name, seq=0, forward=1.1, mid_vol=0.08,
    )  # fmt: skip
    assert quotes[2].call is True and quotes[2].mid_price == 150 and quotes[2].ts == EPOCH + 2
    refused = {p.row: p for p in ticks.rejected}
    assert sorted(refused) == [5, 6, 7, 8]
    assert all(p.field == "asset_class" for p in refused.values())
    assert refused[5].detail == (
        "cannot tell the asset class: it has both forward and spot; "
        "add an asset_class column (fx or equity)"
    )
    assert "neither a forward (fx) nor a spot (equity)" in refused[6].detail
    assert "a forward but no vol" in refused[7].detail
    assert "a spot but no vol or price" in refused[8].detail
    assert "row 5, field 'asset_class': cannot tell" in str(refused[5].error())


def test_an_ambiguous_row_alone_leaves_no_valid_tick(tmp_path):
    path = tmp_path / "ticks.csv"
    path.write_text(
        "ts,underlying,expiry,strike,forward,spot,mid_vol\n"
        "2026-12-02T10:00:00Z,EURUSD,2027-03-01,1.1,1.1,1.1,0.08\n"
    )
    ticks = read_tick_file(path)
    assert ticks.columns is None and ticks.quotes() == []
    assert [(p.row, p.field, p.reason) for p in ticks.rejected] == [
        (1, "asset_class", "missing_field")
    ]


def test_a_file_with_source_and_asset_class_columns_keeps_them(tmp_path):
    path = tmp_path / "ticks.csv"
    rows = [
        {**r, "source": "bbg", "asset_class": cls}
        for r, cls in zip(_plain_rows()[:4], ["fx", "equity", "equity", "equity"], strict=True)
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*PLAIN_COLUMNS, "source", "asset_class"])
        writer.writeheader()
        writer.writerows(rows)
    ticks = read_tick_file(path, {"ts": "time"})
    assert [(q.seq, q.asset_class, q.source) for q in ticks.quotes()] == [
        (0, "fx", "bbg"), (1, "equity", "bbg"), (2, "equity", "bbg")
    ]  # fmt: skip
    # an fx row called equity stays equity, and is refused as an equity quote would be
    assert [(p.row, p.field, p.detail) for p in ticks.rejected] == [
        (4, "spot", "an equity quote needs spot, rate, dividend")
    ]
