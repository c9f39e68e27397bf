"""Read smiles from CSV or JSON files for ``volstream calibrate``.

Accepted layouts:

* CSV, or JSON list of objects, one quote per row with columns ``strike``, ``forward``, a vol
  (``mid_vol``, ``vol``, or ``bid_vol`` and ``ask_vol``, whose mid is used), and an expiry:
  ``time_to_expiry`` in years, or ``expiry`` (ISO date) with ``valuation_date`` (column or
  ``--valuation-date``). Optional: ``underlying`` (default ``smile``), ``weight``.
* JSON object (or list of objects) in the playbook's ``market_data`` shape: ``forward``,
  ``strikes``, ``maturities``, ``target_vols``, optional ``weights`` and ``name``.

Quotes group into smiles by (underlying, expiry). Errors name the file, row and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import NamedTuple

from engine.market import Smile, smiles_of
from schemas import mid
from schemas.daycount import act365f

__all__ = ["NamedSmile", "SmileFileError", "load_smiles"]


class SmileFileError(ValueError):
    """The file cannot be read as smiles; the message says where and why."""


class NamedSmile(NamedTuple):
    """A smile of a file: the engine's :class:`engine.market.Smile` (weights from the file,
    1 where absent) and how a report names it: its underlying and its expiry as the file
    gave it (an ISO date, or the years)."""

    name: str
    expiry_label: str
    smile: Smile


def _number(row: dict, key: str, where: str) -> float:
    raw = row.get(key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SmileFileError(f"{where}: column {key!r} is not a number ({raw!r})") from None
    if not math.isfinite(value):
        raise SmileFileError(f"{where}: column {key!r} is not finite ({raw!r})")
    return value


def _date(raw, key: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise SmileFileError(f"{where}: column {key!r} is not an ISO date ({raw!r})") from None


def _vol(row: dict, where: str) -> float:
    for key in ("mid_vol", "vol"):
        if row.get(key) not in (None, ""):
            return _number(row, key, where)
    if row.get("bid_vol") not in (None, "") and row.get("ask_vol") not in (None, ""):
        bid, ask = _number(row, "bid_vol", where), _number(row, "ask_vol", where)
        if bid > ask:
            raise SmileFileError(f"{where}: crossed quote, bid_vol {bid} > ask_vol {ask}")
        return mid(None, bid, ask)
    raise SmileFileError(f"{where}: no vol (need mid_vol, vol, or bid_vol and ask_vol)")


def _expiry(row: dict, where: str, valuation_date: dt.date | None) -> tuple[str, float]:
    if row.get("time_to_expiry") not in (None, ""):
        t = _number(row, "time_to_expiry", where)
        return f"{t:.6g}y", t
    if row.get("expiry") in (None, ""):
        raise SmileFileError(
            f"{where}: no expiry (need time_to_expiry, or expiry and a valuation date)"
        )
    expiry = _date(row["expiry"], "expiry", where)
    if row.get("valuation_date") not in (None, ""):
        valuation_date = _date(row["valuation_date"], "valuation_date", where)
    if valuation_date is None:
        raise SmileFileError(
            f"{where}: expiry given without valuation_date (column or --valuation-date)"
        )
    return expiry.isoformat(), act365f(valuation_date, expiry)


def _from_records(records: list[dict], source: str, valuation_date: dt.date | None
                  ) -> list[NamedSmile]:  # fmt: skip
    # (underlying, expiry label) -> (forward, years, strikes, vols, weights), in file order
    quotes: dict[tuple[str, str], tuple[float, float, list, list, list]] = {}
    for i, row in enumerate(records, start=2 if source.endswith(".csv") else 1):
        where = f"{source}:{'row' if source.endswith('.csv') else 'record'} {i}"
        if not isinstance(row, dict):
            raise SmileFileError(f"{where}: expected an object with named fields")
        name = str(row.get("underlying") or "smile")
        label, t = _expiry(row, where, valuation_date)
        forward = _number(row, "forward", where)
        first, _, strikes, vols, weights = quotes.setdefault(
            (name, label), (forward, t, [], [], [])
        )
        if not math.isclose(first, forward, rel_tol=1e-12):
            raise SmileFileError(
                f"{where}: {name} {label} has several forwards ({first}, {forward})"
            )
        strikes.append(_number(row, "strike", where))
        vols.append(_vol(row, where))
        weights.append(
            _number(row, "weight", where) if row.get("weight") not in (None, "") else 1.0
        )
    if not quotes:
        raise SmileFileError(f"{source}: no quotes")
    out = []
    for (name, label), (forward, t, strikes, vols, weights) in quotes.items():
        try:
            out.append(NamedSmile(name, label, Smile.of(forward, t, strikes, vols, weights)))
        except ValueError as exc:
            raise SmileFileError(f"{source}: {name} {label}: {exc}") from None
    return out


def _from_market_data(objs: list[dict], source: str) -> list[NamedSmile]:
    out = []
    for i, md in enumerate(objs):
        try:
            smiles = smiles_of(md if "weights" in md else {**md, "weights": 1.0})
        except (ValueError, TypeError) as exc:
            raise SmileFileError(f"{source}: object {i}: {exc}") from None
        name = str(md.get("name", f"smile{i}"))
        out += [NamedSmile(name, f"{s.expiry:.6g}y", s) for s in smiles]
    return out


def load_smiles(path: str | Path, valuation_date: dt.date | None = None) -> list[NamedSmile]:
    """Read ``path`` (``.csv`` or ``.json``) into smiles, in file order."""
    path = Path(path)
    if not path.is_file():
        raise SmileFileError(f"{path}: no such file")
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        return _from_records(list(csv.DictReader(text.splitlines())), str(path), valuation_date)
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SmileFileError(f"{path}: invalid JSON ({exc})") from None
        objs = obj if isinstance(obj, list) else [obj]
        if objs and isinstance(objs[0], dict) and "target_vols" in objs[0]:
            return _from_market_data(objs, str(path))
        return _from_records(objs, str(path), valuation_date)
    raise SmileFileError(f"{path}: unknown format (use .csv or .json)")
