"""Crash consistency on the real broker: a worker killed outright (SIGKILL) at random points of
a replay, five times, restarted each time on its state directory, resumes from its checkpoint
(the state its committed offsets stand for: streams.worker.checkpoint) and publishes every fit
of an uninterrupted run, bit for bit, and nothing else: the fits it published again after a
crash are the same messages, with the same (key, record_seq), so a subscriber drops them."""

import asyncio
import random
import re
import signal
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from audit import verify_chains
from schemas import CalibrationRecord, Params, decode, encode
from streams.feed.replay import read_ticks
from streams.feed.send import ensure_topics, wait_consumed
from tests.streams.test_stream_e2e import (
    TICKS,
    expected_snapshots,
    read_topic,
    settings_for,
    strip,
    worker,
)

pytestmark = pytest.mark.kafka
KILLS = 5
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}  # a killed worker's log keeps what it said


async def send_paced(settings, quotes, seconds: float) -> None:
    """``quotes`` to the quotes topic spread over about ``seconds``: the worker is busy
    (taking batches in, calibrating, publishing) through the whole of it."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        steps = 50
        for i in range(steps):
            for q in quotes[i * len(quotes) // steps : (i + 1) * len(quotes) // steps]:
                await producer.send(settings.topics["quotes"], encode(q), key=q.underlying.encode())
            await asyncio.sleep(seconds / steps)
        await producer.flush()
    finally:
        await producer.stop()


async def stream_and_kill(settings, chunk, w, when: float) -> None:
    """Stream ``chunk`` over 1.5 s and kill worker process ``w`` (SIGKILL) ``when`` s in."""
    sending = asyncio.ensure_future(send_paced(settings, chunk, 1.5))
    await asyncio.sleep(when)
    w.send_signal(signal.SIGKILL)
    await sending


def assigned(log, timeout: float = 120.0) -> None:
    """Wait until the worker writing ``log`` was given its partitions (a killed one stays a
    member of the group until its session times out: the group's size says nothing)."""
    deadline = time.monotonic() + timeout
    while not re.search("resumed partitions|took over quote partitions", log.read_text()):
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)


def test_a_worker_killed_at_random_points_resumes_bit_for_bit(kafka_bootstrap, tmp_path):
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-g"
    settings = settings_for(kafka_bootstrap, prefix)
    asyncio.run(ensure_topics(settings))
    quotes = list(read_ticks(TICKS))
    expected = {  # as the worker's, but with no audit trail offline
        key: [strip(p) | {"params": p.params} for _, p in fits]
        for key, fits in expected_snapshots(quotes).items()
    }
    chunks = [quotes[i * len(quotes) // (KILLS + 1) : (i + 1) * len(quotes) // (KILLS + 1)]
              for i in range(KILLS + 1)]  # fmt: skip
    rng = random.Random(20261207)
    logs = [tmp_path / f"w{i}.log" for i in range(KILLS + 1)]
    for i in range(KILLS):  # each run: join, stream a sixth of the ticks, killed in the middle
        with worker(kafka_bootstrap, prefix, group, tmp_path, logs[i], more=UNBUFFERED) as w:
            assigned(logs[i])
            asyncio.run(stream_and_kill(settings, chunks[i], w, rng.uniform(0.3, 1.3)))
            assert w.wait(10) == -signal.SIGKILL
    with worker(kafka_bootstrap, prefix, group, tmp_path, logs[-1], more=UNBUFFERED) as w:
        assigned(logs[-1])
        asyncio.run(send_paced(settings, chunks[-1], 0.5))
        asyncio.run(wait_consumed(settings, group))
        total = sum(len(v) for v in expected.values())
        records = asyncio.run(
            read_topic(kafka_bootstrap, settings.topics["params"], total, quiet=8, workers=(w,))
        )
        audit = asyncio.run(read_topic(kafka_bootstrap, settings.topics["audit"], 1, quiet=2))
    for log in logs[1:]:  # every restart resumed from the checkpoint the one before it kept
        assert "resumed partitions [0, 1, 2] from the checkpoint" in log.read_text(), log
    published = [decode(r.value, Params) for r in records]
    seen: dict[tuple[str, int], dict] = {}
    for p in published:  # a fit published twice is the same message, under the same id
        mine = strip(p) | {"params": p.params, "record_seq": None}
        assert seen.setdefault((p.key, p.record_seq), mine) == mine, p.key
    again = len(published) - len(seen)
    by_key: dict[str, list[dict]] = {}
    for (key, seq), p in sorted(seen.items()):
        assert seq == len(by_key.setdefault(key, [])), (key, seq)  # no fit missing
        by_key[key].append(p)
    assert by_key.keys() == expected.keys()
    for key, fits in expected.items():  # every fit of an uninterrupted run, nothing else
        assert len(by_key[key]) == len(fits), key
        for i, (a, b) in enumerate(zip(by_key[key], fits)):
            assert a == b, (key, i, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})
    assert verify_chains([decode(r.value, CalibrationRecord) for r in audit]) == []
    print(f"{len(published)} parameter messages for {len(seen)} fits ({again} published again)")
