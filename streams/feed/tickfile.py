"""Tick files read as columns: CSV, JSON lines and Parquet through Arrow, msgpack streams.

Columns are :class:`schemas.Quote`'s field names, in any order; ``--map quote_field=file_column``
renames others (``strike=K``). ``ts`` is epoch seconds or an ISO-8601 datetime (``Z`` or an
offset; no offset reads as UTC); ``seq`` is optional (file order when absent). Every row is
checked by every rule of a single quote (:meth:`schemas.QuoteColumns.problems`); a refused row
is reported with its row number in the file (1 is the first data row) and its field, and its
good neighbours go on. Columns that are not quote fields are ignored and listed, so a misspelt
one is seen (and a missing required field names the columns the file does have).

A desk's file rarely says where it came from or what it holds: without a ``source`` column each
row's source is the file's name; without an ``asset_class`` column each row's class follows
from what it carries, as :meth:`schemas.Quote.check` needs it (a forward and a vol: fx; a spot
and a vol or a price: equity), and a row that fits both or neither is refused with what to add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

from schemas import Quote, QuoteColumns, RowProblem, SchemaError, decode
from schemas.columns import FLOAT_FIELDS, TEXT_FIELDS

__all__ = ["TickFile", "TickFileError", "read_tick_file"]

FIELDS = (*FLOAT_FIELDS, *TEXT_FIELDS, "seq", "call")
_REQUIRED = ("ts", "underlying", "expiry", "strike")  # asset_class and source have defaults
_SOURCE_LEN = 64  # the most a quote's source holds (schemas.Quote): a longer file name is cut
_TRUE, _FALSE = {"true", "1", "yes", "call", "c"}, {"false", "0", "no", "put", "p"}


class TickFileError(ValueError):
    """A file that cannot be read as ticks at all (missing columns, unknown format)."""


@dataclass
class TickFile:
    """The valid rows of a file as columns, in file order, and every refused row."""

    columns: QuoteColumns | None  # None when no row is valid
    rejected: list[RowProblem]  # rows numbered from 1, the first data row
    ignored: list[str] = field(default_factory=list)  # columns that are not quote fields
    total: int = 0  # data rows read

    def quotes(self) -> list[Quote]:
        return [] if self.columns is None else self.columns.quotes()


def read_tick_file(path: Path, rename: dict[str, str] | None = None) -> TickFile:
    """Read ``path`` (``.csv``, ``.jsonl``/``.json``, ``.parquet``, ``.msgpack``); ``rename``
    maps quote fields to the file's column names. Raises :class:`TickFileError` when the file
    lacks a required column or has an unknown suffix; bad rows never raise."""
    suffix = path.suffix.lower()
    if suffix == ".msgpack":
        return _read_msgpack(path)
    table = _read_table(path, suffix)
    rename = dict(rename or {})
    unknown = set(rename) - set(FIELDS)
    if unknown:
        raise TickFileError(f"--map names {sorted(unknown)}, which are not quote fields {FIELDS}")
    absent = [c for c in rename.values() if c not in table.column_names]
    if absent:
        raise TickFileError(f"{path}: --map names columns {absent} the file does not have")
    source_of = {name: rename.get(name, name) for name in FIELDS}
    present = {name: col for name, col in source_of.items() if col in table.column_names}
    ignored = sorted(set(table.column_names) - set(present.values()))
    missing = [name for name in _REQUIRED if name not in present]
    if missing:
        hint = f"; its other columns are {ignored} (map one with --map field=column)"
        raise TickFileError(f"{path}: no column for {missing}{hint if ignored else ''}")
    n = table.num_rows
    bad: dict[int, RowProblem] = {}
    columns: dict[str, object] = {}
    for name, column in present.items():
        values = table.column(column)
        if name == "ts":
            columns[name] = _timestamps(values, bad)
        elif name in FLOAT_FIELDS:
            columns[name] = _numbers(values, name, bad)
        elif name == "seq":
            columns[name] = _integers(values, bad)
        elif name == "call":
            columns[name] = _booleans(values, bad)
        else:
            columns[name] = [("" if v is None else str(v)) for v in values.to_pylist()]
    if "seq" not in columns:
        columns["seq"] = np.arange(n)
    if "source" not in columns:
        columns["source"] = np.full(n, path.name[:_SOURCE_LEN], dtype=object)
    if "asset_class" not in columns:
        columns["asset_class"] = _asset_classes(columns, n, bad)
    return _checked(QuoteColumns.of(**columns) if n else None, bad, ignored, n)


def _read_table(path: Path, suffix: str):
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    try:
        if suffix == ".csv":
            # every column as text: one bad cell must not retype (or sink) its whole column
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            types = {c: pa.string() for c in header}
            return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        if suffix in (".jsonl", ".json", ".ndjson"):
            try:
                table = pajson.read_json(path)
            except pa.ArrowInvalid:  # a column of mixed types: every value as text
                return _json_as_text(path)
            if any(pa.types.is_temporal(f.type) for f in table.schema):
                return _json_as_text(path)  # dates pyarrow typed: keep the file's own text
            return table
        if suffix == ".parquet":
            return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TickFileError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from None
    raise TickFileError(
        f"{path}: unknown tick file type {suffix!r} (use .csv, .jsonl, .parquet or .msgpack)"
    )


def _json_as_text(path: Path):
    import json

    import pyarrow as pa

    rows = [json.loads(line) for line in path.open() if line.strip()]
    names = list(dict.fromkeys(k for row in rows for k in row))
    text = lambda v: None if v is None else str(v)  # noqa: E731
    return pa.table({n: pa.array([text(r.get(n)) for r in rows], pa.string()) for n in names})


def _reject(bad: dict[int, RowProblem], rows, reason: str, name: str, detail) -> None:
    """Refuse ``rows`` (unless already refused); ``detail`` is a sentence, or one per row."""
    for i in rows:
        text = detail if isinstance(detail, str) else detail(int(i))
        bad.setdefault(int(i), RowProblem(int(i), reason, name, text))


def _numbers(values, name: str, bad: dict[int, RowProblem], parse=float, what="a number"):
    """float64 with NaN where empty; a cell that ``parse`` refuses refuses its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        return values.cast(pa.float64()).to_numpy().astype(np.float64)
    text = values.cast(pa.string())
    try:  # the fast path: every cell a number or empty
        empty = pc.equal(pc.utf8_trim_whitespace(text), "")
        return pc.if_else(empty, None, text).cast(pa.float64()).to_numpy().astype(np.float64)
    except pa.ArrowInvalid:
        pass
    cells = text.to_pylist()
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        if cell is None or not cell.strip():
            continue
        try:
            out[i] = parse(cell.strip())
        except ValueError:
            _reject(bad, [i], "wrong_type", name, f"is not {what}: {cell!r}")
    return out


def _timestamps(values, bad: dict[int, RowProblem]) -> np.ndarray:
    """Epoch seconds from numbers, timestamps or ISO-8601 text (no offset: UTC)."""
    import pyarrow as pa

    if pa.types.is_timestamp(values.type):
        micros = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(False)
        return micros.astype(np.float64) / 1e6
    return _numbers(values, "ts", bad, _epoch_seconds, "epoch seconds or an ISO-8601 datetime")


def _epoch_seconds(cell: str) -> float:
    import datetime as dt

    try:
        return float(cell)
    except ValueError:
        when = dt.datetime.fromisoformat(cell.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _asset_classes(columns: dict[str, object], n: int, bad: dict[int, RowProblem]) -> np.ndarray:
    """Each row's asset class from the fields it carries, as :meth:`schemas.Quote.check` needs
    them: a forward and a vol (``mid_vol``, or ``bid_vol`` and ``ask_vol``) is fx; a spot and a
    vol or a price (``mid_price``, or ``bid_price`` and ``ask_price``) is equity. A row that
    fits both or neither is refused, saying what to add (its class is left empty)."""

    def has(name: str) -> np.ndarray:
        values = columns.get(name)
        return np.zeros(n, bool) if values is None else ~np.isnan(values)

    vol = has("mid_vol") | (has("bid_vol") & has("ask_vol"))
    price = has("mid_price") | (has("bid_price") & has("ask_price"))
    forward, spot = has("forward"), has("spot")
    fx, equity = forward & vol, spot & (vol | price)

    def why(i: int) -> str:
        column = "an asset_class column (fx or equity)"
        if forward[i] and spot[i]:
            told = f"it has both forward and spot; add {column}"
        elif forward[i]:
            told = (
                "it has a forward but no vol (mid_vol, or bid_vol and ask_vol); "
                f"add one, or {column}"
            )
        elif spot[i]:
            told = f"it has a spot but no vol or price; add one, or {column}"
        else:
            told = f"it has neither a forward (fx) nor a spot (equity); add one, or {column}"
        return f"cannot tell the asset class: {told}"

    _reject(bad, np.flatnonzero(fx == equity), "missing_field", "asset_class", why)
    names = np.array(["", "fx", "equity"], dtype=object)
    return names[np.where(fx & ~equity, 1, np.where(equity & ~fx, 2, 0))]


def _integers(values, bad: dict[int, RowProblem]) -> np.ndarray:
    numbers = _numbers(values, "seq", bad)
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    _reject(
        bad, np.flatnonzero(~whole & ~np.isnan(numbers)), "wrong_type", "seq",
        lambda i: f"must be a whole number, got {numbers[i]}",
    )  # fmt: skip
    _reject(bad, np.flatnonzero(np.isnan(numbers)), "missing_field", "seq", "is empty")
    return np.where(whole, numbers, 0).astype(np.int64)


def _booleans(values, bad: dict[int, RowProblem]) -> list:
    out: list[bool | None] = []
    for i, cell in enumerate(values.to_pylist()):
        if cell is None or cell == "" or isinstance(cell, bool):
            out.append(cell if isinstance(cell, bool) else None)
            continue
        text = str(cell).strip().lower()
        if text in _TRUE or text in _FALSE:
            out.append(text in _TRUE)
            continue
        _reject(bad, [i], "wrong_type", "call", f"must be true or false, got {cell!r}")
        out.append(None)
    return out


def _checked(columns: QuoteColumns | None, bad: dict[int, RowProblem], ignored, n) -> TickFile:
    """Keep the rows that pass both the reading and every quote rule; number rows from 1."""
    if columns is None:
        return TickFile(None, [], ignored, 0)
    ok, problems = columns.problems()
    for p in problems:
        bad.setdefault(p.row, p)
    ok[list(bad)] = False  # refused while reading (a cell that is no number or time)
    rejected = [p._replace(row=p.row + 1) for _, p in sorted(bad.items())]
    kept = columns.take(ok) if ok.any() else None
    return TickFile(kept, rejected, ignored, n)


def _read_msgpack(path: Path) -> TickFile:
    """A stream of msgpack-encoded quotes, each checked on its own."""
    quotes, rejected, total = [], [], 0
    with path.open("rb") as fh:
        for obj in msgpack.Unpacker(fh, raw=False):
            total += 1
            try:
                quotes.append(decode(msgpack.packb(obj), Quote))
            except SchemaError as exc:
                rejected.append(RowProblem(total, exc.reason, "", exc.detail))
    columns = QuoteColumns.from_quotes(quotes) if quotes else None
    return TickFile(columns, rejected, [], total)
