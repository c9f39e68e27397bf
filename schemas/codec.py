"""msgpack framing: ``{"type": ..., "v": ..., **fields}``, size-limited and strictly decoded."""

from __future__ import annotations

from typing import TypeVar

import msgpack

from schemas.columns import QuoteColumns
from schemas.errors import SchemaError
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
)

__all__ = ["DEAD_LETTER_KEEP", "MAX_BATCH_BYTES", "MAX_MESSAGE_BYTES", "decode", "encode"]

MAX_MESSAGE_BYTES = 64 * 1024  # larger payloads are rejected before they are parsed...
MAX_BATCH_BYTES = 1024 * 1024  # ...except quote batches and columns, up to this size
DEAD_LETTER_KEEP = 16 * 1024  # bytes of a rejected message kept in its dead letter
MESSAGES = {
    cls.TYPE: cls
    for cls in (
        Quote,
        QuoteBatch,
        QuoteColumns,
        Params,
        Alert,
        DeadLetter,
        WarmState,
        JobResult,
        Watermark,
        KeyHealth,
        CalibrationRecord,
        Decision,
    )
}
Message = (
    Quote
    | QuoteBatch
    | QuoteColumns
    | Params
    | Alert
    | DeadLetter
    | WarmState
    | JobResult
    | Watermark
    | KeyHealth
    | CalibrationRecord
    | Decision
)
M = TypeVar("M", bound=Message)
_LARGE = (QuoteBatch, QuoteColumns)  # the messages that may exceed MAX_MESSAGE_BYTES
_LARGE_PREFIXES = tuple(msgpack.packb(cls.TYPE) for cls in _LARGE)


def encode(message: Message) -> bytes:
    """Serialise ``message`` (validated again on decode, never trusted as written)."""
    return msgpack.packb(
        {"type": message.TYPE, "v": message.VERSION, **message.to_wire()}, use_bin_type=True
    )


def decode(data: bytes, expect: type[M] | None = None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> M:
    """Parse and validate one message; raise :class:`SchemaError` with a reason otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SchemaError("wrong_type", f"a message is bytes, got {type(data).__name__}")
    limit = max_bytes
    head = bytes(data[:64])
    if len(data) > max_bytes and any(p in head for p in _LARGE_PREFIXES):  # batch or columns?
        limit = max(max_bytes, MAX_BATCH_BYTES)
    if len(data) > limit:
        raise SchemaError("oversized", f"{len(data)} bytes exceeds the {limit}-byte limit")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise SchemaError("not_msgpack", f"not a msgpack message ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise SchemaError("wrong_type", f"a message is a map, got {type(obj).__name__}")
    kind = obj.get("type")
    cls = MESSAGES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError("unknown_type", f"unknown message type {kind!r}")
    if len(data) > max_bytes and cls not in _LARGE:
        raise SchemaError("oversized", f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    if expect is not None and cls is not expect:
        raise SchemaError("unknown_type", f"expected a {expect.TYPE} message, got {kind!r}")
    if obj.get("v") != cls.VERSION:
        raise SchemaError(
            "unknown_version",
            f"{kind} version {obj.get('v')!r} is not supported (want {cls.VERSION})",
        )
    return cls.from_wire(obj)
