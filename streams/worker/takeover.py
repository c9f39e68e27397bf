"""Taking over quote partitions: rebuild the surfaces and warm starts their last owner had.

A worker that is handed quote partitions (at start-up, or when another worker leaves the
group) would otherwise start those underlyings with empty surfaces, fitting the first few new
quotes alone, and with the warm starts it read when it started. Before the agent resumes from
the group's committed offsets, each new partition is read back from ``max_quote_age`` seconds
ago up to that offset into the surface book (nothing is calibrated or published: the previous
owner did that), and the compacted state and health topics are read again for the smiles and
surfaces of the underlyings found (their warm starts, and the health rules' history) and for
the partitions themselves (their lag alerts).
"""

from __future__ import annotations

import logging
import time

from schemas import key_underlying, watermark_key
from streams.book.state import read_state
from streams.settings import Settings
from streams.worker.checkpoint import committed_offsets, group_partitions
from streams.worker.health import read_health
from streams.worker.pipeline import Pipeline
from streams.worker.readback import read_ranges

__all__ = ["MAX_RECORDS", "resume", "take_over"]

log = logging.getLogger(__name__)

MAX_RECORDS = 200_000  # per partition: a bounded read, so a rebalance never waits for long


async def resume(pipeline: Pipeline, settings: Settings, partitions: set[int]) -> bool:
    """Resume ``partitions`` from this worker's checkpoint if it can (see
    :mod:`streams.worker.checkpoint`); False: there is none, or it cannot (said why)."""
    checkpoints = pipeline.checkpoints
    checkpoint = checkpoints.read() if checkpoints is not None else None
    if checkpoint is None:
        return False
    committed, ends = await committed_offsets(settings, partitions)
    why = checkpoint.resumable(settings.topics["quotes"], partitions, committed, ends)
    if why is not None:
        log.warning("not resuming from the checkpoint %s: %s", checkpoints.path, why)
        return False
    pipeline.restore(checkpoint)
    again = sum(o - (committed.get(p) or 0) for p, o in checkpoint.offsets.items())
    log.warning(
        "resumed partitions %s from the checkpoint of %s (%d messages after the committed "
        "offsets already reflected: skipped)",
        sorted(partitions),
        time.strftime("%H:%M:%S", time.localtime(checkpoint.written)),
        again,
    )
    return True


async def take_over(pipeline: Pipeline, settings: Settings, partitions: set[int]) -> set[str]:
    """Rebuild what quote ``partitions`` had processed; returns the underlyings restored."""
    topic = settings.topics["quotes"]
    async with group_partitions(settings, partitions) as (consumer, tps):
        since = int(1000 * (time.time() - settings.surface.max_quote_age))
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        ranges = {}
        for tp in tps:
            end = await consumer.committed(tp)
            if end is not None and starts[tp] is not None and starts[tp].offset < end:
                ranges[tp] = (max(starts[tp].offset, end - MAX_RECORDS), end)
                consumer.seek(tp, ranges[tp][0])
        records = await read_ranges(consumer, topic, ranges)
    underlyings = pipeline.rebuild(records)
    health = await read_health(settings.client(), settings.topics["health"])
    mine = {watermark_key(topic, p) for p in partitions}
    pipeline.restore_health(
        {k: h for k, h in health.items() if key_underlying(k) in underlyings or k in mine}
    )
    if underlyings:
        state = await read_state(settings.client(), settings.topics["state"])
        theirs = {k: v for k, v in state.items() if key_underlying(k) in underlyings}
        pipeline.import_state(theirs)
        await pipeline.settle_decisions(theirs)
        log.warning(
            "read back %d quote messages and %d warm starts (of %d)",
            len(records),
            len(theirs),
            len(state),
        )
    return underlyings
