"""From raw quote records to validated rows: every refused part kept with why, never raised.

A record holds :class:`schemas.QuoteColumns`, a :class:`schemas.QuoteBatch` or a single
:class:`schemas.Quote`. The rows of all records are checked together, each partition's in its
order (single quotes in a row gathered into one set of columns first): a busy live stream
sends small messages, and a check costs ~0.1 ms of numpy calls whatever its rows. A bad row is
refused alone, with the row index of its own message.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    each row, the refused parts (record, bytes, why) and how many ticks the records carried."""

    rows: QuoteColumns
    partitions: np.ndarray
    refused: list[tuple[Record, bytes, SchemaError]]
    ticks: int

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
    parts: dict[int, list[tuple[Record, QuoteColumns]]] = {}  # per partition, in order
    singles: dict[int, tuple[Record, list[Quote]]] = {}  # the run of single quotes
    ticks = 0

    def gathered(partition: int) -> None:
        record, quotes = singles.pop(partition, (None, []))
        if quotes:
            parts.setdefault(partition, []).append((record, QuoteColumns.from_quotes(quotes)))

    for record in records:
        read = _read(record.value)
        ticks += read.ticks
        refused += [(record, value, exc) for value, exc in read.refused]
        if read.singles:
            singles.setdefault(record.partition, (record, []))[1].extend(read.singles)
        if read.columns is not None and read.columns.n:
            gathered(record.partition)  # in order: the single quotes before these first
            parts.setdefault(record.partition, []).append((record, read.columns))
    for partition in list(singles):
        gathered(partition)
    # every partition's rows, each partition's in order, checked at once
    mine = [(p, record, columns) for p, kept in parts.items() for record, columns in kept]
    if not mine:
        return Decoded(QuoteColumns.from_quotes([]), np.zeros(0, np.int64), refused, ticks)
    sizes = [columns.n for _, _, columns in mine]
    rows = QuoteColumns.concat([columns for _, _, columns in mine])
    partitions = np.repeat([p for p, _, _ in mine], sizes).astype(np.int64)
    valid, problems = rows.problems()
    if problems:
        starts = np.cumsum([0, *sizes])
        for problem in problems:
            k = int(np.searchsorted(starts, problem.row, side="right")) - 1
            _, record, columns = mine[k]
            alone = problem._replace(row=problem.row - int(starts[k]))
            refused.append((record, encode(columns.take([alone.row])), alone.error()))
        rows, partitions = rows.take(valid), partitions[valid]
    return Decoded(rows, partitions, refused, ticks)
