"""Governance: calibration records, their canonical hashes and hash chains. Pure: no I/O, no
clock; imports only :mod:`schemas`."""

from audit.canonical import canonical, digest
from audit.chain import GENESIS, ChainProblem, seal, verify_chains

__all__ = ["GENESIS", "ChainProblem", "canonical", "digest", "seal", "verify_chains"]
