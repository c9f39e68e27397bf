"""Signed decisions: one that stands is checked through; a forged signature, an altered
decision, an unregistered or impostor key, a self-approval and a decision moved to another
record are refused, each saying why."""

import dataclasses

from audit import check_decision, decide, new_key, public_key, seal
from schemas import Decision, decode, encode
from tests.audit.test_chain import chain

ALICE, MALLORY = new_key(), new_key()
APPROVERS = {"alice": public_key(ALICE)}


def test_a_signed_decision_stands_and_survives_the_wire():
    record = chain()[2]
    decision = decide(record, "approved", "alice", "reviewed the drift", ALICE, 1.8e9)
    assert len(decision.public_key) == 64 and len(decision.signature) == 128
    assert check_decision(decision, record, APPROVERS) is None
    assert decode(encode(decision), Decision) == decision
    rejected = decide(record, "rejected", "alice", "stale quotes", ALICE, 1.8e9)
    assert check_decision(rejected, record, APPROVERS) is None


def test_forgeries_and_misuse_are_refused_with_a_reason():
    records = chain()
    record = records[2]
    good = decide(record, "approved", "alice", "ok", ALICE, 1.8e9)
    altered = dataclasses.replace(good, decision="rejected")  # signature kept
    assert "does not hold" in check_decision(altered, record, APPROVERS)
    forged = dataclasses.replace(good, signature="00" * 64)
    assert "does not hold" in check_decision(forged, record, APPROVERS)
    impostor = decide(record, "approved", "alice", "ok", MALLORY, 1.8e9)  # Mallory's key
    assert "not alice's" in check_decision(impostor, record, APPROVERS)
    stranger = decide(record, "approved", "mallory", "ok", MALLORY, 1.8e9)
    assert "not a registered approver" in check_decision(stranger, record, APPROVERS)
    operator = record.operator
    own = decide(record, "approved", operator, "mine", ALICE, 1.8e9)
    assert "approves their own" in check_decision(own, record, {operator: public_key(ALICE)})
    # a decision stays with the record it names, in the version it named
    assert "names no record" in check_decision(good, records[3], APPROVERS)
    changed = seal(dataclasses.replace(record, parameters={"alpha": 9.0}))
    assert "another version" in check_decision(good, changed, APPROVERS)
