"""Worker settings, from the environment (faust's convention), with defaults for one machine.

| variable | default | meaning |
|---|---|---|
| ``KAFKA_BOOTSTRAP_SERVERS`` | ``127.0.0.1:9092`` | brokers |
| KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_..., KAFKA_SSL_... | ``PLAINTEXT`` | TLS and SASL/SCRAM of every Kafka client: the table of ``streams.access`` |
| ``VOLSTREAM_APP_ID`` | ``volstream`` | faust app id (the consumer group) |
| ``VOLSTREAM_TOPIC_PREFIX`` | ``volstream`` | topics are ``PREFIX.quotes``, ``.params``, ``.alerts``, ``.dlq``, ``.state``, ``.jobs``, ``.watermarks``, ``.health``, ``.audit``, ``.decisions`` |
| ``VOLSTREAM_PARTITIONS`` | ``6`` | partitions of the quotes and params topics |
| ``VOLSTREAM_BETAS`` | | fixed SABR beta per underlying, ``USDJPY=0.6,EURUSD=0.5`` |
| ``VOLSTREAM_BETA`` | ``0.5`` | beta of every other underlying |
| ``VOLSTREAM_EPOCH`` | ``0.025`` | event-time seconds of an epoch: each smile or surface is calibrated at most once per epoch, from its latest quotes (see ``streams.book.surfaces``) |
| ``VOLSTREAM_LINGER`` | ``0.25`` | wall-clock seconds a partition may be quiet before its open epoch is calibrated anyway |
| ``VOLSTREAM_WARM_BATCHES`` | ``8,32,128,512`` | SABR batch sizes compiled at start: the first before the worker listens, the rest in the background (a worker of a few smiles needs only the small ones; a batch of another size compiles when first met) |
| ``VOLSTREAM_WARM_RUNBOOK`` | ``1`` | ``1``: after the batch shapes, load every failure-runbook step in the background (a surface's first runbook otherwise loads its programs for ~10 s of a 2-core machine's CPU, in the middle of the stream; ~26 s when they had to be traced); ``0``: not (the demo, whose few smiles rarely fail) |
| ``VOLSTREAM_BATCH_MAX`` | ``2048`` | most messages per micro-batch (a batch takes all that wait, up to this; see ``streams.worker.agent``) |
| ``VOLSTREAM_TOLERANCE_FLOOR_BP`` | ``5`` | vol bp: a quote whose mid is farther from its smile's (surface's) current fit than half its bid-ask spread, and at least this, makes it due (see ``streams.book.surfaces``) |
| ``VOLSTREAM_TOLERANCE_BP`` | ``10`` | vol bp: the tolerance of a quote without bid and ask |
| ``VOLSTREAM_MIN_INTERVAL`` | ``0.5`` | event-time seconds between two calibrations of one smile or surface |
| ``VOLSTREAM_TRIGGER_AGE`` | ``30`` | event-time seconds after which a smile with news is due even within tolerance |
| ``VOLSTREAM_MAX_QUOTE_AGE`` | ``300`` | event-time seconds a quote stays in its smile or surface (older ones age out; a tick this far behind its partition is dead-lettered ``stale``) |
| ``VOLSTREAM_EVICT_AFTER`` | ``3600`` | event-time seconds without a quote before a smile or surface is dropped from the book (its health history and page entry too; said in the log and ``volstream_evicted_total``); at least ``VOLSTREAM_MAX_QUOTE_AGE`` |
| ``VOLSTREAM_RUNBOOK_COOLDOWN`` | ``300`` | wall-clock seconds before a smile or surface whose fit failed may walk the failure runbook again (``0``: never walk it; see ``engine.runbook``) |
| ``VOLSTREAM_JOBS`` | ``DEFAULT_JOBS`` | playbook jobs the worker runs on its current surfaces: ``NAME=CADENCE [DAY] HH:MM`` (UTC; cadence daily, weekly with a weekday, monthly or quarterly with a day 1-28) or ``NAME=every N{s,m,h}`` (intraday) separated by ``;``; ``none``: no jobs (see ``streams.worker.jobs``) |
| ``VOLSTREAM_ALERTS`` | | health rules' thresholds, ``NAME=VALUE,...`` of ``alerts.AlertConfig`` (``z=3,condition=500,per_minute=6``: drift z-score, identifiability condition number, alerts per key a minute; see ``alerts.config``) |
| ``VOLSTREAM_AUDIT`` | ``1`` | ``1``: a hash-chained ``CalibrationRecord`` of every fit, with the inputs to run it again, on ``PREFIX.audit`` (kept forever); ``0``: none |
| ``VOLSTREAM_OPERATOR`` | ``volstream worker APP_ID`` | who runs the calibrations, named in their records (an approver must be someone else) |
| ``VOLSTREAM_APPROVERS`` | | approvals on: the approvers' names and Ed25519 public keys, ``bob=HEX,carol=HEX`` (``volstream keys new`` makes a pair); a material change then waits for one of them (``volstream approve``) |
| ``VOLSTREAM_MATERIAL`` | ``move=0.5,rmse_jump=3`` | what makes a change material, ``NAME=VALUE,...`` of ``audit.Materiality``, for every model or one (``heston.move=1``) |
| ``VOLSTREAM_SESSION_TIMEOUT`` | ``6`` | seconds without a heartbeat (sent every quarter of it) before the group gives a dead worker's partitions to the others: how soon a worker killed outright is replaced (faust's default, 60 s, made failover take a minute; 6 s is the least Kafka's brokers allow by default) |
| ``VOLSTREAM_CHECKPOINT`` | ``1`` | ``1``: the worker keeps its book, warm starts and health in ``STATE_DIR/checkpoints`` before its quotes are committed, and a restart on the same partitions resumes from there, bit for bit as if it had never stopped (see ``streams.worker.checkpoint``); ``0``: a restart rebuilds from the topics (warm, not bit-identical) |
| ``VOLSTREAM_CHECKPOINT_EVERY`` | ``0.5`` | wall-clock seconds between two checkpoints (``0``: after every batch); the batches between wait for the next to be acked, so a crash publishes at most about this much again |
| ``VOLSTREAM_METRICS_PORT`` | ``9464`` | the worker's HTTP port: Prometheus ``/metrics`` and the live page ``/`` (``0``: none; see ``streams.worker.metrics``, ``streams.live``) |
| ``VOLSTREAM_METRICS_HOST`` | ``127.0.0.1`` | the address it listens on |
| ``VOLSTREAM_STATE_DIR`` | ``~/.volstream`` | local state (broker data, logs, compile cache) |
| ``VOLSTREAM_JAX_CACHE`` | ``STATE_DIR/jax-cache`` | compiled programs, shared by the workers of a machine (``volstream compile`` fills it) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from alerts import AlertConfig
from audit import Materiality
from playbooks.names import JOB_NAMES
from streams.access import KafkaSecurity
from streams.book.surfaces import SurfaceConfig

__all__ = ["DEFAULT_JOBS", "TOPIC_KINDS", "JobSchedule", "Settings", "TopicSpec"]

TOPIC_KINDS = (
    "quotes",
    "params",
    "alerts",
    "dlq",
    "state",
    "jobs",
    "watermarks",
    "health",
    "audit",
    "decisions",
)
_DAY_MS = 24 * 3600 * 1000


class TopicSpec(NamedTuple):
    """How a topic is created: by the app (faust) or by producers (``ensure_topics``) alike."""

    name: str
    partitions: int
    config: dict[str, str]  # Kafka topic configs


def _pairs(text: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` items separated by ``,`` (blanks ignored), as (name, value)."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        out.append((name.strip(), value.strip()))
    return out


def _betas(text: str) -> dict[str, float]:
    out = {}
    for name, value in _pairs(text):
        beta = float(value)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"VOLSTREAM_BETAS: beta of {name} must lie in [0, 1], got {beta}")
        out[name] = beta
    return out


CADENCES = ("daily", "weekly", "monthly", "quarterly", "every")
_UNITS = {"s": 1, "m": 60, "h": 3600}  # of an "every" period
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# the playbooks' rhythm, pre-market (UTC): daily SABR, weekly Heston on Mondays, the joint fit
# on the 1st of each month, model selection on the 1st of each quarter
DEFAULT_JOBS = (
    "daily-sabr=daily 06:00; weekly-heston=weekly mon 06:00; joint=monthly 1 06:00; "
    "model-selection=quarterly 1 06:00"
)


class JobSchedule(NamedTuple):
    """When the worker runs a playbook job: ``cadence`` daily, weekly (on ``day`` 0 = Monday),
    monthly or quarterly (on day ``day`` of the month; quarters start in January, April, July
    and October), at ``hour``:``minute`` UTC; or ``every`` ``period`` seconds (intraday, at
    whole multiples of the period since midnight UTC, so ``every 15m`` runs at :00, :15...)."""

    job: str
    cadence: str
    day: int
    hour: int
    minute: int
    period: int = 0  # seconds, for cadence "every"


def _jobs(text: str) -> tuple[JobSchedule, ...]:
    """``NAME=CADENCE [DAY] HH:MM`` or ``NAME=every N{s,m,h}`` items separated by ``;``
    (``none``: no jobs)."""
    if text.strip().lower() == "none":
        return ()
    out = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        name, _, when = (x.strip() for x in item.partition("="))
        words = when.lower().split()
        try:
            if name not in JOB_NAMES:
                raise ValueError(f"no playbook job {name!r} (the jobs: {', '.join(JOB_NAMES)})")
            if not words or words[0] not in CADENCES:
                raise ValueError(f"the cadence is one of {', '.join(CADENCES)}")
            if words[0] == "every":
                out.append(JobSchedule(name, "every", 0, 0, 0, _period(words[1:])))
                continue
            needs_day = words[0] != "daily"
            if len(words) != 2 + needs_day:
                raise ValueError("say CADENCE [DAY] HH:MM, e.g. 'weekly mon 06:00'")
            hour, minute = (int(x) for x in words[-1].split(":"))
            if not (0 <= hour < 24 and 0 <= minute < 60):
                raise ValueError(f"{words[-1]} is not a time of day")
            day = 0
            if words[0] == "weekly":
                day = WEEKDAYS.index(words[1][:3]) if words[1][:3] in WEEKDAYS else -1
                if day < 0:
                    raise ValueError(f"{words[1]!r} is not a weekday")
            elif needs_day:
                day = int(words[1])
                if not 1 <= day <= 28:
                    raise ValueError(f"day {day} of the month: give 1-28 (every month has it)")
        except ValueError as exc:
            raise ValueError(f"VOLSTREAM_JOBS: {item!r}: {exc}") from None
        out.append(JobSchedule(name, words[0], day, hour, minute))
    return tuple(out)


def _period(words: list[str]) -> int:
    """``30s``, ``15m`` or ``2h`` as seconds: a period that divides a day, so each day's runs
    fall at the same times."""
    text = "".join(words)
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise ValueError("say 'every N' with a unit s, m or h, e.g. 'every 15m'")
    period = int(text[:-1]) * _UNITS[text[-1]]
    if not 0 < period <= 86400 or 86400 % period:
        raise ValueError(f"every {text}: give a period that divides a day (e.g. 30s, 15m, 2h)")
    return period


def _flag(name: str, value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(f"{name} must be 1 or 0, not {value!r}")
    return value == "1"


def _sizes(name: str, text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise ValueError(f"{name}: a comma-separated list of batch sizes, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"{name}: at least one batch size, each >= 1, got {text!r}")
    return sizes


def _alerts(text: str) -> AlertConfig:
    """``NAME=VALUE`` pairs of :class:`alerts.AlertConfig` separated by ``,``."""
    defaults = AlertConfig()
    given = {}
    for name, value in _pairs(text):
        if not hasattr(defaults, name):
            known = ", ".join(f.name for f in fields(AlertConfig))
            raise ValueError(f"VOLSTREAM_ALERTS: no threshold {name!r}; known: {known}")
        kind = type(getattr(defaults, name))
        try:
            given[name] = kind(value)
        except ValueError:
            what = "whole number" if kind is int else "number"
            raise ValueError(f"VOLSTREAM_ALERTS: {name} takes a {what}, got {value!r}") from None
    return AlertConfig(**given)


MODELS = ("sabr", "heston")


def _material(text: str) -> dict[str, Materiality]:
    """``[MODEL.]NAME=VALUE`` pairs of :class:`audit.Materiality` separated by ``,``: without
    a model for every model, with one for that model (which wins)."""
    given: dict[str, dict[str, object]] = {m: {} for m in MODELS}
    everywhere: dict[str, object] = {}
    defaults = Materiality()
    for name, value in _pairs(text):
        model, _, what = name.rpartition(".")
        if model and model not in MODELS:
            raise ValueError(f"VOLSTREAM_MATERIAL: no model {model!r}; known: {', '.join(MODELS)}")
        if not hasattr(defaults, what):
            known = ", ".join(f.name for f in fields(Materiality))
            raise ValueError(f"VOLSTREAM_MATERIAL: no rule {what!r}; known: {known}")
        if type(getattr(defaults, what)) is bool:
            number: object = _flag(f"VOLSTREAM_MATERIAL {name}", value)
        else:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(
                    f"VOLSTREAM_MATERIAL: {name} takes a number, got {value!r}"
                ) from None
        (given[model] if model else everywhere)[what] = number
    return {m: Materiality(**(everywhere | given[m])) for m in MODELS}  # type: ignore[arg-type]


def _approvers(text: str) -> dict[str, str]:
    out = {}
    for name, key in _pairs(text):
        try:
            ok = len(bytes.fromhex(key)) == 32
        except ValueError:
            ok = False
        if not name or not ok:
            raise ValueError(
                f"VOLSTREAM_APPROVERS: {name or '?'}={key} is not NAME=PUBLIC_KEY (64 hex digits, "
                "as `volstream keys new` prints)"
            )
        out[name] = key.lower()
    return out


@dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)  # TLS, SASL (streams.access)
    app_id: str = "volstream"
    topic_prefix: str = "volstream"
    partitions: int = 6
    betas: dict[str, float] = field(default_factory=dict)
    default_beta: float = 0.5
    batch_max: int = 2048
    warm_batches: tuple[int, ...] = (8, 32, 128, 512)
    warm_runbook: bool = True
    linger: float = 0.25
    session_timeout: float = (
        6.0  # s: a worker silent this long loses its partitions (Kafka's least)
    )
    runbook_cooldown: float = 300.0
    jobs: tuple[JobSchedule, ...] = ()  # playbook jobs on a schedule (from_env: DEFAULT_JOBS)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    surface: SurfaceConfig = field(default_factory=SurfaceConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    audit: bool = True  # a chained CalibrationRecord of every fit on PREFIX.audit
    checkpoint: bool = True  # a worker's state on local disk, for restarts
    checkpoint_every: float = 0.5  # s between two checkpoints (0: after every batch)
    operator: str = ""  # who runs the fits ("": volstream worker APP_ID)
    approvers: dict[str, str] = field(default_factory=dict)  # name -> public key; {}: off
    material: dict[str, Materiality] = field(default_factory=lambda: _material(""))
    state_dir: Path = field(default_factory=lambda: Path.home() / ".volstream")
    jax_cache: Path | None = None  # compiled programs; None: state_dir / "jax-cache"

    def client(self, **more: Any) -> dict[str, Any]:
        """The keyword arguments of an aiokafka client of this broker (``more`` added): where
        it is and how to reach it (:class:`streams.access.KafkaSecurity`)."""
        return {"bootstrap_servers": self.bootstrap, **self.security.options(), **more}

    @property
    def compile_cache(self) -> Path:
        """Where workers keep compiled programs (shared by every worker given the same)."""
        return self.jax_cache or self.state_dir / "jax-cache"

    def use_compile_cache(self) -> None:
        """Keep JAX's compiled programs in :attr:`compile_cache`: a restart loads them instead
        of tracing and compiling again (seconds, not minutes)."""
        from streams.compile_cache import use_compile_cache

        use_compile_cache(self.compile_cache)

    @property
    def operator_name(self) -> str:
        """Who the calibration records name as operator (an approver must be another)."""
        return self.operator or f"volstream worker {self.app_id}"

    @property
    def approvals(self) -> bool:
        """Material changes wait for an approver: on when approvers are registered (and the
        audit trail, whose records they approve, is on)."""
        return bool(self.approvers) and self.audit

    @property
    def topics(self) -> dict[str, str]:
        """Topic name of each kind (:data:`TOPIC_KINDS`)."""
        return {kind: f"{self.topic_prefix}.{kind}" for kind in TOPIC_KINDS}

    @property
    def topic_specs(self) -> dict[str, TopicSpec]:
        """Partitions and configs of every topic, the one place they are decided."""
        keep = lambda days: {"retention.ms": str(days * _DAY_MS)}  # noqa: E731
        shape = {
            "quotes": (self.partitions, keep(7)),
            "params": (self.partitions, keep(30)),
            "alerts": (1, keep(30)),
            "dlq": (1, keep(30)),
            "state": (1, {"cleanup.policy": "compact"}),  # last warm-start state per smile
            "jobs": (1, keep(400)),  # scheduled playbook findings: the model-risk audit trail
            "watermarks": (1, {"cleanup.policy": "compact"}),  # the latest per quotes partition
            "health": (1, {"cleanup.policy": "compact"}),  # the health rules' history per key
            # calibration records: append-only and kept forever (model risk audits them)
            "audit": (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
            # approvers' signed decisions on those records: kept forever, read by every worker
            "decisions": (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
        }
        return {kind: TopicSpec(self.topics[kind], *shape[kind]) for kind in TOPIC_KINDS}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        get = env.get
        return cls(
            bootstrap=get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            security=KafkaSecurity.from_env(env),
            app_id=get("VOLSTREAM_APP_ID", "volstream"),
            topic_prefix=get("VOLSTREAM_TOPIC_PREFIX", "volstream"),
            partitions=int(get("VOLSTREAM_PARTITIONS", "6")),
            betas=_betas(get("VOLSTREAM_BETAS", "")),
            default_beta=float(get("VOLSTREAM_BETA", "0.5")),
            batch_max=int(get("VOLSTREAM_BATCH_MAX", "2048")),
            warm_batches=_sizes(
                "VOLSTREAM_WARM_BATCHES", get("VOLSTREAM_WARM_BATCHES", "8,32,128,512")
            ),
            warm_runbook=_flag("VOLSTREAM_WARM_RUNBOOK", get("VOLSTREAM_WARM_RUNBOOK", "1")),
            linger=float(get("VOLSTREAM_LINGER", "0.25")),
            session_timeout=float(get("VOLSTREAM_SESSION_TIMEOUT", "6")),
            runbook_cooldown=float(get("VOLSTREAM_RUNBOOK_COOLDOWN", "300")),
            jobs=_jobs(get("VOLSTREAM_JOBS", DEFAULT_JOBS)),
            metrics_host=get("VOLSTREAM_METRICS_HOST", "127.0.0.1"),
            metrics_port=int(get("VOLSTREAM_METRICS_PORT", "9464")),
            surface=SurfaceConfig(
                tolerance_floor_bp=float(get("VOLSTREAM_TOLERANCE_FLOOR_BP", "5")),
                tolerance_bp=float(get("VOLSTREAM_TOLERANCE_BP", "10")),
                min_interval=float(get("VOLSTREAM_MIN_INTERVAL", "0.5")),
                max_age=float(get("VOLSTREAM_TRIGGER_AGE", "30")),
                epoch=float(get("VOLSTREAM_EPOCH", "0.025")),
                max_quote_age=float(get("VOLSTREAM_MAX_QUOTE_AGE", "300")),
                evict_after=float(get("VOLSTREAM_EVICT_AFTER", "3600")),
            ),
            alerts=_alerts(get("VOLSTREAM_ALERTS", "")),
            audit=_flag("VOLSTREAM_AUDIT", get("VOLSTREAM_AUDIT", "1")),
            checkpoint=_flag("VOLSTREAM_CHECKPOINT", get("VOLSTREAM_CHECKPOINT", "1")),
            checkpoint_every=float(get("VOLSTREAM_CHECKPOINT_EVERY", "0.5")),
            operator=get("VOLSTREAM_OPERATOR", ""),
            approvers=_approvers(get("VOLSTREAM_APPROVERS", "")),
            material=_material(get("VOLSTREAM_MATERIAL", "")),
            state_dir=Path(get("VOLSTREAM_STATE_DIR", Path.home() / ".volstream")),
            jax_cache=Path(get("VOLSTREAM_JAX_CACHE")) if get("VOLSTREAM_JAX_CACHE") else None,
        )
