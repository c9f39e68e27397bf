"""volstream's wire formats: versioned msgpack messages with strict validation.

Subscribers install and import only this package (it needs ``msgpack`` and ``numpy``, for
quotes carried as columns, and nothing heavier)::

    from schemas import Params, decode
    params = decode(record.value, Params)
    if params.good: ...
"""

from schemas.codec import DEAD_LETTER_KEEP, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, decode, encode
from schemas.columns import QuoteColumns, RowProblem
from schemas.daycount import act365f, time_to_expiry
from schemas.errors import SchemaError
from schemas.keys import SURFACE, book_key, key_underlying
from schemas.messages import (
    Alert,
    DeadLetter,
    JobResult,
    Params,
    Quote,
    QuoteBatch,
    WarmState,
)

__all__ = [
    "DEAD_LETTER_KEEP",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "SURFACE",
    "Alert",
    "DeadLetter",
    "JobResult",
    "Params",
    "Quote",
    "QuoteBatch",
    "QuoteColumns",
    "RowProblem",
    "SchemaError",
    "WarmState",
    "act365f",
    "book_key",
    "decode",
    "encode",
    "key_underlying",
    "time_to_expiry",
]
