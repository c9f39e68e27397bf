"""What makes a quote valid, written once: every rule, over columns of any number of rows.

:meth:`schemas.QuoteColumns.problems` judges a message's rows with :func:`row_problems`; a
single :class:`schemas.Quote` is judged as a message of one row (:func:`one_row`), so a quote
gets the same verdict and the same words whichever form it came in. A rule records only where
it fails; which rule a row fails first (the order below: each field's own rules in field
order, then the rules across fields) is worked out only when some row fails.

What a form's types cannot say is checked where it is read: a single quote's field of the
wrong type, or a NaN (a column's NaN means absent), in :meth:`schemas.Quote.checked`.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import NamedTuple

import numpy as np

from schemas import fields as f
from schemas.bounds import price_bounds
from schemas.daycount import YEAR_SECONDS, expiry_epoch
from schemas.errors import SchemaError

__all__ = [
    "ASSET_CLASSES",
    "OPTIONAL_NUMBERS",
    "TEXT_FIELDS",
    "RowProblem",
    "Text",
    "arbitrage_detail",
    "canonical_date",
    "mid",
    "one_row",
    "row_problems",
]

ASSET_CLASSES = ("fx", "equity")
_OPTIONAL_POSITIVE = ("forward", "bid_vol", "ask_vol", "mid_vol")
_NONNEGATIVE = ("size", "open_interest")
_PRICES = ("bid_price", "ask_price", "mid_price")
_EQUITY_NEEDS = ("spot", "rate", "dividend")
# a quote's optional numbers, in field order: what a single quote may leave out
OPTIONAL_NUMBERS = (*_OPTIONAL_POSITIVE, *_NONNEGATIVE, *_EQUITY_NEEDS, *_PRICES)
TEXT_FIELDS = ("underlying", "asset_class", "expiry", "source")
_asset_class_problem = functools.partial(f.text_problem, choices=ASSET_CLASSES)
_source_problem = functools.partial(f.text_problem, max_len=64)


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


def mid(given, bid, ask):
    """A quote's mid: the one given, else the mean of its bid and ask: its one home. A single
    quote's absent value is None (None when neither is there); columns' are NaN, row by row
    (``given`` None: bid and ask, scalars or arrays, are all there)."""
    if isinstance(given, np.ndarray):
        return np.where(np.isnan(given), 0.5 * (bid + ask), given)
    if given is not None:
        return given
    return None if bid is None or ask is None else 0.5 * (bid + ask)


def arbitrage_detail(price: float, lower: float, upper: float, call: bool) -> str:
    """Why a price quote is refused: which bound it breaks."""
    kind = "call" if call else "put"
    if price <= lower:
        return f"{kind} price {price:.6g} is at or below its intrinsic value {lower:.6g}"
    return f"{kind} price {price:.6g} is at or above its upper bound {upper:.6g}"


@functools.lru_cache(maxsize=4096)  # a stream names the same few expiries in every message
def canonical_date(value: str) -> str:
    """A valid date in its canonical form (``20260105`` as ``2026-01-05``); anything else as it
    is, for the date rule to refuse."""
    try:
        return dt.date.fromisoformat(value).isoformat() if len(value) <= 10 else value
    except ValueError:
        return value


def one_row(quote) -> tuple[dict[str, np.ndarray], dict[str, Text]]:
    """A quote's fields as the columns of a one-row message (``numbers``, ``text``): absent
    numbers NaN, an absent ``call`` -1."""
    values = quote.__dict__
    numbers = {
        k: np.array([-1 if v is None else v], "i1")
        if k == "call"
        else np.array([v], "<i8")
        if k == "seq"
        else np.array([np.nan if v is None else v], "<f8")
        for k, v in values.items()
        if k not in TEXT_FIELDS
    }
    return numbers, {k: Text((values[k],), np.zeros(1, np.int32)) for k in TEXT_FIELDS}


def row_problems(
    n: int, num: dict[str, np.ndarray], text: dict[str, Text]
) -> tuple[np.ndarray, list[RowProblem]]:
    """(valid rows as a boolean mask, the first problem of each invalid row, by row) of ``n``
    quotes given as columns: ``num`` every number column (NaN absent; ``call`` 1, 0 or -1),
    ``text`` every text column. Expiry is judged at each row's own event time."""
    found = _Found(n)
    found.number(num["ts"], "ts", positive=True, below=f.MAX_TIMESTAMP, required=True)
    found.text(text["underlying"], "underlying", f.name_problem)
    found.text(text["asset_class"], "asset_class", _asset_class_problem)
    found.text(text["expiry"], "expiry", f.date_problem)
    found.number(num["strike"], "strike", positive=True, required=True)
    found.text(text["source"], "source", _source_problem)
    seq = num["seq"]
    found.add(seq < 0, "out_of_range", "seq", lambda i: f.range_problem("seq", int(seq[i]), nonnegative=True)[1])  # fmt: skip
    for name in _OPTIONAL_POSITIVE:
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
    # the rules across fields
    for side in ("vol", "price"):
        bid, ask = num[f"bid_{side}"], num[f"ask_{side}"]
        found.add(
            bid > ask,
            "crossed_quote",
            f"bid_{side}",
            lambda i, b=bid, a=ask, s=side: f"bid_{s} {b[i]} > ask_{s} {a[i]}",
        )
    has = {k: ~np.isnan(num[k]) for k in OPTIONAL_NUMBERS}
    has_vol = has["mid_vol"] | (has["bid_vol"] & has["ask_vol"])
    has_price = has["mid_price"] | (has["bid_price"] & has["ask_price"])
    asset = text["asset_class"]
    fx = np.asarray([v == "fx" for v in asset.values], bool)[asset.codes] if asset.values else np.zeros(n, bool)  # fmt: skip
    found.add(
        fx & ~has_vol,
        "missing_field",
        "mid_vol",
        lambda i: "a quote needs mid_vol, or bid_vol and ask_vol",
    )
    found.add(fx & ~has["forward"], "missing_field", "forward", lambda i: "an fx quote needs a forward")  # fmt: skip
    equity = ~fx

    def equity_missing(i: int) -> str:
        return f"an equity quote needs {', '.join(k for k in _EQUITY_NEEDS if not has[k][i])}"

    for k in _EQUITY_NEEDS:
        found.add(equity & ~has[k], "missing_field", k, equity_missing)
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
    expiry = text["expiry"]
    epochs = np.asarray([_epoch(v) for v in expiry.values], float)[expiry.codes] if expiry.values else np.zeros(n)  # fmt: skip
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


def _epoch(expiry: str) -> float:
    try:
        return expiry_epoch(expiry)
    except ValueError:
        return np.nan  # refused earlier as a bad date


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
        # test here needs no mask of the rules before it; the words are fields.range_problem's
        if required:
            self.add(np.isnan(a), "missing_field", name, lambda i: f"field {name!r} is required")
        bounds = dict(positive=positive, nonnegative=nonnegative, below=below)
        why = lambda i: f.range_problem(name, float(a[i]), **bounds)[1]  # noqa: E731
        self.add(np.isinf(a), "not_finite", name, why)
        if positive:
            self.add(a <= 0, "out_of_range", name, why)
        if nonnegative:
            self.add(a < 0, "out_of_range", name, why)
        if below < np.inf:
            self.add(a >= below, "out_of_range", name, why)

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
        failing = np.stack([mask for mask, *_ in self.rules])  # (rule, row)
        bad = failing.any(axis=0)
        if not bad.any():
            return ~bad, []
        rows = np.flatnonzero(bad)
        first = failing[:, rows].argmax(axis=0)  # the first rule each bad row fails
        out = []
        for row, rule in zip(rows.tolist(), first.tolist()):
            _, reason, field, detail = self.rules[rule]
            out.append(RowProblem(row, reason, field, detail(row)))
        return ~bad, out
