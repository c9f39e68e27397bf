"""Hash chains of calibration records: each key's records link to the one before, so a removed,
reordered or altered record is found, and named."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import NamedTuple

from audit.canonical import digest
from schemas import CalibrationRecord

__all__ = ["GENESIS", "ChainProblem", "record_digest", "seal", "verify_chains"]

GENESIS = "0" * 64  # the prev_hash of a key's first record
REPLAY = 4096  # a key's records a replay may write again (far more than a checkpoint's lag)


def record_digest(record: CalibrationRecord) -> str:
    """The hash a record carries: its canonical encoding without ``record_hash``, and without
    its ``inputs``, which its ``market_data_hash`` commits to (each is hashed once)."""
    wire = record.to_wire()
    del wire["record_hash"], wire["inputs"]
    return digest(wire)


def seal(record: CalibrationRecord) -> CalibrationRecord:
    """``record`` with its ``record_hash`` set."""
    return dataclasses.replace(record, record_hash=record_digest(record))


class ChainProblem(NamedTuple):
    """The first record of a key that breaks its chain, and why."""

    key: str
    seq: int
    position: int  # in the order the records were read
    reason: str


def verify_chains(records: Iterable[CalibrationRecord]) -> list[ChainProblem]:
    """Every key's chain, in the order its records were read: each record's own hash, its
    market-data hash over its inputs, its ``seq`` one past the previous one's (from 0) and its
    ``prev_hash`` the previous one's ``record_hash``. A record written again exactly, one of
    the key's last ``REPLAY`` (a worker resumed from its checkpoint after a crash writes the
    records since then again), is no problem; one of an earlier seq with another hash (a fork)
    is. The first problem of each key."""
    heads: dict[str, tuple[int, str]] = {}  # key -> (seq, record_hash) of its last good record
    recent: dict[str, dict[int, str]] = {}  # key -> seq -> record_hash of its last REPLAY
    broken: dict[str, ChainProblem] = {}
    for position, r in enumerate(records):
        if r.key in broken:
            continue
        seq, prev = heads.get(r.key, (-1, GENESIS))
        reason = None
        if record_digest(r) != r.record_hash:
            reason = "altered: its record_hash does not match its contents"
        elif digest(r.inputs) != r.market_data_hash:
            reason = "altered: its market_data_hash does not match its archived inputs"
        elif recent.get(r.key, {}).get(r.seq) == r.record_hash:  # written again: a replay
            continue
        elif r.seq != seq + 1:
            what = "missing before it" if r.seq > seq + 1 else "out of order or repeated"
            reason = f"seq {r.seq} after {seq}: {abs(r.seq - seq - 1) or 1} record(s) {what}"
        elif r.prev_hash != prev:
            reason = "prev_hash is not the previous record's hash (removed or reordered)"
        if reason:
            broken[r.key] = ChainProblem(r.key, r.seq, position, reason)
        else:
            heads[r.key] = (r.seq, r.record_hash)
            mine = recent.setdefault(r.key, {})
            mine[r.seq] = r.record_hash
            mine.pop(r.seq - REPLAY, None)
    return sorted(broken.values(), key=lambda p: p.position)
