"""Calibration records of the stream: one per fit, chained per key, each run again from its
archived inputs to the same bits; a changed input is found."""

import dataclasses

from audit import digest, seal, verify_chains
from schemas import CalibrationRecord, WarmState, decode, encode
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.audit import rerun_all, snapshot_of
from streams.worker.pipeline import Pipeline
from tests.streams.memory import Memory, feed

T0 = 1.795e9


def stream(quotes, state=None):
    sink = Memory()
    pipe = Pipeline(Settings(topic_prefix="t"), sink, clock=lambda: T0 + 100)
    pipe.import_state(state or {})

    feed(pipe, [encode(q) for q in quotes], 40, T0)  # several batches
    records = [decode(v, CalibrationRecord) for _, v in sink.sent.get("t.audit", [])]
    return pipe, sink, records


def test_every_fit_has_a_chained_record_that_runs_again_to_the_same_bits():
    sim = TickSimulator(pairs=1, tenors=(30, 91), indices=1, seed=7, jump_every=2.0)
    quotes = list(sim.ticks(T0, rate=200, count=400))
    _, sink, records = stream(quotes)
    params = sink.sent["t.params"]
    assert len(records) == len(params) and {r.model_type for r in records} == {"sabr", "heston"}
    assert verify_chains(records) == []
    assert any(r.seq > 0 for r in records)  # chains, not single records
    assert rerun_all(records, tolerance=0.0) == []
    # the head of each chain is in the warm state written to the state topic: a worker
    # restarted from it goes on with the chain
    states = {k.decode(): decode(v, WarmState) for k, v in sink.sent["t.state"]}  # the latest
    heads = {k: (s.audit_seq, s.audit_hash) for k, s in states.items()}
    assert heads == {r.key: (r.seq, r.record_hash) for r in records}
    more = list(sim.ticks(quotes[-1].ts + 0.01, rate=200, count=200))
    _, _, later = stream(more, states)
    assert later and verify_chains(records + later) == []


def test_a_changed_input_fits_to_other_parameters_and_says_which():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=5, count=20))
    _, _, (record, *_) = stream(quotes)
    snap, start = snapshot_of(record.inputs)
    assert snap.key == record.key and start == WarmState(warm=record.inputs["start"]["warm"])
    inputs = dict(record.inputs)
    vols = list(inputs["snapshot"]["vols"])
    vols[0] += 0.01
    inputs["snapshot"] = {**inputs["snapshot"], "vols": vols}
    forged = seal(dataclasses.replace(record, inputs=inputs, market_data_hash=digest(inputs)))
    ((which, why),) = rerun_all([forged], tolerance=0.0)
    assert which is forged and "not bit-identical" in why
