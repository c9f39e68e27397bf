"""Determinism: one tick file replayed twice (`volstream replay`, as a user would), each time
into a fresh worker on fresh topics, gives identical parameters and identical audit records,
hash for hash (the operator is the desk's, the same both times)."""

import asyncio
import os
import subprocess
import uuid

import pytest

from schemas import CalibrationRecord, Params, decode
from tests.streams.test_stream_e2e import STAMPS, TICKS, VOLSTREAM, read_topic, worker

pytestmark = pytest.mark.kafka


def replayed(bootstrap: str, tmp_path, name: str) -> tuple[list[Params], list[CalibrationRecord]]:
    prefix = f"det-{name}-{uuid.uuid4().hex[:6]}"
    env = {"VOLSTREAM_OPERATOR": "desk fx-vol"}
    with worker(bootstrap, prefix, f"{prefix}-g", tmp_path, tmp_path / f"{name}.log",
                more=env) as proc:  # fmt: skip
        sent = subprocess.run(
            [str(VOLSTREAM), "replay", "--max", "--quiet", "--bootstrap", bootstrap, str(TICKS)],
            capture_output=True, text=True, timeout=300,
            env=os.environ | {"VOLSTREAM_TOPIC_PREFIX": prefix},
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        params = asyncio.run(read_topic(bootstrap, f"{prefix}.params", 300, workers=(proc,)))
        audit = asyncio.run(read_topic(bootstrap, f"{prefix}.audit", len(params), quiet=2))
    return [decode(r.value, Params) for r in params], [decode(r.value, CalibrationRecord)
                                                       for r in audit]  # fmt: skip


def test_a_file_replayed_twice_gives_the_same_parameters_and_audit_hashes(kafka_bootstrap,
                                                                         tmp_path):  # fmt: skip
    first_params, first_audit = replayed(kafka_bootstrap, tmp_path, "a")
    second_params, second_audit = replayed(kafka_bootstrap, tmp_path, "b")

    def by_key(params):
        out = {}
        for p in params:
            out.setdefault(p.key, []).append({k: v for k, v in p.to_wire().items()
                                              if k not in STAMPS})  # fmt: skip
        return out

    assert len(first_params) > 300 and by_key(first_params) == by_key(second_params)

    def chains(records):
        out = {}
        for r in records:
            out.setdefault(r.key, []).append(r.record_hash)
        return out

    assert len(first_audit) == len(first_params)
    assert chains(first_audit) == chains(second_audit)
