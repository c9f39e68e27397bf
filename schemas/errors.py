"""The one exception of the wire formats: a message that cannot be accepted, and why."""

from __future__ import annotations

__all__ = ["SchemaError"]


class SchemaError(ValueError):
    """Rejected message. ``reason`` is a stable code for counting and dead-lettering
    (``oversized``, ``not_msgpack``, ``unknown_type``, ``unknown_version``, ``missing_field``,
    ``wrong_type``, ``not_finite``, ``out_of_range``, ``crossed_quote``, ``expired``,
    ``unknown_field``); the message says which field and value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
