"""The messages volstream reads and writes: quotes in; parameters, alerts, dead letters out.

Each is a frozen dataclass with ``TYPE`` and ``VERSION``, a ``to_wire()`` dict of msgpack
types, and a validating ``from_wire()``; :mod:`schemas.codec` frames them. Times are UTC epoch
seconds (float); dates are ISO ``YYYY-MM-DD``; an option expires at 00:00 UTC of its expiry date.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, field

from schemas import fields as f
from schemas.daycount import expiry_epoch, time_to_expiry
from schemas.errors import SchemaError
from schemas.keys import book_key, watermark_key
from schemas.quote_rules import OPTIONAL_NUMBERS, canonical_date, mid, one_row, row_problems

__all__ = [
    "MAX_BATCH_ITEMS",
    "Alert",
    "CalibrationRecord",
    "DeadLetter",
    "Decision",
    "Params",
    "Quote",
    "QuoteBatch",
    "WarmState",
    "Watermark",
]

SEVERITIES = ("info", "warning", "critical")
ALERT_STATES = ("firing", "resolved", "notice")
VALIDATION_STATUSES = ("passed", "flagged", "pending")
DECISIONS = ("approved", "rejected")
APPROVALS = ("auto", "pending", *DECISIONS)
MODEL_TYPES = ("sabr", "heston", "playbook")  # a record's: a fit's model, or a playbook job
VERDICTS = ("pass", "fail", "n/a")


def _wire(message) -> dict:
    """Field name -> value, shallow (``dataclasses.asdict`` deep-copies: 10x slower here; the
    instance's ``__dict__`` is the fields, in order, at a tenth of ``fields()``' cost)."""
    return dict(message.__dict__)


class _Fields:
    """A message whose wire form is its fields as they are (see :func:`_wire`)."""

    def to_wire(self) -> dict:
        return _wire(self)


def _reject_unknown(cls, data: dict) -> None:
    known = {"type", "v", *cls.__dataclass_fields__}
    extra = set(data) - known
    if extra:
        raise SchemaError("unknown_field", f"{cls.TYPE} has unknown fields {f.listed(extra)}")


@dataclass(frozen=True)
class Quote:
    """One option quote tick.

    FX quotes carry the ``forward`` and a vol: ``mid_vol``, or ``bid_vol`` and ``ask_vol`` (not
    crossed). Equity quotes carry ``spot``, ``rate`` and ``dividend`` (continuous, decimal) and
    either a vol or a price (``mid_price``, or ``bid_price`` and ``ask_price``); a price says
    whether it is a ``call`` or a put."""

    TYPE = "quote"
    VERSION = 1

    ts: float
    underlying: str
    asset_class: str
    expiry: str
    strike: float
    source: str
    seq: int
    forward: float | None = None
    bid_vol: float | None = None
    ask_vol: float | None = None
    mid_vol: float | None = None
    size: float | None = None
    open_interest: float | None = None
    spot: float | None = None
    rate: float | None = None
    dividend: float | None = None
    bid_price: float | None = None
    ask_price: float | None = None
    mid_price: float | None = None
    call: bool | None = None

    @property
    def vol(self) -> float | None:
        """The mid vol: ``mid_vol``, else the mean of bid and ask (None for a price quote)."""
        return mid(self.mid_vol, self.bid_vol, self.ask_vol)

    @property
    def price(self) -> float | None:
        """The mid price: ``mid_price``, else the mean of bid and ask (None for a vol quote)."""
        return mid(self.mid_price, self.bid_price, self.ask_price)

    @property
    def time_to_expiry(self) -> float:
        """ACT/365F years from the quote's event time to expiry."""
        return time_to_expiry(self.ts, self.expiry)

    def to_wire(self) -> dict:
        return {k: v for k, v in _wire(self).items() if v is not None}

    @classmethod
    def from_wire(cls, data: dict) -> Quote:
        # the fast path takes ordinary quotes; the field-by-field checks name what is off
        return _plain_quote(data) or cls.checked(data)

    @classmethod
    def checked(cls, data: dict) -> Quote:
        """Each field's type as it is read, then every rule of a valid quote (those of a row
        of :class:`schemas.QuoteColumns`, :mod:`schemas.quote_rules`), raising
        :class:`SchemaError` with the first reason."""
        _reject_unknown(cls, data)
        text = functools.partial(f.text, data, max_len=math.inf)
        number = functools.partial(f.optional, f.number, data)
        quote = cls(
            ts=number("ts"),  # ts and strike are required: a rule of quote_rules says so
            underlying=text("underlying"),
            asset_class=text("asset_class"),
            expiry=canonical_date(text("expiry")),
            strike=number("strike"),
            source=text("source"),
            seq=_int64(data, "seq"),
            **{k: number(k) for k in OPTIONAL_NUMBERS},
            call=f.optional(f.boolean, data, "call"),
        )
        quote.check()
        return quote

    def check(self) -> None:
        """Every rule of a valid quote (:mod:`schemas.quote_rules`): each field's range; one
        vol or price, not crossed; what each asset class needs; rates in decimals; not expired;
        a price within its no-arbitrage bounds."""
        _, problems = row_problems(1, *one_row(self))
        if problems:
            raise SchemaError(problems[0].reason, problems[0].detail)


def _int64(data: dict, key: str) -> int:
    """An integer a column's int64 holds (its sign is a rule of :mod:`schemas.quote_rules`)."""
    value = f.integer(data, key, nonnegative=False)
    if not -_SEQ_LIMIT <= value < _SEQ_LIMIT:
        raise SchemaError("out_of_range", f"field {key!r} must fit in 64 bits, got {value}")
    return value


_EQUITY_FIELDS = ("spot", "rate", "dividend", "bid_price", "ask_price", "mid_price", "call")
# the fast path takes FX vol quotes, the bulk of the stream; anything else gets the full checks
_QUOTE_FIELDS = frozenset({"type", "v", *Quote.__dataclass_fields__}) - set(_EQUITY_FIELDS)
_OPTIONAL = ("forward", "bid_vol", "ask_vol", "mid_vol")
_NONNEGATIVE = ("size", "open_interest")
_INF = math.inf
_SEQ_LIMIT = 2**63  # a column's int64


@functools.lru_cache(maxsize=4096)
def _name_ok(value: str) -> bool:
    return f.NAME.match(value) is not None


@functools.lru_cache(maxsize=4096)
def _canonical_date(value: str) -> bool:
    try:
        return len(value) == 10 and dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _positive(x) -> bool:
    return (type(x) is float or type(x) is int) and 0 < x < _INF


def _nonnegative(x) -> bool:
    return (type(x) is float or type(x) is int) and 0 <= x < _INF


def _plain_quote(data: dict) -> Quote | None:
    """The quote when ``data`` is an ordinary valid one, else None.

    The hot path of every worker: the same rules as the field-by-field checks of
    :meth:`Quote.from_wire` (a property test holds them equal) in one pass with cached name and
    date checks. Equity fields and anything unusual return None, and the full checks then give the reason."""
    if not data.keys() <= _QUOTE_FIELDS:
        return None
    get = data.get
    ts, underlying, asset_class = get("ts"), get("underlying"), get("asset_class")
    expiry, strike, source, seq = get("expiry"), get("strike"), get("source"), get("seq")
    fwd, bid, ask, mid = (get(k) for k in _OPTIONAL)
    if not (
        _positive(ts)
        and ts < f.MAX_TIMESTAMP
        and type(underlying) is str
        and _name_ok(underlying)
        and asset_class == "fx"
        and type(expiry) is str
        and _canonical_date(expiry)
        and _positive(strike)
        and type(source) is str
        and len(source) <= 64
        and type(seq) is int
        and 0 <= seq < _SEQ_LIMIT
        and all(x is None or _positive(x) for x in (fwd, bid, ask, mid))
        and all(get(k) is None or _nonnegative(get(k)) for k in _NONNEGATIVE)
        and (mid is not None or (bid is not None and ask is not None))
        and (bid is None or ask is None or bid <= ask)
        and fwd is not None
        and expiry_epoch(expiry) > ts
    ):
        return None
    return Quote(
        float(ts),
        underlying,
        asset_class,
        expiry,
        float(strike),
        source,
        seq,
        *(None if x is None else float(x) for x in (fwd, bid, ask, mid)),
        *(None if get(k) is None else float(get(k)) for k in _NONNEGATIVE),
    )


MAX_BATCH_ITEMS = 1024


@dataclass(frozen=True)
class QuoteBatch:
    """Many quotes in one message: each item is an encoded :class:`Quote`, validated on its own
    by the consumer (a bad item is dead-lettered alone). Items must share a Kafka key (one
    underlying) so one partition keeps them in order."""

    TYPE = "quote_batch"
    VERSION = 1

    items: tuple[bytes, ...]

    def to_wire(self) -> dict:
        return {"items": list(self.items)}

    @classmethod
    def from_wire(cls, data: dict) -> QuoteBatch:
        _reject_unknown(cls, data)
        items = data.get("items")
        if items is None:
            raise SchemaError("missing_field", "field 'items' is required")
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            raise SchemaError(
                "wrong_type", "field 'items' must be a list of encoded quotes (bytes)"
            )
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise SchemaError(
                "out_of_range", f"a batch holds 1 to {MAX_BATCH_ITEMS} quotes, got {len(items)}"
            )
        return cls(tuple(items))


def _gates(data: dict) -> dict[str, dict]:
    gates = data.get("gates")
    if not isinstance(gates, dict):
        raise SchemaError(
            "wrong_type" if gates is not None else "missing_field", "field 'gates' must be a map"
        )
    out = {}
    for name, g in gates.items():
        if not isinstance(g, dict):
            raise SchemaError("wrong_type", f"gate {name!r} must be a map")
        out[str(name)] = {
            "verdict": f.text(g, "verdict", choices=VERDICTS),
            "value": f.optional(f.finite, g, "value"),
            "threshold": f.optional(f.finite, g, "threshold"),
        }
    return out


def _expiries(data: dict) -> tuple[str, ...] | None:
    value = data.get("expiries")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise SchemaError("wrong_type", "field 'expiries' must be a non-empty list of dates")
    return tuple(f.date({"expiries": v}, "expiries").isoformat() for v in value)


@dataclass(frozen=True)
class Params:
    """Calibrated parameters of one smile (SABR) or of a whole surface (Heston), with the
    evidence to trust them or not.

    A smile's ``expiry``, ``forward`` and ``time_to_expiry`` are its own. A surface also has
    ``spot`` and the ``expiries`` it fitted; its ``expiry`` is the last of them, with that
    expiry's forward and time. ``key`` names the smile or surface (the Kafka key).

    ``usable`` is what a risk engine should check. ``good``: converged and every applicable
    gate passed. Where the desk has approvals on, ``approval`` is ``auto`` (no material
    change from the parameters last approved), ``pending`` (a material change waiting for an
    approver's signed decision), then ``approved`` or ``rejected`` when the decision came (the
    same fit is published again so marked); ``usable``: converged and good with no approval
    needed, or approved. ``record_seq`` is the fit's :class:`CalibrationRecord` in the key's
    audit chain (None with the audit trail off): what ``volstream approve KEY@SEQ`` names.

    ``received_at``/``published_at`` are wall-clock stamps of the first tick that triggered the
    calibration and of publication; ``window_start``/``window_end`` the event times of the
    surface snapshot that was fitted.
    """

    TYPE = "params"
    VERSION = 1

    underlying: str
    expiry: str
    model: str
    params: dict[str, float]
    forward: float
    time_to_expiry: float
    converged: bool
    status: str
    warm: bool
    iterations: int
    rmse: float | None
    gates: dict[str, dict]
    diagnostics: dict[str, float | None]
    window_start: float
    window_end: float
    n_quotes: int
    received_at: float
    published_at: float
    spot: float | None = None
    expiries: tuple[str, ...] | None = None
    approval: str = "auto"
    record_seq: int | None = None

    @property
    def good(self) -> bool:
        return self.converged and all(g["verdict"] != "fail" for g in self.gates.values())

    @property
    def approved(self) -> bool:
        """No approval needed (``auto``) or an approver signed it (``approved``)."""
        return self.approval in ("auto", "approved")

    @property
    def usable(self) -> bool:
        """What a risk engine should use: converged, and good with no approval needed, or
        signed off by an approver (who may accept a failed gate: the stability gate flags
        a regime change the approver has checked)."""
        return self.converged and (
            self.approval == "approved" or (self.good and self.approval == "auto")
        )

    @property
    def key(self) -> str:
        """``UNDERLYING|EXPIRY`` for a smile, ``UNDERLYING|surface`` for a surface."""
        return book_key(self.underlying, None if self.expiries else self.expiry)

    @property
    def subject(self) -> str:
        """What people read in alerts and tables: ``EURUSD 2027-11-25 sabr``."""
        return f"{self.key.replace('|', ' ')} {self.model}"

    def to_wire(self) -> dict:
        wire = _wire(self)
        if self.expiries is None:  # a smile's message is as it always was
            del wire["spot"], wire["expiries"]
        else:
            wire["expiries"] = list(self.expiries)
        return wire

    @classmethod
    def from_wire(cls, data: dict) -> Params:
        _reject_unknown(cls, data)
        return cls(
            underlying=f.name(data, "underlying"),
            expiry=f.date(data, "expiry").isoformat(),
            model=f.text(data, "model", choices=("sabr", "heston")),
            params=f.number_map(data, "params", allow_none=True),
            forward=f.finite(data, "forward", positive=True),
            time_to_expiry=f.finite(data, "time_to_expiry", positive=True),
            converged=f.boolean(data, "converged"),
            status=f.text(data, "status"),
            warm=f.boolean(data, "warm"),
            iterations=f.integer(data, "iterations"),
            rmse=f.optional(f.finite, data, "rmse", nonnegative=True),
            gates=_gates(data),
            diagnostics=f.number_map(data, "diagnostics", allow_none=True),
            window_start=f.timestamp(data, "window_start"),
            window_end=f.timestamp(data, "window_end"),
            n_quotes=f.integer(data, "n_quotes"),
            received_at=f.finite(data, "received_at", nonnegative=True),
            published_at=f.finite(data, "published_at", nonnegative=True),
            spot=f.optional(f.finite, data, "spot", positive=True),
            expiries=_expiries(data),
            approval=f.optional(f.text, data, "approval", choices=APPROVALS) or "auto",
            record_seq=f.optional(f.integer, data, "record_seq"),
        )


@dataclass(frozen=True)
class Alert(_Fields):
    """A health alert for operators: which rule fired on what, how badly, and the figures.

    A rule over a condition (a fit that did not converge, a parameter's drift, a lagging
    partition) sends ``state`` ``firing`` once when the condition starts and ``resolved`` once
    when it clears, both with the same ``key`` (the smile's or surface's key, a model, a
    partition) and ``rule``: what an operator's console pairs them by. A ``notice`` (a
    runbook's outcome, a flagged job, a calibration that raised) reports an event and resolves
    nothing. ``runbook`` names the step of the playbook's runbooks that the alert asks for.
    ``figures["suppressed"]``, when present, counts this key's alerts held back since its last
    one (at most ``alerts.AlertConfig.per_minute`` a minute per key: one bad surface never
    floods the topic)."""

    TYPE = "alert"
    VERSION = 2

    ts: float
    severity: str
    rule: str
    subject: str
    message: str
    figures: dict[str, float | None] = field(default_factory=dict)
    key: str = ""
    state: str = "notice"
    runbook: str = ""

    @classmethod
    def from_wire(cls, data: dict) -> Alert:
        _reject_unknown(cls, data)
        return cls(
            ts=f.timestamp(data, "ts"),
            severity=f.text(data, "severity", choices=SEVERITIES),
            rule=f.text(data, "rule", max_len=64),
            subject=f.text(data, "subject", max_len=128),
            message=f.text(data, "message", max_len=f.TEXT_MAX),
            figures=f.number_map(data, "figures", allow_none=True),
            key=f.text(data, "key", max_len=128),
            state=f.text(data, "state", choices=ALERT_STATES),
            runbook=f.text(data, "runbook", max_len=f.TEXT_MAX),
        )


@dataclass(frozen=True)
class JobResult(_Fields):
    """A playbook job's finding on one subject (a pair, an index, or the indices of a joint
    fit), as the worker's schedule ran it on the stream's surfaces: its headline lines, its
    figures (``table.column`` or ``table.row.column`` names) and the gates that failed."""

    TYPE = "job_result"
    VERSION = 1

    ts: float
    job: str
    subject: str
    good: bool
    title: str
    lines: tuple[str, ...] = ()
    figures: dict[str, float | None] = field(default_factory=dict)
    failed: tuple[str, ...] = ()  # the gates that failed

    @property
    def key(self) -> str:
        return f"{self.job}|{self.subject}"

    @classmethod
    def from_wire(cls, data: dict) -> JobResult:
        _reject_unknown(cls, data)
        return cls(
            ts=f.timestamp(data, "ts"),
            job=f.text(data, "job", max_len=64),
            subject=f.text(data, "subject", max_len=128),
            good=f.boolean(data, "good"),
            title=f.text(data, "title", max_len=256),
            lines=f.text_list(data, "lines", max_len=f.TEXT_MAX),
            figures=f.number_map(data, "figures", allow_none=True),
            failed=f.text_list(data, "failed", max_len=128),
        )


@dataclass(frozen=True)
class DeadLetter(_Fields):
    """A message that was rejected: the reason code, the detail, and where it came from.

    ``original`` keeps the first ``DEAD_LETTER_KEEP`` bytes; ``original_size`` the full size.
    """

    TYPE = "dead_letter"
    VERSION = 1

    ts: float
    reason: str
    detail: str
    original: bytes
    original_size: int
    topic: str
    partition: int
    offset: int

    @classmethod
    def from_wire(cls, data: dict) -> DeadLetter:
        _reject_unknown(cls, data)
        original = data.get("original")
        if not isinstance(original, bytes):
            raise SchemaError("wrong_type", "field 'original' must be bytes")
        return cls(
            ts=f.timestamp(data, "ts"),
            reason=f.text(data, "reason", max_len=64),
            detail=f.text(data, "detail", max_len=f.TEXT_MAX),
            original=original,
            original_size=f.integer(data, "original_size"),
            topic=f.text(data, "topic", max_len=249),
            partition=f.integer(data, "partition"),
            offset=f.integer(data, "offset"),
        )


@dataclass(frozen=True)
class WarmState(_Fields):
    """Where the next calibration of one smile or surface starts: the compacted state topic
    holds the latest per key (:func:`schemas.keys.book_key`), so a restarted worker, or one
    taking partitions over, starts warm.

    ``warm`` holds the last good parameters (converged, every gate passed): the next fit starts
    there. ``prior`` holds the last converged ones: the stability gate compares with them.
    ``epoch`` is the event-time epoch of that calibration (``ts // epoch length``).
    ``audit_seq`` and ``audit_hash`` are the key's last :class:`CalibrationRecord`'s ``seq``
    and ``record_hash``: where its audit chain goes on. With approvals on, ``approved`` holds
    the parameters last approved, with that fit's ``rmse`` (what a material change is measured
    from), and ``pending`` the same of the last record while it waits for a decision."""

    TYPE = "warm_state"
    VERSION = 2

    epoch: int | None = None
    warm: dict[str, float] | None = None
    prior: dict[str, float] | None = None
    audit_seq: int | None = None
    audit_hash: str | None = None
    approved: dict[str, float | None] | None = None
    pending: dict[str, float | None] | None = None

    @classmethod
    def from_wire(cls, data: dict) -> WarmState:
        _reject_unknown(cls, data)
        return cls(
            epoch=f.optional(f.integer, data, "epoch", nonnegative=False),
            warm=f.optional(f.number_map, data, "warm"),
            prior=f.optional(f.number_map, data, "prior"),
            audit_seq=f.optional(f.integer, data, "audit_seq"),
            audit_hash=f.optional(f.text, data, "audit_hash", max_len=64),
            approved=f.optional(f.number_map, data, "approved", allow_none=True),
            pending=f.optional(f.number_map, data, "pending", allow_none=True),
        )  # type: ignore[arg-type]


@dataclass(frozen=True)
class KeyHealth:
    """What the health rules (:mod:`alerts`) remember of one smile or surface, or of a model
    or quotes partition they watch: the compacted health topic holds the latest per key, so a
    restarted worker, or one taking partitions over, judges drift and RMSE against the same
    history and resolves the alerts already firing.

    ``windows`` holds each parameter's values over the last good fits (oldest first), ``rmse``
    their RMSEs, ``failed`` whether each of the last fits did not converge; ``last_fit`` is the
    event time of the last fit, ``prior`` its last good parameters, ``firing`` the rules whose
    alerts are firing on it."""

    TYPE = "key_health"
    VERSION = 1

    model: str
    windows: dict[str, tuple[float, ...]] = field(default_factory=dict)
    rmse: tuple[float, ...] = ()
    failed: tuple[bool, ...] = ()
    last_fit: float | None = None
    prior: dict[str, float] = field(default_factory=dict)
    firing: tuple[str, ...] = ()

    def to_wire(self) -> dict:
        wire = _wire(self)
        wire["windows"] = {k: list(v) for k, v in self.windows.items()}
        for name in ("rmse", "failed", "firing"):
            wire[name] = list(wire[name])
        return wire

    @classmethod
    def from_wire(cls, data: dict) -> KeyHealth:
        _reject_unknown(cls, data)
        windows = data.get("windows")
        if not isinstance(windows, dict) or not all(isinstance(k, str) for k in windows):
            raise SchemaError("wrong_type", "field 'windows' must be a map of names to lists")
        return cls(
            model=f.text(data, "model", max_len=32),
            windows={k: f.number_list(windows, k) for k in windows},
            rmse=f.number_list(data, "rmse"),
            failed=f.flag_list(data, "failed"),
            last_fit=f.optional(f.finite, data, "last_fit"),
            prior=f.number_map(data, "prior"),  # type: ignore[arg-type]
            firing=f.text_list(data, "firing", max_len=64),
        )


@dataclass(frozen=True)
class CalibrationRecord(_Fields):
    """An immutable audit record of one calibration (the governance playbook's
    ``CalibrationRecord``), on the append-only audit topic kept forever, keyed like the
    parameters.

    ``inputs`` archives everything the fit used (the quotes as fitted, forward or spot, rates,
    the warm start, the settings), so it can be run again years later; ``market_data_hash`` is
    the SHA-256 of their canonical encoding (:mod:`audit.canonical`). ``model_version`` pins the
    engine's source and the locked dependencies. Records of one ``key`` form a hash chain:
    ``seq`` counts from 0, ``prev_hash`` is the previous record's ``record_hash`` (64 zeros for
    the first), and ``record_hash`` the SHA-256 of this record's canonical encoding without it
    and without ``inputs`` (``market_data_hash`` commits to those): a removed, reordered or
    altered record breaks the chain. ``validation_status``: ``passed``
    (converged, every gate passed), ``flagged`` (published flagged), ``pending`` (a material
    change waiting for approval)."""

    TYPE = "calibration_record"
    VERSION = 1

    key: str
    seq: int
    ts: float
    asset: str
    calibration_date: str
    model_type: str
    model_version: str
    parameters: dict[str, float | None]
    market_data_hash: str
    diagnostics: dict[str, float | None]
    converged: bool
    status: str
    operator: str
    validation_status: str
    inputs: dict
    prev_hash: str
    record_hash: str = ""
    approver: str | None = None

    @classmethod
    def from_wire(cls, data: dict) -> CalibrationRecord:
        _reject_unknown(cls, data)
        inputs = f.plain(data, "inputs")
        if not isinstance(inputs, dict):
            raise SchemaError("wrong_type", "field 'inputs' must be a map")
        return cls(
            key=f.text(data, "key", max_len=64),
            seq=f.integer(data, "seq"),
            ts=f.timestamp(data, "ts"),
            asset=f.text(data, "asset", max_len=128),
            calibration_date=f.text(data, "calibration_date", max_len=40),
            model_type=f.text(data, "model_type", choices=MODEL_TYPES),
            model_version=f.text(data, "model_version", max_len=128),
            parameters=f.number_map(data, "parameters", allow_none=True),
            market_data_hash=f.text(data, "market_data_hash", max_len=64),
            diagnostics=f.number_map(data, "diagnostics", allow_none=True),
            converged=f.boolean(data, "converged"),
            status=f.text(data, "status"),
            operator=f.text(data, "operator", max_len=128),
            validation_status=f.text(data, "validation_status", choices=VALIDATION_STATUSES),
            inputs=inputs,
            prev_hash=f.text(data, "prev_hash", max_len=64),
            record_hash=f.text(data, "record_hash", max_len=64),
            approver=f.optional(f.text, data, "approver", max_len=128),
        )


@dataclass(frozen=True)
class Decision(_Fields):
    """An approver's decision on a :class:`CalibrationRecord` (the audit topic, keyed like it):
    ``approved`` or ``rejected``, by ``approver`` holding the Ed25519 key ``public_key`` (32
    bytes, hex), signed (``signature``, 64 bytes, hex) over the canonical encoding of every
    other field (:mod:`audit.approvals`). It names the record by its key, ``seq`` and hash, so
    it cannot be moved onto another."""

    TYPE = "decision"
    VERSION = 1

    ts: float
    record_key: str
    record_seq: int
    record_hash: str
    decision: str
    approver: str
    reason: str
    public_key: str
    signature: str = ""

    @classmethod
    def from_wire(cls, data: dict) -> Decision:
        _reject_unknown(cls, data)
        return cls(
            ts=f.timestamp(data, "ts"),
            record_key=f.text(data, "record_key", max_len=64),
            record_seq=f.integer(data, "record_seq"),
            record_hash=f.text(data, "record_hash", max_len=64),
            decision=f.text(data, "decision", choices=DECISIONS),
            approver=f.text(data, "approver", max_len=128),
            reason=f.text(data, "reason", max_len=f.TEXT_MAX),
            public_key=f.text(data, "public_key", max_len=64),
            signature=f.text(data, "signature", max_len=128),
        )


@dataclass(frozen=True)
class Watermark(_Fields):
    """How current the parameters are for one quotes partition: every quote of ``partition``
    of the quotes topic ``topic`` with event time at or before ``event_time`` is reflected by
    what the params topic holds, either within tolerance of its smile's or surface's latest
    parameters or included in a fit published since (flagged fits count: their ``good`` says
    so). ``pending`` smiles and surfaces are due for a fit and hold ``event_time`` back;
    ``unfit`` names those whose quotes are too few to fit (their quotes are not claimed).
    Published after the parameters it speaks for are delivered; ``ts`` is when (wall clock).
    ``event_time`` never moves back."""

    TYPE = "watermark"
    VERSION = 1

    ts: float
    topic: str
    partition: int
    event_time: float
    pending: int = 0
    unfit: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return watermark_key(self.topic, self.partition)

    @classmethod
    def from_wire(cls, data: dict) -> Watermark:
        _reject_unknown(cls, data)
        return cls(
            ts=f.timestamp(data, "ts"),
            topic=f.text(data, "topic", max_len=249),
            partition=f.integer(data, "partition"),
            event_time=f.timestamp(data, "event_time"),
            pending=f.integer(data, "pending"),
            unfit=f.text_list(data, "unfit", max_len=128),
        )
