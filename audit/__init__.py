"""Governance: calibration records, their canonical hashes and hash chains. Pure: no I/O, no
clock; imports only :mod:`schemas`."""

from audit.approvals import check_decision, decide, new_key, public_key
from audit.canonical import canonical, digest
from audit.chain import GENESIS, ChainProblem, seal, verify_chains

__all__ = [
    "GENESIS",
    "ChainProblem",
    "canonical",
    "check_decision",
    "decide",
    "digest",
    "new_key",
    "public_key",
    "seal",
    "verify_chains",
]
