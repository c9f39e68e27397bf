"""Approvals end to end on the real broker: a worker with registered approvers publishes a
material change pending; the operator's own approval is refused by ``volstream approve``; a
forged decision put on the topic is refused by the worker (a critical alert) and named by
``volstream audit verify``; the registered approver's signed approval makes the worker publish
the same fit again, approved, which ``volstream audit show`` lists."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from audit import decide, new_key
from schemas import Alert, CalibrationRecord, Params, decode, encode
from streams.book.state import read_all
from streams.cli.main import main
from streams.feed.send import ensure_topics
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from tests.streams.test_stream_e2e import read_topic, worker

pytestmark = pytest.mark.kafka
T0 = 1.795e9


async def produce(settings: Settings, values: list[tuple[str, bytes, bytes]]) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in values:
            await producer.send(settings.topics[topic], value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def keys_new(name: str, path, capsys) -> str:
    assert main(["keys", "new", "--as", name, "--out", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[-1].strip()
    assert line.startswith(f"VOLSTREAM_APPROVERS={name}=")
    return line.partition("=")[2]


def test_the_approval_flow_on_the_broker(kafka_bootstrap, tmp_path, capsys, monkeypatch):
    prefix = f"appr-{uuid.uuid4().hex[:8]}"
    settings = Settings(bootstrap=kafka_bootstrap, topic_prefix=prefix, partitions=3)
    bob, alice = (
        keys_new("bob", tmp_path / "bob.key", capsys),
        keys_new("alice", tmp_path / "alice.key", capsys),
    )
    env = {
        "VOLSTREAM_OPERATOR": "alice",
        "VOLSTREAM_APPROVERS": f"{bob},{alice}",
        "VOLSTREAM_MATERIAL": "move=1e-9,floor=1e-12",  # every move is material
    }
    for name, value in (env | {"VOLSTREAM_TOPIC_PREFIX": prefix}).items():  # the CLI's too
        monkeypatch.setenv(name, value)
    sim = TickSimulator(pairs=1, tenors=(91,), seed=11, jump_every=2.0)
    ticks = [("quotes", q.underlying.encode(), encode(q)) for q in sim.ticks(T0, 100, 300)]
    log = tmp_path / "worker.log"
    with worker(kafka_bootstrap, prefix, f"{prefix}-g", tmp_path, log, more=env) as proc:
        asyncio.run(produce(settings, ticks))
        first = asyncio.run(read_topic(kafka_bootstrap, settings.topics["params"], 3,
                                       workers=(proc,)))  # fmt: skip
        params = [decode(r.value, Params) for r in first]
        assert len(params) >= 3, log.read_text()[-3000:]
        last = params[-1]
        assert params[0].approval == "auto" and last.approval == "pending"
        record_id = f"{last.key}@{last.record_seq}"
        cli = ["--bootstrap", kafka_bootstrap]

        # the operator cannot approve their own calibration: refused before anything is sent
        own = ["approve", record_id, "--as", "alice", "--key-file", str(tmp_path / "alice.key")]
        assert main(own + cli) == 1
        assert "approves their own calibration" in capsys.readouterr().err

        # a forged decision on the topic: the worker refuses it, loudly
        records = asyncio.run(read_all({"bootstrap_servers": kafka_bootstrap}, settings.topics["audit"],
                                       CalibrationRecord))  # fmt: skip
        record = records[-1][1]
        assert (record.key, record.seq, record.validation_status) == (
            last.key, last.record_seq, "pending")  # fmt: skip
        forged = decide(record, "approved", "bob", "x", new_key(), T0)  # not bob's key
        asyncio.run(produce(settings, [("decisions", record.key.encode(), encode(forged))]))

        ok = ["approve", record_id, "--as", "bob", "--key-file", str(tmp_path / "bob.key"),
              "--reason", "regime change, checked"]  # fmt: skip
        assert main(ok + cli) == 0
        assert "approved by bob" in capsys.readouterr().out
        out = asyncio.run(read_topic(kafka_bootstrap, settings.topics["params"],
                                     len(params) + 1, quiet=3, workers=(proc,)))  # fmt: skip
        again = decode(out[-1].value, Params)
        assert (again.key, again.record_seq, again.approval) == (last.key, last.record_seq,
                                                                  "approved")  # fmt: skip
        assert again.params == last.params
        alerts = [decode(r.value, Alert) for r in asyncio.run(
            read_topic(kafka_bootstrap, settings.topics["alerts"], 1, quiet=2))]  # fmt: skip
        rules = [a.rule for a in alerts]
        assert "material_change" in rules and "approval" in rules
        (refused,) = [a for a in alerts if a.rule == "approval_refused"]
        assert "not bob's" in refused.message

    # the audit trail: the approval listed; verify names the forged decision
    assert main(["audit", "show", "--key", last.key, *cli]) == 0
    assert "approved by bob" in capsys.readouterr().out
    assert main(["audit", "verify", "--no-rerun", *cli]) == 1
    report = capsys.readouterr().out
    assert "every chain intact" in report
    assert f"FAILED approved of {record_id} by bob: signed with a key that is not bob's" in report
