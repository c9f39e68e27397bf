"""A worker's checkpoint: what its stream had built, as of the quotes it reflects, on local disk.

The book (every quote slot, each smile's current fit and triggers, each partition's epoch),
the warm starts, the health rules' histories and the audit chains' heads decide every later
fit. The compacted state and health topics hold the latest of some of these, written after
fits whose quotes may not be committed yet, and a worker taking partitions over rebuilds the
book without the fits' triggers: after a crash it went on warm, but not from the state the
committed offsets stood for, and its parameters drifted from an uninterrupted run's in the last
bits (3 of 13 smiles equal after a kill -9).

So after a batch (or idle flush) whose outputs are delivered, at most every
``checkpoint_every`` seconds, the worker writes this file: that state, pickled on the
calibration thread as the batch left it, with, per quotes partition, the offset after the last
message it reflects; only then are the messages of the batches it holds acked (those between
two checkpoints wait for the next, which the idle timer or a handover writes on a quiet
stream), so the group's committed offsets never pass the checkpoint. (One after every batch
cost 23% of the backlog rate: pickling 509 keys' health histories takes ~18 ms.) A worker restarted on the same state
directory and given the same partitions resumes from it (:meth:`Pipeline.restore`): the
messages from the committed offsets up to the checkpoint's are skipped (already reflected) and
every fit after them starts where an uninterrupted run's did, so its parameters are the same,
bit for bit. Those published between the checkpoint and the crash are published again,
identical (at least once): a subscriber drops a message whose ``(key, record_seq)`` it has seen.

A checkpoint is used only if it covers exactly the partitions assigned, the group's committed
offsets do not pass it (else another worker went on from it) and the topic reaches it (else the
topic was made again under its name); the worker then takes over as any new owner does
(:mod:`streams.worker.takeover`). The file is the worker's own (pickle: keep the
state directory writable by its user only).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings

__all__ = ["Checkpoint", "Checkpoints", "committed_offsets", "group_partitions"]

log = logging.getLogger(__name__)

FORMAT = 1  # what a checkpoint holds; one of another format is not used


@dataclass
class Checkpoint:
    """The state of a worker that owned quotes ``partitions``, reflecting every message
    before ``offsets`` (partition -> offset; a partition without one had none)."""

    topic: str
    partitions: frozenset[int]
    offsets: dict[int, int]
    image: bytes  # the book and warm starts, pickled on the calibration thread
    loop: bytes  # the event loop's part: health histories, audit heads, published coverage
    written: float = field(default_factory=time.time)
    format: int = FORMAT

    def resumable(self, topic: str, partitions: set[int], committed: dict[int, int | None],
                  ends: dict[int, int]) -> str | None:  # fmt: skip
        """Why this checkpoint cannot be resumed on ``partitions`` with the group's
        ``committed`` offsets and the topic's ``ends`` (the offsets it will give next; None:
        it can)."""
        if self.format != FORMAT or self.topic != topic:
            return f"it is of another format or topic ({self.format}, {self.topic!r})"
        if self.partitions != frozenset(partitions):
            return f"it covers partitions {sorted(self.partitions)}, not {sorted(partitions)}"
        short = {p: e for p, e in ends.items() if e < self.offsets.get(p, 0)}
        if short:  # the topic was made again since (same name, fewer messages)
            return f"the topic ends before it (partition: end {short}, it has {self.offsets})"
        ahead = {p: c for p, c in committed.items() if (c or 0) > self.offsets.get(p, 0)}
        if ahead:
            return f"the group committed past it (partition: offset {ahead}, it has {self.offsets})"
        return None


class Checkpoints:
    """One worker's checkpoint file, ``STATE_DIR/checkpoints/APP_ID.pickle``; ``partitions``
    are the quotes partitions the worker owns now (what a checkpoint written now covers)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "checkpoints" / f"{settings.app_id}.pickle"
        self.topic = settings.topics["quotes"]
        self.partitions: frozenset[int] = frozenset()

    def write(self, checkpoint: Checkpoint) -> None:
        """Replace the file at once (written aside, then renamed: a crash leaves the old one
        or the new one, never half of one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}")  # this process's
        aside.write_bytes(pickle.dumps(checkpoint, pickle.HIGHEST_PROTOCOL))
        os.replace(aside, self.path)

    def read(self) -> Checkpoint | None:
        """The last checkpoint written, or None (none, or one that does not load: said)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            checkpoint = pickle.loads(data)
            if not isinstance(checkpoint, Checkpoint):
                raise TypeError(f"not a checkpoint: {type(checkpoint).__name__}")
        except Exception as exc:  # another version's classes, a damaged file
            log.warning("the checkpoint %s does not load (%s): taking over instead", self.path, exc)
            return None
        return checkpoint


@asynccontextmanager
async def group_partitions(settings: Settings, partitions: set[int]
                           ) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:  # fmt: skip
    """A consumer of the worker's group given quotes ``partitions`` by hand (it reads the
    group's committed offsets, never joins the group), and those partitions."""
    consumer = AIOKafkaConsumer(
        **settings.client(group_id=settings.app_id, enable_auto_commit=False)
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics["quotes"], p) for p in sorted(partitions)]
        consumer.assign(tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def committed_offsets(settings: Settings, partitions: set[int]
                            ) -> tuple[dict[int, int | None], dict[int, int]]:  # fmt: skip
    """The consumer group's committed offset of each quotes partition (None: none yet), and
    the offset each will give next."""
    async with group_partitions(settings, partitions) as (consumer, tps):
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        ends = await consumer.end_offsets(tps)
        return committed, {tp.partition: end for tp, end in ends.items()}
