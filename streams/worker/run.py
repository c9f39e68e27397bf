"""Start a worker: compile the solver, restore warm starts, then join the consumer group.

Order matters: the JIT cache is warmed for the bucketed shapes and the warm state is read back
from the compacted state topic *before* the worker subscribes, so the first batches after a
(re)start neither stall on compilation nor start cold.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path

from streams.settings import Settings

__all__ = ["STOP_S", "compile_programs", "run_worker"]

log = logging.getLogger(__name__)

STOP_S = 4.0  # a stop still going after this (its broker away: nothing delivers) is cut short


def compiled_stamp(settings: Settings) -> Path:
    """The file that says :func:`compile_programs` filled the compile cache for this engine,
    this JAX and the programs these settings warm."""
    import jax

    from streams.provenance import engine_digest

    key = f"{engine_digest()}|{jax.__version__}|{settings.warm_batches}|{settings.default_beta}"
    key += f"|{sorted(settings.betas.items())}|runbook={settings.warm_runbook}"
    return settings.compile_cache / f"compiled-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def compile_programs(settings: Settings, say=print, force: bool = False) -> None:
    """Compile every program a worker of ``settings`` warms (SABR batches of each
    ``warm_batches`` size, the Heston surfaces, the runbook's steps unless ``warm_runbook`` is
    off, the tolerance checks) into its compile cache, traced and compiled, so that workers on this machine start in
    seconds, not minutes (``volstream compile``; run once by the install). Once done for this
    engine, JAX and these settings, a stamp in the cache says so and a second run returns at
    once (tracing the runbook's steps again took 20-50 s of each clean clone's ``make``);
    ``force``: compile all the same."""
    from engine import model_values
    from streams.book.calibrations import Calibrations

    stamp = compiled_stamp(settings)
    if stamp.exists() and not force:
        say(f"  already compiled for this engine and JAX in {settings.compile_cache}")
        return
    settings.use_compile_cache()
    calibrations = Calibrations(betas=settings.betas, default_beta=settings.default_beta)
    steps = [
        (f"SABR batches of {size}", lambda size=size: calibrations.warmup(batch_sizes=(size,)))
        for size in settings.warm_batches
    ]
    steps.append(("Heston surfaces", calibrations.warmup_heston))
    if settings.warm_runbook:  # 352 s of a fresh 2-core machine's install: only where warmed
        steps.append(("the runbook's first step", calibrations.warmup_runbook))
    steps.append(("tolerance checks", model_values.warmup))
    for name, step in steps:
        start = time.perf_counter()
        step()
        say(f"  {name}: {time.perf_counter() - start:.1f} s")
    stamp.touch()
    say(f"compiled programs are in {settings.compile_cache}")


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until stopped (SIGINT/SIGTERM): faust owns the loop from here."""
    settings.use_compile_cache()
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)  # faust's datadir

    import faust

    from engine import model_values
    from streams.book.state import read_state
    from streams.live.server import serve
    from streams.worker.agent import attach
    from streams.worker.app import build_app
    from streams.worker.health import read_health
    from streams.worker.outage import QuietOutage

    app = build_app(settings)
    pipeline = attach(app, settings)
    pipeline.hold()  # no batch before the first assignment is taken over or resumed
    outage = QuietOutage().install()

    @app.timer(interval=1.0, name="volstream.broker_outage")
    async def broker_outage() -> None:
        """Count the broker's errors; say when an outage ends."""
        pipeline.counters.broker_errors = outage.errors
        outage.settle(log)
        pipeline.counters.broker_silent = outage.silent()

    pipeline.metrics.count_compiles()
    state = asyncio.run(read_state(settings.client(), settings.topics["state"]))
    pipeline.import_state(state)
    pipeline.restore_health(asyncio.run(read_health(settings.client(), settings.topics["health"])))
    log.warning("restored warm-start state of %d smiles; compiling the solver...", len(state))
    # what the first batches need now (a few smiles, index surfaces, every message's tolerance
    # check), the larger batch shapes in the background while the worker runs (a batch that
    # needs one first loads it). From a filled compile cache nothing is traced: 5 s, not 20
    first, *rest = settings.warm_batches
    pipeline.calibrations.warmup(batch_sizes=(first,))
    pipeline.calibrations.warmup_heston()
    model_values.warmup()

    def warm_the_rest() -> None:
        pipeline.calibrations.warmup(batch_sizes=tuple(rest))
        pipeline.metrics.warming_up.set(0)
        log.warning("compiled the larger batch shapes %s", rest)
        if settings.warm_runbook:  # off the stream's path: no gauge waits on it
            start = time.perf_counter()
            pipeline.calibrations.warmup_runbook()
            log.warning("traced the runbook's steps in %.0f s", time.perf_counter() - start)

    pipeline.metrics.warming_up.set(1)
    threading.Thread(target=warm_the_rest, name="warmup", daemon=True).start()
    # Everything alive now (modules, compiled programs, restored state) lives as long as the
    # worker: keep it out of the cyclic collector, whose full passes over it otherwise paused
    # the stream for 100-250 ms (seen in bench/stream.py's latency run).
    gc.collect()
    gc.freeze()
    serve(pipeline.metrics.registry, pipeline.live, settings.metrics_host, settings.metrics_port)

    class Worker(faust.Worker):
        def _schedule_shutdown(self, signal) -> None:
            """SIGTERM, SIGINT: faust's stop, with a deadline (see :func:`_cut_short`)."""
            if not self._signal_stop_time:
                threading.Thread(target=_cut_short, name="stop-deadline", daemon=True).start()
            super()._schedule_shutdown(signal)

    worker = Worker(app, loglevel=loglevel)
    # faust's start-up spinner lowers the root logger to DEBUG so that every record reaches it:
    # then every library's debug call (aiokafka logs each send) builds a record and writes to
    # the terminal, for the worker's whole life
    worker.spinner = None
    code = 0
    try:
        worker.execute_from_commandline()  # faust stops, hands its partitions back, exits
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        # leave now: the interpreter's teardown would stop the warm-up thread in the middle of
        # an XLA compilation, which aborts the process (SIGABRT) after a clean stop
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _cut_short() -> None:
    """Leave if the stop has not ended after ``STOP_S`` seconds. With the broker away faust's
    stop waits for deliveries that never come (seen: still running 41 s after SIGTERM). What
    was not acked is consumed again after a restart, which resumes from the checkpoint."""
    time.sleep(STOP_S)
    log.warning("the stop did not end within %.0f s (is the broker away?): leaving now; what "
                "was not acked is consumed again after a restart", STOP_S)  # fmt: skip
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
