"""Start a worker: compile the solver, restore warm starts, then join the consumer group.

Order matters: the JIT cache is warmed for the bucketed shapes and the warm-start state is
read back from the compacted state topic *before* the worker subscribes, so the first batches
after a (re)start neither stall on compilation nor start cold.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import msgpack

from streams.settings import Settings

__all__ = ["read_state", "run_worker"]

log = logging.getLogger(__name__)


async def read_state(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[str, dict]:
    """The latest value per key of the compacted state topic (empty if it does not exist)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    # the partitions from a fresh describe: a consumer's own metadata only knows the topics it
    # subscribed to, so partitions_for_topic() said None here and nothing was ever restored
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:  # no such topic yet
        return {}
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        state: dict[str, dict] = {}
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(*tps, timeout_ms=int(timeout * 1000))
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    if r.value is not None:
                        state[r.key.decode()] = msgpack.unpackb(r.value)
        return state
    finally:
        await consumer.stop()


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until stopped (SIGINT/SIGTERM): faust owns the loop from here."""
    import jax

    cache = settings.compile_cache
    cache.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)  # faust's datadir lives here
    import faust

    from streams.agents import pipeline  # registers the agent on the app
    from streams.metrics import serve

    state = asyncio.run(read_state(settings.bootstrap, settings.topics["state"]))
    pipeline.calibrations.import_state(state)
    log.warning("restored warm-start state of %d smiles; compiling the solver...", len(state))
    pipeline.calibrations.warmup()
    pipeline.calibrations.warmup_heston()
    # Everything alive now (modules, compiled programs, restored state) lives as long as the
    # worker: keep it out of the cyclic collector, whose full passes over it otherwise paused
    # the stream for 100-250 ms (seen in bench/stream.py's latency run).
    gc.collect()
    gc.freeze()
    serve(pipeline.metrics, settings.metrics_host, settings.metrics_port)
    from streams.app import app

    worker = faust.Worker(app, loglevel=loglevel)
    # faust's start-up spinner lowers the root logger to DEBUG so that every record reaches it:
    # then every library's debug call (aiokafka logs each send) builds a record and writes to
    # the terminal, for the worker's whole life
    worker.spinner = None
    worker.execute_from_commandline()
