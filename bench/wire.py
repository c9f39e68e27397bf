"""Quote wire formats: what a tick costs to encode, and to decode and validate, per format.

The same FX ticks (ts, strike, forward, mid_vol, seq and four text fields) in:

* one :class:`schemas.Quote` per message (msgpack; the single-quote path);
* :class:`schemas.QuoteBatch` of 1024 encoded quotes (today's batch);
* :class:`schemas.QuoteColumns` of 4096 rows: raw little-endian buffers in msgpack, decoded
  without a copy and validated row by row, vectorised (:meth:`QuoteColumns.problems`);
* the same columns as an Arrow IPC stream (pyarrow, dictionary-encoded text), decoded to the
  same arrays and put through the same validation;
* the same wire map as (c) encoded and decoded by msgspec instead of msgpack-python.

Decode includes validation on every side: each yields the valid rows and the reason of each
invalid one. Prints ticks/s and bytes a tick per format, and appends one JSON line to
``bench/results/wire.jsonl``.

    .venv/bin/python bench/wire.py [--ticks 200000]

pyarrow and msgspec are measured only when installed (``pip install pyarrow msgspec``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from bench.quantlib_peer import write_record
from schemas import Quote, QuoteBatch, QuoteColumns, SchemaError, decode, encode
from schemas.columns import Text

ROWS = 4096  # rows of a columns message
BATCH = 1024  # quotes of a QuoteBatch


def ticks(n: int, seed: int = 0) -> QuoteColumns:
    rng = np.random.default_rng(seed)
    pairs = np.array(["EURUSD", "USDJPY", "GBPUSD", "AUDUSD", "USDCHF"])
    expiries = np.array(["2030-01-01", "2030-02-01", "2030-03-01", "2030-06-01"])
    return QuoteColumns.of(
        ts=1.7e9 + np.arange(n) * 2e-5,
        underlying=pairs[rng.integers(0, pairs.size, n)],
        asset_class=["fx"] * n,
        expiry=expiries[rng.integers(0, expiries.size, n)],
        strike=rng.uniform(0.8, 1.4, n),
        source=["sim"] * n,
        seq=np.arange(n),
        forward=np.full(n, 1.1),
        mid_vol=rng.uniform(0.05, 0.2, n),
    )


def _best_of(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _measure(items: list, encode_one, decode_one) -> dict:
    """Seconds to encode every item and to decode (and check) every message, and bytes."""
    encoded: list[bytes] = []

    def encode_all():
        encoded[:] = [encode_one(item) for item in items]

    def decode_all():
        for value in encoded:
            decode_one(value)

    encode_s = _best_of(encode_all)
    return {"encode_s": encode_s, "decode_s": _best_of(decode_all), "bytes": sum(map(len, encoded))}


def _quote(value: bytes) -> None:
    with contextlib.suppress(SchemaError):  # an invalid quote is counted, never raised
        decode(value, Quote)


def single(quotes: list[Quote]) -> dict:
    return _measure(quotes, encode, _quote)


def batches(quotes: list[Quote]) -> dict:
    def decode_one(value: bytes) -> None:
        for item in decode(value, QuoteBatch).items:
            _quote(item)

    chunks = [quotes[i : i + BATCH] for i in range(0, len(quotes), BATCH)]
    return _measure(chunks, lambda c: encode(QuoteBatch(tuple(map(encode, c)))), decode_one)


def columns_msgpack(parts: list[QuoteColumns]) -> dict:
    return _measure(parts, encode, lambda v: decode(v, QuoteColumns).problems())


def columns_msgspec(parts: list[QuoteColumns]) -> dict | None:
    try:
        import msgspec
    except ImportError:
        return None
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()
    return _measure(
        parts,
        lambda p: encoder.encode({"type": p.TYPE, "v": p.VERSION, **p.to_wire()}),
        lambda v: QuoteColumns.from_wire(decoder.decode(v)).problems(),
    )


def columns_arrow(parts: list[QuoteColumns]) -> dict | None:
    try:
        import pyarrow as pa
    except ImportError:
        return None

    def encode_one(p: QuoteColumns) -> bytes:
        arrays = {k: pa.array(a) for k, a in p.numbers.items() if not np.isnan(a).all()}
        arrays |= {
            k: pa.DictionaryArray.from_arrays(pa.array(t.codes), pa.array(t.values))
            for k, t in p.text.items()
        }
        batch = pa.RecordBatch.from_pydict(arrays)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        return sink.getvalue().to_pybytes()

    def decode_one(value: bytes) -> None:
        batch = pa.ipc.open_stream(value).read_next_batch()
        n, names = batch.num_rows, batch.schema.names
        numbers = {  # an all-absent column was left out: NaN (only floats can be all absent)
            name: batch.column(name).to_numpy(zero_copy_only=False)
            if name in names
            else np.full(n, np.nan)
            for name in parts[0].numbers
        }
        text = {
            name: Text(
                tuple(batch.column(name).dictionary.to_pylist()),
                batch.column(name).indices.to_numpy(),
            )
            for name in parts[0].text
        }
        QuoteColumns(n, numbers, text).problems()

    return _measure(parts, encode_one, decode_one)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "wire.jsonl"
    )
    args = parser.parse_args(argv)
    data = ticks(args.ticks)
    quotes = data.quotes()
    parts = [data.take(slice(i, i + ROWS)) for i in range(0, data.n, ROWS)]
    formats = {
        "quote per message": single(quotes),
        f"quote_batch of {BATCH}": batches(quotes),
        f"quote_columns of {ROWS}, msgpack": columns_msgpack(parts),
        f"quote_columns of {ROWS}, msgspec": columns_msgspec(parts),
        f"columns of {ROWS}, Arrow IPC": columns_arrow(parts),
    }
    n = args.ticks
    print(f"{n:,} FX ticks; {platform.machine()}, {os.cpu_count()} cores; one core, best of 3")
    print(f"{'format':<36}{'encode ticks/s':>16}{'decode+check ticks/s':>22}{'bytes/tick':>12}")
    record = {"bench": "wire", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record |= {"ticks": n, "cores": os.cpu_count(), "formats": {}}
    for name, figures in formats.items():
        if figures is None:
            print(f"{name:<36}{'not installed':>16}")
            continue
        row = {
            "encode_ticks_per_s": n / figures["encode_s"],
            "decode_ticks_per_s": n / figures["decode_s"],
            "bytes_per_tick": figures["bytes"] / n,
        }
        record["formats"][name] = row
        print(
            f"{name:<36}{row['encode_ticks_per_s']:>16,.0f}{row['decode_ticks_per_s']:>22,.0f}"
            f"{row['bytes_per_tick']:>12.1f}"
        )
    base = record["formats"]["quote per message"]["decode_ticks_per_s"]
    ours = record["formats"][f"quote_columns of {ROWS}, msgpack"]["decode_ticks_per_s"]
    print(f"columns (msgpack) over one quote a message, decode+check: {ours / base:.0f}x "
          f"({ours:,.0f} / {base:,.0f})")  # fmt: skip
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
