"""Quotes as columns: one typed array per field, thousands of ticks in one message.

A :class:`QuoteColumns` message carries ``n`` quotes with the fields of :class:`schemas.Quote`.
On the wire (msgpack) each numeric column is one little-endian buffer (``float64``; ``int64``
for ``seq``; ``int8`` for ``call``: 1 call, 0 put, -1 none) and each text column is its
distinct values plus one ``int32`` code per row, so a busy stream's message is mostly raw
numbers that decode without a copy. NaN marks an absent optional number; optional columns may
be left out entirely.

Decoding checks the message's shape (lengths, codes, column names) and refuses the whole message
when it is malformed. Each *row* is then checked by :meth:`QuoteColumns.problems`, vectorised,
against the rules a single quote is judged by (:mod:`schemas.quote_rules`, their one home), so
a bad row gets the reason a single quote would get, plus its field and row index, and its good
neighbours go on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from schemas import fields as f
from schemas.errors import SchemaError
from schemas.messages import Quote
from schemas.quote_rules import (
    OPTIONAL_NUMBERS,
    TEXT_FIELDS,
    RowProblem,
    Text,
    canonical_date,
    row_problems,
)

__all__ = [
    "FLOAT_FIELDS", "MAX_COLUMN_ROWS", "TEXT_FIELDS", "QuoteColumns", "RowProblem", "Text",
]  # fmt: skip

MAX_COLUMN_ROWS = 8192  # rows of one message: ~56 bytes a row for FX, within Kafka's 1 MB
FLOAT_FIELDS = ("ts", "strike", *OPTIONAL_NUMBERS)
_REQUIRED_NUMBERS = ("ts", "strike", "seq")
_DTYPES = {"seq": np.dtype("<i8"), "call": np.dtype("i1")} | {
    name: np.dtype("<f8") for name in FLOAT_FIELDS
}


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
        rules of a single quote (:mod:`schemas.quote_rules`), judged on every row at once."""
        return row_problems(self.n, self.numbers, self.text)

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
        values = [canonical_date(v) for v in values]
    return Text(tuple(values), codes)


def _used(column: Text, codes: np.ndarray) -> Text:
    """``column`` for the rows of ``codes``: only the values they use."""
    used, compact = np.unique(codes, return_inverse=True)
    if used.size == len(column.values):
        return Text(column.values, np.ascontiguousarray(codes))
    return Text(tuple(column.values[i] for i in used.tolist()), compact.astype(np.int32))


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
