"""Hostile and malformed quote messages, of every kind a production desk sees, mixed into a
valid stream: each says what the worker must do with it (the dead-letter reasons it may get,
how many letters, or none: taken harmlessly)."""

from __future__ import annotations

import math
from typing import NamedTuple

import msgpack
import numpy as np

from schemas import Quote, QuoteColumns, encode
from schemas.bounds import price_bounds
from schemas.columns import MAX_COLUMN_ROWS


class Hostile(NamedTuple):
    """A message, the reasons its dead letters may give, and how many letters it makes (0: a
    message taken harmlessly; ``clean``, if any: the message the worker should act on as if
    ``value`` were it, e.g. a column message without its bad rows)."""

    kind: str
    value: bytes
    reasons: frozenset[str]
    letters: int
    clean: bytes | None = None


ANY = frozenset({"not_msgpack", "wrong_type", "unknown_type", "unknown_version", "missing_field",
                 "out_of_range", "not_finite", "unknown_field", "oversized", "crossed_quote",
                 "expired", "arbitrage"})  # fmt: skip


def _raw(q: Quote, **change) -> bytes:
    return msgpack.packb({"type": "quote", "v": 1, **q.to_wire(), **change}, use_bin_type=True)


def hostile(rng: np.random.Generator, good: list[Quote], equity: list[Quote]) -> Hostile:
    """One hostile message, of a kind drawn at random, made from the valid FX quotes ``good``
    already sent in the stream it is mixed into (a duplicate is one of them) and its index
    price quotes ``equity``."""
    q = good[int(rng.integers(len(good)))]
    kind = str(rng.choice(KINDS))
    if kind == "random_bytes":
        return Hostile(kind, rng.bytes(int(rng.integers(1, 300))), ANY, 1)
    if kind == "truncated":
        full = encode(q)
        return Hostile(kind, full[: int(rng.integers(1, len(full) - 1))], ANY, 1)
    if kind in ("nan", "inf"):
        value = math.nan if kind == "nan" else -math.inf if rng.random() < 0.5 else math.inf
        field = str(rng.choice(["strike", "forward", "bid_vol", "ts"]))
        return Hostile(
            kind, _raw(q, **{field: value}), frozenset({"not_finite", "out_of_range"}), 1
        )
    if kind == "crossed":
        return Hostile(kind, _raw(q, bid_vol=0.3, ask_vol=0.2), frozenset({"crossed_quote"}), 1)
    if kind == "unknown_version":
        return Hostile(kind, msgpack.packb({"type": "quote", "v": int(rng.integers(2, 99)),
                                            **q.to_wire()}), frozenset({"unknown_version"}), 1)  # fmt: skip
    if kind == "wrong_type":
        field = str(rng.choice(["strike", "ts", "expiry", "seq", "underlying"]))
        value = {"expiry": [1, 2], "underlying": 12345}.get(field, "1.1")
        return Hostile(kind, _raw(q, **{field: value}), frozenset({"wrong_type"}), 1)
    if kind == "huge_string":
        return Hostile(kind, _raw(q, source="x" * 100_000), frozenset({"oversized"}), 1)
    if kind == "expired":
        return Hostile(kind, _raw(q, expiry="2020-01-02"), frozenset({"expired"}), 1)
    if kind == "huge_batch":
        items = [encode(q)] * 20_000  # ~2 MB: past the 1 MB limit of a batch
        batch = msgpack.packb({"type": "quote_batch", "v": 1, "items": items})
        return Hostile(kind, batch, frozenset({"oversized"}), 1)
    if kind == "too_many_rows":
        n = MAX_COLUMN_ROWS + 1
        wire = QuoteColumns.from_quotes([q]).to_wire()
        wire["n"] = n
        value = msgpack.packb({"type": "quote_columns", "v": 1, **wire}, use_bin_type=True)
        return Hostile(kind, value, frozenset({"out_of_range", "wrong_type"}), 1)
    if kind == "mismatched_columns":
        rows = [good[int(i)] for i in rng.integers(len(good), size=5)]
        wire = QuoteColumns.from_quotes(rows).to_wire()
        name = str(rng.choice(["strike", "ts", "forward"]))
        wire["numbers"][name] = wire["numbers"][name][:-8]  # one value short
        value = msgpack.packb({"type": "quote_columns", "v": 1, **wire}, use_bin_type=True)
        return Hostile(kind, value, frozenset({"wrong_type"}), 1)
    if kind == "below_intrinsic":  # a call at half its intrinsic value
        e = equity[int(rng.integers(len(equity)))]
        strike = 0.8 * e.spot
        lower, _ = price_bounds(e.spot, strike, e.rate, e.dividend, e.time_to_expiry, True)
        value = _raw(e, strike=strike, call=True, mid_price=0.5 * float(lower), bid_price=None,
                     ask_price=None)  # fmt: skip
        return Hostile(kind, value, frozenset({"arbitrage"}), 1)
    if kind == "bad_rows":
        rows = [good[int(i)] for i in rng.integers(len(good), size=8)]
        rows.sort(key=lambda r: r.ts)
        columns = QuoteColumns.from_quotes(rows)
        bad = np.sort(rng.choice(8, size=int(rng.integers(1, 4)), replace=False))
        strike = columns.numbers["strike"].copy()
        strike[bad] = -1.0
        broken = QuoteColumns(columns.n, columns.numbers | {"strike": strike}, columns.text)
        keep = np.setdiff1d(np.arange(8), bad)
        return Hostile(kind, encode(broken), frozenset({"out_of_range"}), int(bad.size),
                       encode(columns.take(keep)))  # fmt: skip
    if kind == "stale":
        return Hostile(kind, encode(Quote(**{**q.__dict__, "ts": q.ts - 3600.0})),
                       frozenset({"stale"}), 1)  # fmt: skip
    if kind == "duplicate":  # a resend: the book already holds it
        return Hostile(kind, encode(q), frozenset(), 0, encode(q))
    if kind == "unknown_underlying":  # a name never seen: a new smile, taken
        fresh = Quote(**{**q.__dict__, "underlying": f"X{int(rng.integers(10**6)):06d}"})
        return Hostile(kind, encode(fresh), frozenset(), 0, encode(fresh))
    raise AssertionError(kind)


KINDS = ("random_bytes", "truncated", "nan", "inf", "crossed", "unknown_version", "wrong_type",
         "huge_string", "expired", "huge_batch", "too_many_rows", "mismatched_columns",
         "below_intrinsic", "bad_rows", "stale", "duplicate", "unknown_underlying")  # fmt: skip

__all__ = ["ANY", "KINDS", "Hostile", "hostile"]
