"""Approvals: an approver's decision on a calibration record, signed with the approver's
Ed25519 key, and the checks a verifier makes (the signature, the approver's registered key,
the record it names, and that nobody approves their own calibration)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.canonical import canonical
from schemas import Decision

__all__ = ["Named", "check_decision", "decide", "new_key", "public_key"]


class Named(Protocol):
    """What a decision is checked against: the record it names (a :class:`CalibrationRecord`,
    or a worker's head of the key's chain) and who ran it."""

    key: str
    seq: int
    record_hash: str
    operator: str


def new_key() -> bytes:
    """A fresh Ed25519 private key, as its 32 raw bytes (keep them secret)."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def public_key(private: bytes) -> str:
    """The public half of a private key, as 64 hex digits (what approvers register)."""
    key = Ed25519PrivateKey.from_private_bytes(private).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _signed_bytes(decision: Decision) -> bytes:
    wire = decision.to_wire()
    del wire["signature"]
    return canonical(wire)


def decide(
    record: Named, verdict: str, approver: str, reason: str, private: bytes, ts: float
) -> Decision:
    """``approver``'s signed ``verdict`` (approved or rejected) on ``record``."""
    unsigned = Decision(ts, record.key, record.seq, record.record_hash, verdict, approver, reason,
                        public_key(private))  # fmt: skip
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(_signed_bytes(unsigned))
    return dataclasses.replace(unsigned, signature=signature.hex())


def check_decision(
    decision: Decision, record: Named | None, approvers: Mapping[str, str]
) -> str | None:
    """None when ``decision`` stands: it names ``record`` (key, seq and hash), its approver is
    registered in ``approvers`` (name -> public key hex) with the key that signed it, the
    signature holds, and the approver is not the record's operator. Otherwise why not."""
    if record is None or (decision.record_key, decision.record_seq) != (record.key, record.seq):
        return f"names no record: {decision.record_key} seq {decision.record_seq}"
    if decision.record_hash != record.record_hash:
        return "names another version of the record (its hash differs)"
    if decision.approver == record.operator:
        return f"{decision.approver} approves their own calibration"
    registered = approvers.get(decision.approver)
    if registered is None:
        return f"{decision.approver} is not a registered approver"
    if registered != decision.public_key:
        return f"signed with a key that is not {decision.approver}'s"
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(decision.public_key))
        key.verify(bytes.fromhex(decision.signature), _signed_bytes(decision))
    except (InvalidSignature, ValueError):
        return "the signature does not hold (forged or altered)"
    return None
