"""A worker's Prometheus metrics: what operators watch beside the alerts topic.

The pipeline's counters stay plain integers on the hot path and are read at scrape time; only
the latency and batch histograms are observed as work happens. Each pipeline has a registry of
its own (tests run several), served over HTTP on loopback with the live page
(:func:`streams.live.server.serve`).

| metric | type | labels |
|---|---|---|
| ``volstream_ticks_total`` | counter | quotes consumed, good and bad |
| ``volstream_ticks_out_of_tolerance_total`` | counter | quotes that no current fit reflected: each made its smile or surface due |
| ``volstream_rejected_total`` | counter | ``reason``: quotes sent to the dead-letter topic |
| ``volstream_calibrations_total`` | counter | ``model``, ``asset_class``, ``outcome``: ``good``, ``flagged`` (converged, a gate failed) or ``failed`` (not converged): the success rate |
| ``volstream_warm_starts_total`` | counter | ``model``, ``asset_class``: fits started from the key's last good fit (the warm-start hit rate, over ``volstream_calibrations_total``) |
| ``volstream_fit_iterations`` | histogram | ``model``, ``asset_class``: solver steps to convergence |
| ``volstream_fit_rmse_bp`` | histogram | ``model``, ``asset_class``: a fit's RMSE in vol bp (the RMSE distribution) |
| ``volstream_fit_drift_z`` | histogram | ``model``, ``asset_class``: a good fit's largest parameter |z| against its key's window (parameter stability) |
| ``volstream_fit_condition_number`` | histogram | ``model``, ``asset_class``: identifiability (scaled-Jacobian condition number) |
| ``volstream_watermark_lag_seconds`` | gauge | ``partition``: the newest tick's event time minus the watermark's (freshness) |
| ``volstream_consumer_lag_messages`` | gauge | ``partition``: quotes not yet consumed (data ingestion lag) |
| ``volstream_batch_ticks`` | histogram | ticks in one micro-batch |
| ``process_cpu_seconds_total``, ``process_resident_memory_bytes`` | counter, gauge | the worker process's CPU and memory (system resources) |
| ``volstream_alerts_total`` | counter | alerts published |
| ``volstream_alerts_held_total`` | counter | alerts held back by the per-key bound (counted; the key's next alert says how many) |
| ``volstream_errors_total`` | counter | calibration batches that raised (a bug) |
| ``volstream_broker_errors_total`` | counter | the Kafka clients' failed attempts to reach the broker (an outage: see ``streams.worker.outage``) |
| ``volstream_runbooks_total`` | counter | ``step``: failed fits put through the failure runbook, by the step that fixed them, or ``escalated`` |
| ``volstream_playbook_jobs_total`` | counter | ``job``, ``outcome`` (good, flagged: findings of the scheduled playbook jobs; skipped: runs not started because the last was still going) |
| ``volstream_surfaces`` | gauge | smiles and surfaces held |
| ``volstream_evicted_total`` | counter | smiles and surfaces dropped from the book: no quote for ``VOLSTREAM_EVICT_AFTER`` seconds of event time |
| ``volstream_tick_to_publish_seconds`` | histogram | ``model``, ``asset_class``: first tick of a snapshot received -> its parameters sent (calibration latency p50/p95/p99) |
| ``volstream_batch_seconds`` | histogram | one micro-batch, decode to delivered |
| ``volstream_batch_messages`` | histogram | messages in one micro-batch |
| ``volstream_warming_up`` | gauge | 1 while the larger batch shapes still compile in the background |
| ``volstream_compiles_total`` | counter | XLA programs compiled since start (past the warm-up: a shape it missed, a stall) |
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["WorkerMetrics", "scrape"]


_SECONDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MESSAGES = tuple(float(2**k) for k in range(12))
_TICKS = tuple(float(4**k) for k in range(10))
_STEPS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0, 233.0, 377.0, 500.0)
_BP = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0)
_Z = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
_CONDITION = (3.0, 10.0, 30.0, 100.0, 300.0, 500.0, 1000.0, 3000.0, 10000.0)


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
        yield CounterMetricFamily("volstream_alerts", "Alerts published", value=counters.alerts)
        yield CounterMetricFamily(
            "volstream_alerts_held",
            "Alerts held back by the per-key bound (one bad key never floods the topic)",
            value=counters.alerts_held,
        )
        yield CounterMetricFamily(
            "volstream_errors", "Calibration batches that raised", value=counters.errors
        )
        yield CounterMetricFamily(
            "volstream_evicted",
            "Smiles and surfaces dropped from the book (no quote for VOLSTREAM_EVICT_AFTER s)",
            value=counters.evicted,
        )
        yield CounterMetricFamily(
            "volstream_broker_errors",
            "Kafka client errors reaching the broker (a broker out of reach: logged every 30 s)",
            value=counters.broker_errors,
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
        ProcessCollector(registry=self.registry)
        fit = ["model", "asset_class"]
        self.latency = Histogram(
            "volstream_tick_to_publish_seconds",
            "First tick of a snapshot received by the worker -> its parameters sent",
            fit,
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.calibrations = Counter(
            "volstream_calibrations",
            "Parameters published: good, flagged (a gate failed) or failed (not converged)",
            [*fit, "outcome"],
            registry=self.registry,
        )
        self.warm_starts = Counter(
            "volstream_warm_starts",
            "Fits started from the key's last good fit",
            fit,
            registry=self.registry,
        )
        self.iterations = Histogram(
            "volstream_fit_iterations", "Solver steps of a fit", fit, buckets=_STEPS,
            registry=self.registry,
        )  # fmt: skip
        self.rmse_bp = Histogram(
            "volstream_fit_rmse_bp", "A fit's RMSE, vol bp", fit, buckets=_BP,
            registry=self.registry,
        )  # fmt: skip
        self.drift_z = Histogram(
            "volstream_fit_drift_z",
            "A good fit's largest parameter |z| against its key's window",
            fit,
            buckets=_Z,
            registry=self.registry,
        )
        self.condition = Histogram(
            "volstream_fit_condition_number",
            "A fit's scaled-Jacobian condition number (identifiability)",
            fit,
            buckets=_CONDITION,
            registry=self.registry,
        )
        self.watermark_lag = Gauge(
            "volstream_watermark_lag_seconds",
            "A quotes partition's newest tick minus its watermark, event time",
            ["partition"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "volstream_consumer_lag_messages",
            "Quotes of a partition not yet consumed",
            ["partition"],
            registry=self.registry,
        )
        self.batch_ticks = Histogram(
            "volstream_batch_ticks", "Ticks in one micro-batch", buckets=_TICKS,
            registry=self.registry,
        )  # fmt: skip
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
