"""A broker restart mid-stream, on a broker of the test's own (the session's is shared): the
broker is stopped for 30 s after half the sample, started again on the same data, and the
other half streamed. The worker goes on without a restart, publishes every fit of an
uninterrupted run bit for bit (a fit in flight when the broker went may come twice: the same
message, the same id), and says what happened in a few lines, not one an attempt."""

import asyncio
import signal
import time
import uuid

import pytest

from schemas import Params, decode
from streams.feed.replay import read_ticks
from streams.feed.send import ensure_topics, wait_consumed
from streams.local.broker import BrokerConfig, LocalKafka, free_port
from tests.reliability.test_crash import UNBUFFERED, assigned, send_paced
from tests.streams.test_stream_e2e import (
    TICKS,
    expected_snapshots,
    read_topic,
    settings_for,
    strip,
    worker,
)

pytestmark = pytest.mark.kafka
OUTAGE_S = 30.0
STOP_S = 5.0


def test_a_broker_stopped_for_30_s_mid_stream_loses_nothing(tmp_path):
    broker = LocalKafka(
        BrokerConfig(state_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    )
    bootstrap = broker.start()
    try:
        prefix = f"restart-{uuid.uuid4().hex[:8]}"
        group = f"{prefix}-g"
        settings = settings_for(bootstrap, prefix)
        asyncio.run(ensure_topics(settings))
        quotes = list(read_ticks(TICKS))
        half = len(quotes) // 2
        log = tmp_path / "worker.log"
        with worker(bootstrap, prefix, group, tmp_path, log, more=UNBUFFERED) as w:
            assigned(log)
            asyncio.run(send_paced(settings, quotes[:half], 1.0))
            asyncio.run(wait_consumed(settings, group))
            before = len(log.read_text().splitlines())
            broker.stop()
            time.sleep(OUTAGE_S)
            assert w.poll() is None, log.read_text()[-3000:]
            broker.start()
            asyncio.run(send_paced(settings, quotes[half:], 1.0))
            asyncio.run(wait_consumed(settings, group, timeout=120))
            expected = expected_snapshots(quotes)
            total = sum(len(v) for v in expected.values())
            records = asyncio.run(
                read_topic(bootstrap, settings.topics["params"], total, quiet=8, workers=(w,))
            )
            assert w.poll() is None  # the same process all along
            during = log.read_text().splitlines()[before:]
            broker.stop()  # and told to stop while its broker is away: gone within 5 s
            time.sleep(2.0)
            asked = time.monotonic()
            w.send_signal(signal.SIGTERM)
            code = w.wait(30)
            took = time.monotonic() - asked
    finally:
        broker.stop()
    fits: dict[tuple[str, int], dict] = {}
    for r in records:
        p = decode(r.value, Params)
        mine = strip(p) | {"params": p.params, "record_seq": None}
        assert fits.setdefault((p.key, p.record_seq), mine) == mine, p.key
    for key, smiles in expected.items():
        got = [fits[(key, i)] for i in range(len(smiles)) if (key, i) in fits]
        want = [strip(p) | {"params": p.params} for _, p in smiles]
        assert got == want, key
    assert len(during) < 60, "\n".join(during[-60:])  # said, not shouted
    assert took <= STOP_S and code == 1, (took, code, log.read_text()[-2000:])
    assert "the stop did not end within 4 s (is the broker away?)" in log.read_text()
    print(f"{len(records)} parameter messages for {len(fits)} fits; {len(during)} log lines; "
          f"stopped {took:.1f} s after SIGTERM with the broker away")  # fmt: skip
