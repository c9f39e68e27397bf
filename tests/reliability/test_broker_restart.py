"""A broker restart mid-stream, on a broker of the test's own (the session's is shared): the
broker is stopped for 30 s after half the sample, started again on the same data, and the
other half streamed. The worker goes on without a restart, publishes every fit of an
uninterrupted run bit for bit (a fit in flight when the broker went may come twice: the same
message, the same id), and says what happened in a few lines, not one an attempt. The
consumer-lag alert fires on every quotes partition while the broker does not answer (on the
live page at once, on the alerts topic once the broker is back) and resolves once the quotes
are read again; the watermarks catch up with the newest tick."""

import asyncio
import json
import signal
import time
import urllib.request
import uuid

import pytest

from schemas import Alert, Params, Watermark, decode, watermark_key
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
        log, port = tmp_path / "worker.log", free_port()
        with worker(bootstrap, prefix, group, tmp_path, log, port, more=UNBUFFERED) as w:
            assigned(log)
            asyncio.run(send_paced(settings, quotes[:half], 1.0))
            asyncio.run(wait_consumed(settings, group))
            before = len(log.read_text().splitlines())
            broker.stop()
            time.sleep(20.0)  # well past the 10 s after which the lag is unknown, firing
            live = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/live/overview.json"))
            time.sleep(OUTAGE_S - 20.0)
            assert w.poll() is None, log.read_text()[-3000:]
            broker.start()
            asyncio.run(send_paced(settings, quotes[half:], 1.0))
            sent = time.time()
            asyncio.run(wait_consumed(settings, group, timeout=120))
            expected = expected_snapshots(quotes)
            total = sum(len(v) for v in expected.values())
            records = asyncio.run(
                read_topic(bootstrap, settings.topics["params"], total, quiet=3, workers=(w,))
            )
            assert w.poll() is None  # the same process all along
            # the outage is over once 5 s pass without a broker error: each partition's lag
            # alert resolves then
            lag = _lag_alerts(bootstrap, settings.topics["alerts"])
            marks = asyncio.run(read_topic(bootstrap, settings.topics["watermarks"], 1, quiet=1))
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
    partitions = {watermark_key(settings.topics["quotes"], p) for p in range(3)}
    shown = {a["subject"]: a["message"] for a in live["alerts"] if a["rule"] == "consumer_lag"}
    assert set(shown) == {k.replace("|", " ") for k in partitions}, live["alerts"]
    assert all("the broker does not answer" in m for m in shown.values()), shown
    for key in partitions:  # once each way, in that order
        assert [s for k, s in lag if k == key] == ["firing", "resolved"], lag
    newest = max(q.ts for q in quotes)
    caught = [w for w in map(lambda r: decode(r.value, Watermark), marks) if w.event_time >= newest]
    assert caught, "the watermarks never reached the newest tick"
    behind = min(w.ts for w in caught) - sent
    # gone within STOP_S either way: a clean stop (faust's leave-group request fails fast when
    # the broker's port refuses it), or the watchdog's exit 1 when the stop hangs on it
    assert took <= STOP_S and code in (0, 1), (took, code, log.read_text()[-2000:])
    if code == 1:
        assert "the stop did not end within 4 s (is the broker away?)" in log.read_text()
    print(f"{len(records)} parameter messages for {len(fits)} fits; {len(during)} log lines; "
          f"consumer lag fired and resolved on {len(partitions)} partitions; the watermark "
          f"reached the newest tick {behind:.1f} s after it was sent; stopped {took:.1f} s "
          f"after SIGTERM with the broker away")  # fmt: skip


def _lag_alerts(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[str, str]]:
    """The consumer-lag alerts on ``topic`` as (key, state), once every one that fired has
    resolved (or ``timeout`` s passed)."""
    deadline = time.monotonic() + timeout
    while True:
        alerts = [
            decode(r.value, Alert) for r in asyncio.run(read_topic(bootstrap, topic, 1, quiet=1))
        ]
        lag = [(a.key, a.state) for a in alerts if a.rule == "consumer_lag"]
        firing = {k for k, state in lag if state == "firing"}
        if firing and firing <= {k for k, state in lag if state == "resolved"}:
            return lag
        if time.monotonic() > deadline:
            return lag
        time.sleep(1.0)
