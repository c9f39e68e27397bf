"""Hostile messages on the real broker: 2,000 of every kind (tests.reliability.hostile) mixed
into a replay of the sample ticks, each keyed as a producer would (by the underlying it names).
The worker stays up; every bad message or row is in the dead-letter topic once, with its
reason; and every smile's parameters are bit for bit those of the clean stream calibrated
offline (the 10,000-message run is in process: test_fuzz)."""

import asyncio
import uuid

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from schemas import DeadLetter, Quote, QuoteColumns, decode, encode
from streams.feed.replay import read_ticks
from streams.feed.send import ensure_topics
from tests.reliability.hostile import hostile
from tests.streams.test_stream_e2e import (
    TICKS,
    expected_snapshots,
    params_by_smile,
    read_topic,
    settings_for,
    strip,
    worker,
)

pytestmark = pytest.mark.kafka
HOSTILE = 2_000
BROKER_LIMIT = 1_000_000  # Kafka's message.max.bytes (~1 MB): a larger message never gets in


def mixed_stream(seed: int = 5):
    """(key, value) messages of the sample with hostile ones mixed in, the clean quotes the
    worker should act on, in order, and the hostile messages made."""
    quotes = list(read_ticks(TICKS))
    equity = [q for q in quotes if q.asset_class == "equity" and q.price is not None]
    rng = np.random.default_rng(seed)
    at = np.bincount(rng.choice(np.arange(200, len(quotes)), HOSTILE), minlength=len(quotes))
    messages, clean, made = [], [], []
    for i, q in enumerate(quotes):
        messages.append((q.underlying.encode(), encode(q)))
        clean.append(q)
        for _ in range(int(at[i])):
            recent = [x for x in quotes[max(0, i - 80) : i + 1] if x.asset_class == "fx"]
            u = recent[int(rng.integers(len(recent)))].underlying
            h = hostile(rng, [x for x in recent if x.underlying == u], equity)
            if len(h.value) > BROKER_LIMIT:  # Kafka refuses it to the producer: in process only
                continue
            made.append(h)
            messages.append((u.encode(), h.value))
            if h.clean is not None:
                message = decode(h.clean)
                clean += message.quotes() if isinstance(message, QuoteColumns) else [message]
    return messages, clean, made


async def produce(bootstrap: str, topic: str, messages) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def test_hostile_messages_mixed_into_a_replay_on_the_broker(kafka_bootstrap, tmp_path):
    messages, clean, made = mixed_stream()
    assert all(isinstance(q, Quote) for q in clean) and len(made) > 1_800
    expected = expected_snapshots(clean)
    total = sum(len(v) for v in expected.values())
    letters_due = sum(h.letters for h in made)
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}"
    settings = settings_for(kafka_bootstrap, prefix)
    asyncio.run(ensure_topics(settings))
    with worker(kafka_bootstrap, prefix, f"{prefix}-g", tmp_path, tmp_path / "w.log") as proc:
        asyncio.run(produce(kafka_bootstrap, settings.topics["quotes"], messages))
        params = asyncio.run(read_topic(kafka_bootstrap, settings.topics["params"], total,
                                        workers=(proc,)))  # fmt: skip
        dlq = asyncio.run(read_topic(kafka_bootstrap, settings.topics["dlq"], letters_due,
                                     quiet=2, workers=(proc,)))  # fmt: skip
        assert proc.poll() is None, (tmp_path / "w.log").read_text()[-3000:]  # still up
    letters = [decode(r.value, DeadLetter) for r in dlq]
    assert len(letters) == letters_due
    assert {d.reason for d in letters} <= set().union(*(h.reasons for h in made))
    got = params_by_smile(params)
    assert got.keys() == expected.keys()
    for key, smiles in expected.items():
        ours = [strip(p) | {"record_seq": None} for p in got[key]]
        offline = [strip(p) for _, p in smiles]
        assert ours == offline, key
