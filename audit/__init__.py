"""Governance: calibration records, their canonical hashes and hash chains, material changes
and signed approvals. Pure: no I/O, no
clock; imports only :mod:`schemas`."""

from audit.approvals import check_decision, decide, new_key, public_key
from audit.canonical import canonical, digest
from audit.chain import GENESIS, ChainProblem, seal, verify_chains
from audit.material import Materiality, material_changes

__all__ = [
    "GENESIS",
    "ChainProblem",
    "Materiality",
    "canonical",
    "check_decision",
    "decide",
    "digest",
    "material_changes",
    "new_key",
    "public_key",
    "seal",
    "verify_chains",
]
