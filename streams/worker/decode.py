"""From raw quote records to validated rows: every refused part kept with why, never raised.

A record holds :class:`schemas.QuoteColumns`, a :class:`schemas.QuoteBatch` or a single
:class:`schemas.Quote`. The rows of all records are checked together, each partition's in its
order (single quotes in a row gathered into one set of columns first): a busy live stream
sends small messages, and a check costs ~0.1 ms of numpy calls whatever its rows. A bad row is
refused alone, with the row index of its own message, and every row remembers its record (a
dead letter names the message's topic, partition and offset).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from schemas import Quote, QuoteBatch, QuoteColumns, SchemaError, decode, encode

__all__ = ["Decoded", "Record", "decode_records"]


class Record(NamedTuple):
    """One consumed message, with where it came from and when the worker got it."""

    value: bytes
    topic: str
    partition: int
    offset: int
    received_at: float


class Decoded(NamedTuple):
    """The valid rows of some records (every partition's, each in order), the partition of
    each row, the refused parts (record, bytes, why), how many ticks the records carried, and
    the record each row came from (``records[origin[i]]``: a dead letter names it)."""

    rows: QuoteColumns
    partitions: np.ndarray
    refused: list[tuple[Record, bytes, SchemaError]]
    ticks: int
    records: Sequence[Record] = ()
    origin: np.ndarray = np.zeros(0, np.int64)

    def refused_rows(self, problems) -> list[tuple[Record, bytes, SchemaError]]:
        """Rows refused after decoding (:meth:`SurfaceBook.screen`) as dead letters' parts:
        each row alone, with its record."""
        return [(self.records[self.origin[p.row]], encode(self.rows.take([p.row])),
                 SchemaError(p.reason, f"field {p.field!r}: {p.detail}")) for p in problems]  # fmt: skip

    def underlyings(self) -> set[str]:
        names = self.rows.text["underlying"]
        return {names.values[i] for i in np.unique(names.codes).tolist()}


class _Read(NamedTuple):
    columns: QuoteColumns | None
    singles: list[Quote]
    refused: list[tuple[bytes, SchemaError]]
    ticks: int


def _read(value: bytes) -> _Read:
    """What one record holds: its rows as columns (not checked yet) or its single quotes, its
    refused parts with why, and how many ticks it carried."""
    try:
        message = decode(value)
        if not isinstance(message, (Quote, QuoteBatch, QuoteColumns)):
            raise SchemaError(
                "unknown_type",
                f"expected a quote, quote_batch or quote_columns, got {message.TYPE}",
            )
    except SchemaError as exc:
        return _Read(None, [], [(value, exc)], 1)
    if isinstance(message, Quote):
        return _Read(None, [message], [], 1)
    if isinstance(message, QuoteColumns):
        return _Read(message, [], [], message.n)
    singles, refused = [], []
    for i, item in enumerate(message.items):
        try:
            singles.append(decode(item, Quote))
        except SchemaError as exc:
            refused.append(
                (item, SchemaError(exc.reason, f"item {i} of a quote batch: {exc.detail}"))
            )
    return _Read(None, singles, refused, len(message.items))


def decode_records(records: Iterable[Record]) -> Decoded:
    """Decode and check ``records``: see the module doc."""
    refused: list[tuple[Record, bytes, SchemaError]] = []
    seen: list[Record] = []  # every record with rows; origin indexes it
    # per partition, in order: (the record of each row, its columns)
    parts: dict[int, list[tuple[np.ndarray, QuoteColumns]]] = {}
    singles: dict[int, list[tuple[int, Quote]]] = {}  # the run of single quotes, by record
    ticks = 0

    def gathered(partition: int) -> None:
        run = singles.pop(partition, [])
        if run:
            origin = np.array([i for i, _ in run], np.int64)
            columns = QuoteColumns.from_quotes([q for _, q in run])
            parts.setdefault(partition, []).append((origin, columns))

    for record in records:
        read = _read(record.value)
        ticks += read.ticks
        refused += [(record, value, exc) for value, exc in read.refused]
        if read.singles or (read.columns is not None and read.columns.n):
            seen.append(record)
        if read.singles:
            singles.setdefault(record.partition, []).extend(
                (len(seen) - 1, q) for q in read.singles
            )
        if read.columns is not None and read.columns.n:
            gathered(record.partition)  # in order: the single quotes before these first
            origin = np.full(read.columns.n, len(seen) - 1, np.int64)
            parts.setdefault(record.partition, []).append((origin, read.columns))
    for partition in list(singles):
        gathered(partition)
    # every partition's rows, each partition's in order, checked at once
    mine = [(p, origin, columns) for p, kept in parts.items() for origin, columns in kept]
    if not mine:
        return Decoded(QuoteColumns.from_quotes([]), np.zeros(0, np.int64), refused, ticks)
    sizes = [columns.n for _, _, columns in mine]
    rows = QuoteColumns.concat([columns for _, _, columns in mine])
    partitions = np.repeat([p for p, _, _ in mine], sizes).astype(np.int64)
    origin = np.concatenate([o for _, o, _ in mine])
    valid, problems = rows.problems()
    if problems:
        starts = np.cumsum([0, *sizes])
        for problem in problems:
            k = int(np.searchsorted(starts, problem.row, side="right")) - 1
            columns = mine[k][2]
            alone = problem._replace(row=problem.row - int(starts[k]))
            record = seen[origin[problem.row]]
            refused.append((record, encode(columns.take([alone.row])), alone.error()))
        rows, partitions, origin = rows.take(valid), partitions[valid], origin[valid]
    return Decoded(rows, partitions, refused, ticks, seen, origin)
