"""Quotes as columns: one typed array per field, thousands of ticks in one message.

A :class:`QuoteColumns` message carries ``n`` quotes with the fields of :class:`schemas.Quote`.
On the wire (msgpack) each numeric column is one little-endian buffer (``float64``; ``int64``
for ``seq``; ``int8`` for ``call``: 1 call, 0 put, -1 none) and each text column is its
distinct values plus one ``int32`` code per row, so a busy stream's message is mostly raw
numbers that decode without a copy. NaN marks an absent optional number; optional columns may
be left out entirely.

Decoding checks the message's shape (lengths, codes, column names) and refuses the whole message
when it is malformed. Each *row* is then checked by :meth:`QuoteColumns.problems`, vectorised,
against every rule of :meth:`schemas.Quote.checked` and :meth:`schemas.Quote.check` in the same
order, so a bad row gets the reason a single quote would get, plus its field and row index, and
its good neighbours go on (a property test holds the two equal).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from schemas import fields as f
from schemas.bounds import price_bounds
from schemas.daycount import YEAR_SECONDS, expiry_epoch
from schemas.errors import SchemaError
from schemas.messages import ASSET_CLASSES, Quote, arbitrage_detail, mid

__all__ = ["FLOAT_FIELDS", "MAX_COLUMN_ROWS", "TEXT_FIELDS", "QuoteColumns", "RowProblem"]

MAX_COLUMN_ROWS = 8192  # rows of one message: ~56 bytes a row for FX, within Kafka's 1 MB
TEXT_FIELDS = ("underlying", "asset_class", "expiry", "source")
FLOAT_FIELDS = (
    "ts", "strike", "forward", "bid_vol", "ask_vol", "mid_vol", "size", "open_interest",
    "spot", "rate", "dividend", "bid_price", "ask_price", "mid_price",
)  # fmt: skip
_REQUIRED_NUMBERS = ("ts", "strike", "seq")
_NONNEGATIVE = ("size", "open_interest")
_PRICES = ("bid_price", "ask_price", "mid_price")
_DTYPES = {"seq": np.dtype("<i8"), "call": np.dtype("i1")} | {
    name: np.dtype("<f8") for name in FLOAT_FIELDS
}


class RowProblem(NamedTuple):
    """Why row ``row`` of a :class:`QuoteColumns` is refused: a :class:`SchemaError` reason,
    the field it concerns, and a sentence."""

    row: int
    reason: str
    field: str
    detail: str

    def error(self) -> SchemaError:
        return SchemaError(self.reason, f"row {self.row}, field {self.field!r}: {self.detail}")


class Text(NamedTuple):
    """A dictionary-encoded text column: distinct ``values`` and one code per row."""

    values: tuple[str, ...]
    codes: np.ndarray  # int32

    def decoded(self) -> np.ndarray:
        return np.asarray(self.values, dtype=object)[self.codes]


@dataclass(frozen=True, eq=False)
class QuoteColumns:
    """``n`` quotes as columns (see the module doc). Build with :meth:`of` or
    :meth:`from_quotes`; read the valid rows with :meth:`problems` and :meth:`quotes`."""

    TYPE = "quote_columns"
    VERSION = 1

    n: int
    numbers: dict[str, np.ndarray]  # FLOAT_FIELDS, "seq", "call": every column present
    text: dict[str, Text]  # TEXT_FIELDS

    @classmethod
    def of(cls, **columns) -> QuoteColumns:
        """From one array (or list) per field: numbers with NaN (``call``: -1 or None) for
        absent values, text as strings. Required: ts, underlying, asset_class, expiry, strike,
        source, seq."""
        unknown = set(columns) - set(_DTYPES) - set(TEXT_FIELDS)
        if unknown:
            raise ValueError(f"unknown quote fields {sorted(unknown)}")
        missing = {*_REQUIRED_NUMBERS, *TEXT_FIELDS} - set(columns)
        if missing:
            raise ValueError(f"columns {sorted(missing)} are required")
        n = len(columns["ts"])
        numbers = {}
        for name, dtype in _DTYPES.items():
            if name not in columns:
                numbers[name] = _absent_column(name, n)
                continue
            values = columns[name]
            if name == "call":
                values = [-1 if v is None else int(v) for v in values]
            numbers[name] = np.ascontiguousarray(values, dtype=dtype)
        text = {}
        for name in TEXT_FIELDS:
            strings = list(columns[name])
            if not all(isinstance(v, str) for v in strings):
                raise ValueError(f"column {name!r} must hold strings")
            # object, not numpy's fixed-width str, which drops trailing NULs
            values, codes = np.unique(np.asarray(strings, dtype=object), return_inverse=True)
            text[name] = _text(name, [str(v) for v in values], codes.astype(np.int32))
        if any(a.shape != (n,) for a in numbers.values()) or any(
            t.codes.shape != (n,) for t in text.values()
        ):
            raise ValueError(f"every column must hold {n} rows (as 'ts')")
        return cls(n, numbers, text)

    @classmethod
    def from_quotes(cls, quotes: list[Quote]) -> QuoteColumns:
        """The quotes as one message, in order."""
        column = lambda name: [getattr(q, name) for q in quotes]  # noqa: E731
        floats = {name: [np.nan if v is None else v for v in column(name)] for name in FLOAT_FIELDS}
        text = {name: column(name) for name in TEXT_FIELDS}
        return cls.of(seq=column("seq"), call=column("call"), **floats, **text)

    @classmethod
    def concat(cls, parts: list[QuoteColumns]) -> QuoteColumns:
        """The rows of ``parts``, in order, as one message (text dictionaries merged)."""
        if len(parts) == 1:
            return parts[0]
        numbers = {k: np.concatenate([p.numbers[k] for p in parts]) for k in parts[0].numbers}
        text = {}
        for name in parts[0].text:
            index: dict[str, int] = {}
            codes = []
            for part in parts:
                column = part.text[name]
                lut = np.array([index.setdefault(v, len(index)) for v in column.values], np.int32)
                codes.append(lut[column.codes] if lut.size else column.codes)
            text[name] = Text(tuple(index), np.concatenate(codes))
        return cls(sum(p.n for p in parts), numbers, text)

    def take(self, rows) -> QuoteColumns:
        """The rows ``rows`` (a slice, indices or a mask) as a message of their own, each text
        column's dictionary cut to the values those rows use."""
        numbers = {k: np.ascontiguousarray(a[rows]) for k, a in self.numbers.items()}
        text = {k: _used(t, t.codes[rows]) for k, t in self.text.items()}
        return QuoteColumns(len(numbers["ts"]), numbers, text)

    def to_wire(self) -> dict:
        numbers = {
            name: a.tobytes()
            for name, a in self.numbers.items()
            if name in _REQUIRED_NUMBERS or not _absent(name, a).all()
        }
        text = {
            name: [list(t.values), t.codes.astype("<i4").tobytes()] for name, t in self.text.items()
        }
        return {"n": self.n, "numbers": numbers, "text": text}

    @classmethod
    def from_wire(cls, data: dict) -> QuoteColumns:
        known = {"type", "v", "n", "numbers", "text"}
        if set(data) - known:
            raise SchemaError(
                "unknown_field", f"quote_columns has unknown fields {f.listed(set(data) - known)}"
            )
        n = f.integer(data, "n")
        if not 1 <= n <= MAX_COLUMN_ROWS:
            raise SchemaError(
                "out_of_range", f"quote_columns holds 1 to {MAX_COLUMN_ROWS} rows, got {n}"
            )
        given, text_given = data.get("numbers"), data.get("text")
        if not isinstance(given, dict) or not isinstance(text_given, dict):
            raise SchemaError("wrong_type", "fields 'numbers' and 'text' must be maps")
        unknown = (set(given) - set(_DTYPES)) | (set(text_given) - set(TEXT_FIELDS))
        if unknown:
            raise SchemaError(
                "unknown_field", f"quote_columns has unknown columns {f.listed(unknown)}"
            )
        numbers = {}
        for name, dtype in _DTYPES.items():
            buffer = given.get(name)
            if buffer is None:
                if name in _REQUIRED_NUMBERS:
                    raise SchemaError("missing_field", f"column {name!r} is required")
                numbers[name] = _absent_wire(name)[:n]
                continue
            if not isinstance(buffer, bytes) or len(buffer) != n * dtype.itemsize:
                raise SchemaError(
                    "wrong_type",
                    f"column {name!r} must be {n} {dtype.name} values ({n * dtype.itemsize} bytes)",
                )
            numbers[name] = np.frombuffer(buffer, dtype)
        text = {}
        for name in TEXT_FIELDS:
            entry = text_given.get(name)
            if entry is None:
                raise SchemaError("missing_field", f"column {name!r} is required")
            ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
            if not ok or not isinstance(entry[1], bytes) or len(entry[1]) != 4 * n:
                raise SchemaError(
                    "wrong_type", f"column {name!r} must be [distinct values, {n} int32 codes]"
                )
            values, codes = entry[0], np.frombuffer(entry[1], "<i4")
            if not all(isinstance(v, str) for v in values):
                raise SchemaError("wrong_type", f"column {name!r} has values that are not strings")
            if n and (codes.min() < 0 or codes.max() >= len(values)):
                raise SchemaError(
                    "out_of_range", f"column {name!r} has codes outside its {len(values)} values"
                )
            text[name] = _text(name, values, codes)
        return cls(n, numbers, text)

    def problems(self) -> tuple[np.ndarray, list[RowProblem]]:
        """(valid rows as a boolean mask, the first problem of each invalid row, by row): the
        rules and order of :meth:`schemas.Quote.checked`, vectorised; expiry is judged at each
        row's own event time, as for a single quote."""
        found = _Found(self.n)
        num = self.numbers
        found.number(num["ts"], "ts", positive=True, below=f.MAX_TIMESTAMP, required=True)
        found.text(self.text["underlying"], "underlying", _name_rule)
        found.text(self.text["asset_class"], "asset_class", _asset_class_rule)
        found.text(self.text["expiry"], "expiry", _date_rule)
        found.number(num["strike"], "strike", positive=True, required=True)
        found.text(self.text["source"], "source", _source_rule)
        found.add(
            num["seq"] < 0,
            "out_of_range",
            "seq",
            lambda i: f"must not be negative, got {num['seq'][i]}",
        )
        for name in ("forward", "bid_vol", "ask_vol", "mid_vol"):
            found.number(num[name], name, positive=True)
        for name in _NONNEGATIVE:
            found.number(num[name], name, nonnegative=True)
        found.number(num["spot"], "spot", positive=True)
        found.number(num["rate"], "rate")
        found.number(num["dividend"], "dividend")
        for name in _PRICES:
            found.number(num[name], name, positive=True)
        call = num["call"]
        found.add(
            (call != -1) & (call != 0) & (call != 1),
            "wrong_type",
            "call",
            lambda i: f"must be true or false, got {call[i]}",
        )
        # Quote.check's cross-field rules
        for side in ("vol", "price"):
            bid, ask = num[f"bid_{side}"], num[f"ask_{side}"]
            found.add(
                bid > ask,
                "crossed_quote",
                f"bid_{side}",
                lambda i, b=bid, a=ask, s=side: f"bid_{s} {b[i]} > ask_{s} {a[i]}",
            )
        has = {k: ~np.isnan(num[k]) for k in FLOAT_FIELDS}
        has_vol = has["mid_vol"] | (has["bid_vol"] & has["ask_vol"])
        has_price = has["mid_price"] | (has["bid_price"] & has["ask_price"])
        asset = self.text["asset_class"]
        fx = (
            np.asarray([v == "fx" for v in asset.values], bool)[asset.codes]
            if asset.values
            else np.zeros(self.n, bool)
        )
        found.add(
            fx & ~has_vol,
            "missing_field",
            "mid_vol",
            lambda i: "a quote needs mid_vol, or bid_vol and ask_vol",
        )
        found.add(
            fx & ~has["forward"],
            "missing_field",
            "forward",
            lambda i: "an fx quote needs a forward",
        )
        equity = ~fx
        for k in ("spot", "rate", "dividend"):
            found.add(equity & ~has[k], "missing_field", k, lambda i: _equity_missing(has, i))
        found.add(
            equity & (has_vol == has_price), "missing_field", "mid_vol",
            lambda i: "an equity quote needs a vol (mid_vol, or bid_vol and ask_vol) or a price "
            "(mid_price, or bid_price and ask_price), not both",
        )  # fmt: skip
        found.add(
            equity & has_price & (call == -1),
            "missing_field",
            "call",
            lambda i: "a price quote needs call (true or false)",
        )
        for k in ("rate", "dividend"):
            outside = equity & ~((num[k] > -1.0) & (num[k] < 1.0))
            found.add(
                outside,
                "out_of_range",
                k,
                lambda i, k=k: f"field {k!r} is a decimal rate, got {num[k][i]}",
            )
        expiry = self.text["expiry"]
        epochs = (
            np.asarray([_epoch(v) for v in expiry.values], float)[expiry.codes]
            if expiry.values
            else np.zeros(self.n)
        )
        found.add(
            ~(epochs > num["ts"]), "expired", "expiry",
            lambda i: f"expiry {expiry.decoded()[i]} is not after the quote time "
            f"{dt.datetime.fromtimestamp(num['ts'][i], dt.UTC).isoformat()}",
        )  # fmt: skip
        priced = equity & has_price & (call != -1) & (epochs > num["ts"])
        if priced.any():
            with np.errstate(invalid="ignore", over="ignore"):  # rows refused already: inf, NaN
                price = mid(num["mid_price"], num["bid_price"], num["ask_price"])
                t = (epochs - num["ts"]) / YEAR_SECONDS
                lower, upper = price_bounds(num["spot"], num["strike"], num["rate"],
                                            num["dividend"], t, call == 1)  # fmt: skip
                outside = priced & ~((lower < price) & (price < upper))
            found.add(
                outside, "arbitrage", "mid_price",
                lambda i: arbitrage_detail(float(price[i]), float(lower[i]), float(upper[i]),
                                           bool(call[i] == 1)),
            )  # fmt: skip
        return found.outcome()

    def quotes(self, rows: np.ndarray | None = None) -> list[Quote]:
        """The rows (all, or those of the mask or indices ``rows``) as :class:`Quote` objects,
        for consumers that take one quote at a time; only valid rows make valid quotes."""
        index = (
            np.arange(self.n)
            if rows is None
            else np.flatnonzero(rows)
            if rows.dtype == bool
            else rows
        )
        texts = {k: t.decoded()[index] for k, t in self.text.items()}
        nums = {k: a[index].tolist() for k, a in self.numbers.items()}
        out = []
        for j in range(index.size):
            values = {
                k: (None if v != v else v) for k, v in ((k, nums[k][j]) for k in FLOAT_FIELDS)
            }
            call = nums["call"][j]
            out.append(
                Quote(
                    underlying=texts["underlying"][j],
                    asset_class=texts["asset_class"][j],
                    expiry=texts["expiry"][j],
                    source=texts["source"][j],
                    seq=nums["seq"][j],
                    call=None if call == -1 else bool(call),
                    **values,
                )
            )
        return out


def _text(name: str, values: list[str], codes: np.ndarray) -> Text:
    """A text column; valid dates are read in their canonical form (``20260105`` as
    ``2026-01-05``), as :meth:`schemas.Quote.checked` reads them."""
    if name == "expiry":
        values = [_canonical(v) for v in values]
    return Text(tuple(values), codes)


def _used(column: Text, codes: np.ndarray) -> Text:
    """``column`` for the rows of ``codes``: only the values they use."""
    used, compact = np.unique(codes, return_inverse=True)
    if used.size == len(column.values):
        return Text(column.values, np.ascontiguousarray(codes))
    return Text(tuple(column.values[i] for i in used.tolist()), compact.astype(np.int32))


@functools.lru_cache(maxsize=4096)  # a stream names the same few expiries in every message
def _canonical(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat() if len(value) <= 10 else value
    except ValueError:
        return value


def _absent_column(name: str, n: int) -> np.ndarray:
    """A column left out: every value absent (NaN; ``call`` -1)."""
    return np.full(n, -1 if name == "call" else np.nan, _DTYPES[name])


@functools.cache
def _absent_wire(name: str) -> np.ndarray:
    """A read-only column of absent values as long as a message may be: a message's absent
    column is a view of it (wire columns are read-only buffers anyway), not a new array per
    message (a busy stream sends thousands of small messages a second)."""
    column = _absent_column(name, MAX_COLUMN_ROWS)
    column.flags.writeable = False
    return column


def _absent(name: str, a: np.ndarray) -> np.ndarray:
    return (
        a == -1
        if name == "call"
        else np.isnan(a)
        if a.dtype.kind == "f"
        else np.zeros(a.shape, bool)
    )


def _epoch(expiry: str) -> float:
    try:
        return expiry_epoch(expiry)
    except ValueError:
        return np.nan  # refused earlier as a bad date


Verdict = tuple[str, str] | None  # (reason, detail) of a text value, None when it is valid


@functools.lru_cache(maxsize=4096)  # the same few names in every message of a stream
def _name_rule(value: str) -> Verdict:
    if len(value) > 32:
        return "out_of_range", "is longer than 32 characters"
    return None if f.NAME.match(value) else ("out_of_range", f"is not a valid name: {value!r}")


def _asset_class_rule(value: str) -> Verdict:
    if value in ASSET_CLASSES:
        return None
    return "out_of_range", f"must be one of {ASSET_CLASSES}, got {value!r}"


@functools.lru_cache(maxsize=4096)
def _date_rule(value: str) -> Verdict:
    if len(value) > 10:
        return "out_of_range", "is longer than 10 characters"
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return "wrong_type", f"must be an ISO date (YYYY-MM-DD), got {value!r}"
    return None


def _source_rule(value: str) -> Verdict:
    return ("out_of_range", "is longer than 64 characters") if len(value) > 64 else None


def _equity_missing(has: dict[str, np.ndarray], i: int) -> str:
    missing = [k for k in ("spot", "rate", "dividend") if not has[k][i]]
    return f"an equity quote needs {', '.join(missing)}"


class _Found:
    """The first problem of each row, rule by rule. Rules only record where they fail; which
    rule a row fails first is worked out only when some row fails (a clean message, the
    stream's usual case, costs a mask per rule and one reduction)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rules: list[tuple[np.ndarray, str, str, object]] = []

    def add(self, failing: np.ndarray, reason: str, field: str, detail) -> None:
        self.rules.append((failing, reason, field, detail))

    def number(self, a, name, *, positive=False, nonnegative=False, below=np.inf, required=False):
        # a NaN fails no comparison, and a row is given its first failing rule only: each
        # test here needs no mask of the rules before it
        if required:
            self.add(np.isnan(a), "missing_field", name, lambda i: f"field {name!r} is required")
        self.add(np.isinf(a), "not_finite", name, lambda i: f"field {name!r} is {a[i]}")
        if positive:
            self.add(
                a <= 0, "out_of_range", name,
                lambda i: f"field {name!r} must be positive, got {a[i]}",
            )  # fmt: skip
        if nonnegative:
            self.add(
                a < 0, "out_of_range", name,
                lambda i: f"field {name!r} must not be negative, got {a[i]}",
            )  # fmt: skip
        if below < np.inf:
            self.add(
                a >= below, "out_of_range", name,
                lambda i: f"field {name!r} must be below {below:g}, got {a[i]}",
            )  # fmt: skip

    def text(self, column: Text, name: str, rule) -> None:
        """A rule of one text value, judged once per distinct value."""
        verdicts = [rule(v) for v in column.values]
        for reason in {v[0] for v in verdicts if v is not None}:
            failing = np.asarray([v is not None and v[0] == reason for v in verdicts], bool)
            self.add(
                failing[column.codes], reason, name,
                lambda i: f"field {name!r} {verdicts[column.codes[i]][1]}",
            )  # fmt: skip

    def outcome(self) -> tuple[np.ndarray, list[RowProblem]]:
        """(valid rows as a mask, the first problem of each invalid row, by row)."""
        bad, out = np.zeros(self.n, bool), []
        if np.logical_or.reduce([failing for failing, *_ in self.rules]).any():
            for failing, reason, field, detail in self.rules:
                new = failing & ~bad
                bad |= new
                out += [
                    RowProblem(int(i), reason, field, detail(int(i))) for i in np.flatnonzero(new)
                ]
        return ~bad, sorted(out)
