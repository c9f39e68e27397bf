"""The key of a smile or an index surface, the one place it is built and read.

It is the Kafka key of every message about that smile or surface (params, alerts, warm state)
and names it in the worker's book: ``UNDERLYING|EXPIRY`` for a smile, ``UNDERLYING|surface``
for an equity index's whole surface. Audit chains other than a smile's or surface's own
fits have keys of their own that start with the underlying too (:func:`runbook_key`,
:func:`job_key`).
"""

from __future__ import annotations

__all__ = ["SURFACE", "book_key", "job_key", "key_underlying", "runbook_key", "watermark_key"]

SURFACE = "surface"  # the second half of a surface's key, where a smile has its expiry


def book_key(underlying: str, expiry: str | None = None) -> str:
    """The key of ``underlying``'s smile of ``expiry``, or of its surface (``expiry`` None)."""
    return f"{underlying}|{SURFACE if expiry is None else expiry}"


def key_underlying(key: str) -> str:
    """The underlying a key names."""
    return key.partition("|")[0]


def watermark_key(topic: str, partition: int) -> str:
    """The key of a quotes partition's :class:`schemas.Watermark`: ``TOPIC|PARTITION``."""
    return f"{topic}|{partition}"


def runbook_key(key: str) -> str:
    """The audit chain of the failure runbook's fixes of smile or surface ``key``:
    ``KEY|runbook``."""
    return f"{key}|runbook"


def job_key(job: str, subject: str) -> str:
    """The audit chain of playbook ``job``'s runs on ``subject`` (an asset, or assets joined
    by ``+``): ``SUBJECT|JOB``."""
    return f"{subject}|{job}"
