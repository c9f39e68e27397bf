"""volstream's wire formats: versioned msgpack messages with strict validation.

Subscribers install and import only this package (it needs ``msgpack`` and ``numpy``, for
quotes carried as columns, and nothing heavier)::

    from schemas import Params, decode
    params = decode(record.value, Params)
    if params.usable: ...  # converged, gates passed or an approver signed it off
"""

from schemas.codec import DEAD_LETTER_KEEP, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, decode, encode
from schemas.columns import QuoteColumns, RowProblem
from schemas.daycount import act365f, time_to_expiry
from schemas.errors import SchemaError
from schemas.fields import TEXT_MAX, clip
from schemas.keys import SURFACE, book_key, job_key, key_underlying, runbook_key, watermark_key
from schemas.messages import (
    Alert,
    CalibrationRecord,
    DeadLetter,
    Decision,
    JobResult,
    KeyHealth,
    Params,
    Quote,
    QuoteBatch,
    WarmState,
    Watermark,
    mid,
)

__all__ = [
    "DEAD_LETTER_KEEP",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "SURFACE",
    "TEXT_MAX",
    "Alert",
    "CalibrationRecord",
    "DeadLetter",
    "Decision",
    "JobResult",
    "KeyHealth",
    "Params",
    "Quote",
    "QuoteBatch",
    "QuoteColumns",
    "RowProblem",
    "SchemaError",
    "WarmState",
    "Watermark",
    "act365f",
    "book_key",
    "clip",
    "decode",
    "encode",
    "job_key",
    "key_underlying",
    "mid",
    "runbook_key",
    "time_to_expiry",
    "watermark_key",
]
