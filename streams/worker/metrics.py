"""A worker's Prometheus metrics: what operators watch beside the alerts topic.

The pipeline's counters stay plain integers on the hot path and are read at scrape time; only
the latency and batch histograms are observed as work happens. Each pipeline has a registry of
its own (tests run several), served over HTTP on loopback by :func:`serve`.

| metric | type | labels |
|---|---|---|
| ``volstream_ticks_total`` | counter | quotes consumed, good and bad |
| ``volstream_ticks_out_of_tolerance_total`` | counter | quotes that no current fit reflected: each made its smile or surface due |
| ``volstream_rejected_total`` | counter | ``reason``: quotes sent to the dead-letter topic |
| ``volstream_calibrations_total`` | counter | ``outcome``: ``good`` or ``flagged`` |
| ``volstream_alerts_total`` | counter | alerts published |
| ``volstream_alerts_held_total`` | counter | alerts held back by the per-key bound (counted; the key's next alert says how many) |
| ``volstream_errors_total`` | counter | calibration batches that raised (a bug) |
| ``volstream_runbooks_total`` | counter | ``step``: failed fits put through the failure runbook, by the step that fixed them, or ``escalated`` |
| ``volstream_playbook_jobs_total`` | counter | ``job``, ``outcome`` (good, flagged: findings of the scheduled playbook jobs; skipped: runs not started because the last was still going) |
| ``volstream_surfaces`` | gauge | smiles and surfaces held |
| ``volstream_tick_to_publish_seconds`` | histogram | ``model``: first tick of a snapshot received -> its parameters sent |
| ``volstream_batch_seconds`` | histogram | one micro-batch, decode to delivered |
| ``volstream_batch_messages`` | histogram | messages in one micro-batch |
| ``volstream_warming_up`` | gauge | 1 while the larger batch shapes still compile in the background |
| ``volstream_compiles_total`` | counter | XLA programs compiled since start (past the warm-up: a shape it missed, a stall) |
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["WorkerMetrics", "scrape", "serve"]

log = logging.getLogger(__name__)

_SECONDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MESSAGES = tuple(float(2**k) for k in range(12))


class _Counts(Collector):
    """The pipeline's counters and surface count, read when Prometheus scrapes."""

    def __init__(self, read: Callable[[], tuple[Any, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        counters, surfaces = self.read()
        yield CounterMetricFamily("volstream_ticks", "Quotes consumed", value=counters.ticks)
        yield CounterMetricFamily(
            "volstream_ticks_out_of_tolerance",
            "Quotes no current fit reflected (each made its smile due)",
            value=counters.out_of_tolerance,
        )
        rejected = CounterMetricFamily(
            "volstream_rejected", "Quotes sent to the dead-letter topic", labels=["reason"]
        )
        for reason, n in sorted(counters.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        outcomes = CounterMetricFamily(
            "volstream_calibrations", "Parameters published", labels=["outcome"]
        )
        outcomes.add_metric(["good"], counters.calibrations - counters.flagged)
        outcomes.add_metric(["flagged"], counters.flagged)
        yield outcomes
        yield CounterMetricFamily("volstream_alerts", "Alerts published", value=counters.alerts)
        yield CounterMetricFamily(
            "volstream_alerts_held",
            "Alerts held back by the per-key bound (one bad key never floods the topic)",
            value=counters.alerts_held,
        )
        yield CounterMetricFamily(
            "volstream_errors", "Calibration batches that raised", value=counters.errors
        )
        runbooks = CounterMetricFamily(
            "volstream_runbooks",
            "Failed fits put through the runbook, by the step that fixed them (or escalated)",
            labels=["step"],
        )
        for step, n in sorted(counters.runbooks.items()):
            runbooks.add_metric([step], n)
        yield runbooks
        jobs = CounterMetricFamily(
            "volstream_playbook_jobs",
            "Scheduled playbook job findings, by job and outcome",
            labels=["job", "outcome"],
        )
        for (job, outcome), n in sorted(counters.jobs.items()):
            jobs.add_metric([job, outcome], n)
        yield jobs
        yield GaugeMetricFamily("volstream_surfaces", "Smiles and surfaces held", value=surfaces)


class WorkerMetrics:
    """The registry of one pipeline; ``read`` returns its counters and surface count."""

    def __init__(self, read: Callable[[], tuple[Any, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Counts(read))
        self.latency = Histogram(
            "volstream_tick_to_publish_seconds",
            "First tick of a snapshot received by the worker -> its parameters sent",
            ["model"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "volstream_batch_seconds",
            "One micro-batch, decode to delivered",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.batch_messages = Histogram(
            "volstream_batch_messages",
            "Messages in one micro-batch",
            buckets=_MESSAGES,
            registry=self.registry,
        )
        self.warming_up = Gauge(
            "volstream_warming_up",
            "1 while the larger batch shapes still compile in the background",
            registry=self.registry,
        )
        self.compiles = Counter(
            "volstream_compiles", "XLA programs compiled since start", registry=self.registry
        )

    def count_compiles(self) -> None:
        """Count every XLA compilation of this process from now on (JAX's own event)."""
        import jax

        def listener(event: str, duration: float, **kwargs) -> None:
            if event == "/jax/core/compile/backend_compile_duration":
                self.compiles.inc()

        jax.monitoring.register_event_duration_secs_listener(listener)


def serve(metrics: WorkerMetrics, host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port``; a port in use is logged, never fatal (a worker
    must not stop calibrating for want of a metrics endpoint). Port 0 serves nothing."""
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", host, port, exc)
        return
    log.warning("metrics on http://%s:%d/metrics", host, port)


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> dict[tuple, float]:
    """A worker's ``/metrics`` as ``{(sample name, sorted labels): value}``: what the demo, the
    stream benchmark and the tests read (raises ``OSError`` while nothing is served)."""
    url = f"http://{host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
