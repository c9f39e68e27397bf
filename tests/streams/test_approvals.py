"""Approvals on the stream (in memory; the broker's end to end is in test_approvals_e2e): a
material change goes out pending with a notice and a pending record; a signed decision by a
registered approver publishes the fit again approved (or rejected) and moves what later fits
are measured from; a self-approval and a forged signature are refused loudly and change
nothing; a restarted pipeline goes on with the pending record and its decision."""

import asyncio
import dataclasses

from audit import Materiality, decide, new_key, public_key
from schemas import Alert, CalibrationRecord, Params, WarmState, decode, encode
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.streams.memory import Memory, feed

T0 = 1.795e9
BOB, ALICE = new_key(), new_key()
TOUCHY = Materiality(move=1e-9, floor=1e-12)  # every move is material
SETTINGS = Settings(
    topic_prefix="t",
    operator="alice",
    approvers={"bob": public_key(BOB), "alice": public_key(ALICE)},
    material={"sabr": TOUCHY, "heston": TOUCHY},
)


def sent(sink: Memory, topic: str, kind):
    return [decode(v, kind) for _, v in sink.sent.get(f"t.{topic}", [])]


def quotes(count=300):
    sim = TickSimulator(pairs=1, tenors=(91,), seed=5, jump_every=2.0)
    return list(sim.ticks(T0, rate=100, count=count))


def test_a_material_change_waits_for_a_signed_approval():
    sink = Memory()
    pipe = Pipeline(SETTINGS, sink, clock=lambda: T0 + 100)
    feed(pipe, [encode(q) for q in quotes()], 40, T0)
    params, records = sent(sink, "params", Params), sent(sink, "audit", CalibrationRecord)
    assert len(params) >= 3
    first, *later = params
    assert first.approval == "auto" and first.approved and first.record_seq == 0  # baseline
    assert all(p.good for p in params)
    assert all(p.approval == "pending" and not p.approved for p in later)
    assert first.usable and not any(p.usable for p in later)  # what a risk engine reads
    assert [r.validation_status for r in records][1:] == ["pending"] * (len(records) - 1)
    notices = [a for a in sent(sink, "alerts", Alert) if a.rule == "material_change"]
    last = params[-1]
    assert len(notices) == len(later) and f"{last.key}@{last.record_seq}" in notices[-1].message
    assert "moved" in notices[-1].message and "volstream approve" in notices[-1].runbook

    record = records[-1]
    # the operator approving their own calibration, and a forged signature: refused, loudly
    own = decide(record, "approved", "alice", "mine", ALICE, T0)
    forged = dataclasses.replace(decide(record, "approved", "bob", "ok", BOB, T0),
                                 signature="11" * 64)  # fmt: skip
    for bad, why in ((own, "approves their own"), (forged, "does not hold")):
        asyncio.run(pipe.decide([bad]))
        refused = sent(sink, "alerts", Alert)[-1]
        assert refused.rule == "approval_refused" and refused.severity == "critical"
        assert why in refused.message
    assert len(sent(sink, "params", Params)) == len(params)  # nothing published again

    asyncio.run(pipe.decide([decide(record, "approved", "bob", "checked", BOB, T0)]))
    again = sent(sink, "params", Params)[-1]
    assert again.approval == "approved" and again.approved and again.usable
    assert dataclasses.replace(again, approval="pending", published_at=0) == dataclasses.replace(
        last, published_at=0
    )
    notice = sent(sink, "alerts", Alert)[-1]
    assert notice.rule == "approval" and "approved by bob: checked" in notice.message
    (row,) = [r for r in pipe.live.overview()["rows"] if r["key"] == last.key]
    assert row["approval"] == "approved"  # the live page shows the decision too
    state = sent(sink, "state", WarmState)[-1]
    assert state.pending is None and state.approved == {**last.params, "rmse": last.rmse}
    # the same decision read again (a restart reads the topic from its start) changes nothing
    asyncio.run(pipe.decide([decide(record, "approved", "bob", "checked", BOB, T0)]))
    assert sent(sink, "params", Params)[-1] == again


def test_a_rejection_keeps_the_parameters_approved_before_and_a_restart_goes_on():
    sink = Memory()
    pipe = Pipeline(SETTINGS, sink, clock=lambda: T0 + 100)
    feed(pipe, [encode(q) for q in quotes(250)], 40, T0)
    states = {k.decode(): decode(v, WarmState) for k, v in sink.sent["t.state"]}  # the latest
    ((_, state),) = states.items()
    assert state.pending is not None and state.approved is not None
    record = sent(sink, "audit", CalibrationRecord)[-1]
    assert (record.seq, record.record_hash) == (state.audit_seq, state.audit_hash)

    # a restarted worker: the decision, read from the topic before its state came back,
    # applies once the state is restored
    sink2 = Memory()
    restarted = Pipeline(SETTINGS, sink2, clock=lambda: T0 + 200)
    asyncio.run(restarted.decide([decide(record, "rejected", "bob", "bad quotes", BOB, T0)]))
    assert "t.state" not in sink2.sent  # not its key yet
    restarted.import_state(states)
    asyncio.run(restarted.settle_decisions(states))
    after = sent(sink2, "state", WarmState)[-1]
    assert after.pending is None and after.approved == state.approved  # rejected: kept
    assert sent(sink2, "alerts", Alert)[-1].message.endswith("rejected by bob: bad quotes")
