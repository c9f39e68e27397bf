"""Canonical hashes and hash chains: an intact chain verifies; an altered, removed or
reordered record, or a changed input, is found and named."""

import dataclasses
import math

import pytest

from audit import GENESIS, canonical, digest, seal, verify_chains
from schemas import CalibrationRecord, decode, encode


def test_canonical_encoding_ignores_key_order_and_refuses_what_has_none():
    assert canonical({"b": 1, "a": [1.0, (2, "x")]}) == canonical({"a": [1.0, [2, "x"]], "b": 1})
    assert canonical({"a": 1.0}) != canonical({"a": 1})  # a float is not an integer
    assert canonical(0.1)[0] == 0xCB  # float64 always, never float32
    assert digest({"x": None}) != digest({"x": 0})
    with pytest.raises(ValueError, match="archive None"):
        canonical({"vol": math.nan})
    with pytest.raises(TypeError):
        canonical({1: "a"})


def chain(key="EURUSD|2027-11-25", n=4):
    out, prev = [], GENESIS
    for i in range(n):
        inputs = {"snapshot": {"strikes": [1.0, 1.1], "vols": [0.1, 0.1 + i / 100]}}
        r = seal(CalibrationRecord(
            key=key, seq=i, ts=1.7e9 + i, asset=key.split("|")[0], calibration_date="2023-11-14",
            model_type="sabr", model_version="engine-x+deps-y", parameters={"alpha": 0.1 + i},
            market_data_hash=digest(inputs), diagnostics={"rmse": 1e-4}, converged=True,
            status="converged", operator="volstream worker t", validation_status="passed",
            inputs=inputs, prev_hash=prev,
        ))  # fmt: skip
        out.append(r)
        prev = r.record_hash
    return out


def test_an_intact_chain_verifies_and_survives_the_wire():
    records = chain() + chain("GBPUSD|2027-11-25", 3)
    assert verify_chains(records) == []
    assert [decode(encode(r), CalibrationRecord) for r in records] == records
    assert verify_chains([decode(encode(r)) for r in records]) == []
    # any fit's status survives (one that ended at a bound says so at length), and a job's
    # record names the assets it ran on
    long = dataclasses.replace(records[0], status="ended at a parameter bound: the solver's "
                               "gradient vanished there", asset="SPX+SX5E+NKY",
                               model_type="playbook")  # fmt: skip
    assert decode(encode(long), CalibrationRecord) == long


def test_records_written_again_by_a_replay_are_no_problem_but_a_fork_is():
    records = chain(n=6)
    # a worker resumed from a checkpoint taken after seq 1 writes 2 and 3 again, then goes on
    assert verify_chains([*records[:4], records[2], records[3], *records[4:]]) == []
    assert verify_chains([*records[:3], records[2], records[3]]) == []
    fork = seal(dataclasses.replace(records[2], parameters={"alpha": 7.0}))  # seq 2, another fit
    (problem,) = verify_chains([*records[:4], fork])
    assert (problem.seq, problem.position) == (2, 4) and "repeated" in problem.reason
    altered = dataclasses.replace(records[2], parameters={"alpha": 0.0})  # not a repeat
    (problem,) = verify_chains([*records[:3], altered])
    assert problem.position == 3 and "altered" in problem.reason


def test_an_altered_record_is_found():
    records = chain()
    records[2] = dataclasses.replace(records[2], parameters={"alpha": 9.9})
    (problem,) = verify_chains(records)
    assert (problem.seq, problem.position) == (2, 2) and "record_hash" in problem.reason


def test_a_removed_record_is_found():
    records = chain()
    del records[1]
    (problem,) = verify_chains(records)
    assert problem.seq == 2 and "missing" in problem.reason


def test_a_reordered_pair_is_found():
    records = chain()
    records[1], records[2] = records[2], records[1]
    (problem,) = verify_chains(records)
    assert problem.position == 1 and "seq 2 after 0" in problem.reason


def test_a_changed_input_is_found_even_when_its_record_is_sealed_again():
    records = chain()
    inputs = {"snapshot": {"strikes": [1.0, 1.1], "vols": [0.1, 0.5]}}
    changed = dataclasses.replace(records[1], inputs=inputs)
    (problem,) = verify_chains([records[0], seal(changed), *records[2:]])
    assert problem.seq == 1 and "market_data_hash" in problem.reason
    # rehashing the inputs and resealing still breaks the link to the next record
    forged = seal(dataclasses.replace(changed, market_data_hash=digest(inputs)))
    (problem,) = verify_chains([records[0], forged, *records[2:]])
    assert problem.seq == 2 and "prev_hash" in problem.reason
