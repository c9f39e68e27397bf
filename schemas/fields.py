"""Field checks shared by the message types: each raises SchemaError naming the field."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Any

from schemas.errors import SchemaError

__all__ = [
    "boolean",
    "date",
    "date_problem",
    "finite",
    "flag_list",
    "integer",
    "name",
    "name_problem",
    "number",
    "number_list",
    "number_map",
    "optional",
    "plain",
    "range_problem",
    "text",
    "text_problem",
    "timestamp",
]

MAX_TIMESTAMP = 1e11
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")
_MISSING = object()


def _get(data: dict, key: str):
    value = data.get(key, _MISSING)
    if value is _MISSING:
        raise SchemaError("missing_field", f"field {key!r} is required")
    return value


def optional(check, data: dict, key: str, *args, **kw) -> Any:
    """``check(data, key, ...)`` when the field is present and not None, else None."""
    if data.get(key) is None:
        return None
    return check(data, key, *args, **kw)


def number(data: dict, key: str) -> float:
    """A number of any size, infinite ones too (the range is the caller's rule), never NaN:
    a column's NaN means absent, so a single quote's NaN is refused here, where it is read."""
    value = _get(data, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(
            "wrong_type", f"field {key!r} must be a number, got {type(value).__name__}"
        )
    value = float(value)
    if value != value:
        raise SchemaError("not_finite", f"field {key!r} is {value}")
    return value


def range_problem(
    key: str,
    value: float,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    below: float = math.inf,
) -> tuple[str, str] | None:
    """(reason, detail) of the first range rule ``value`` breaks, None when it keeps them: the
    words of every range check, a single field's or a column's."""
    if not math.isfinite(value):
        return "not_finite", f"field {key!r} is {value}"
    if positive and value <= 0:
        return "out_of_range", f"field {key!r} must be positive, got {value}"
    if nonnegative and value < 0:
        return "out_of_range", f"field {key!r} must not be negative, got {value}"
    if value >= below:
        return "out_of_range", f"field {key!r} must be below {below:g}, got {value}"
    return None


def finite(
    data: dict,
    key: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    below: float = math.inf,
) -> float:
    value = number(data, key)
    problem = range_problem(key, value, positive=positive, nonnegative=nonnegative, below=below)
    if problem:
        raise SchemaError(*problem)
    return value


def timestamp(data: dict, key: str) -> float:
    """UTC epoch seconds, positive and before the year ~5100 (so every date function works)."""
    return finite(data, key, positive=True, below=MAX_TIMESTAMP)


def integer(data: dict, key: str, *, nonnegative: bool = True) -> int:
    value = _get(data, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(
            "wrong_type", f"field {key!r} must be an integer, got {type(value).__name__}"
        )
    problem = nonnegative and range_problem(key, value, nonnegative=True)
    if problem:
        raise SchemaError(*problem)
    return value


def boolean(data: dict, key: str) -> bool:
    value = _get(data, key)
    if not isinstance(value, bool):
        raise SchemaError("wrong_type", f"field {key!r} must be true or false, got {value!r}")
    return value


TEXT_MAX = 2048  # characters of a message's free text (an alert's message, a line, a detail)


def listed(names) -> str:
    """Names for an error message: a map's keys as the sender wrote them (text or bytes: a
    hostile map mixes both, which do not sort together), at most 8, each cut to 24 chars."""
    shown = sorted(repr(n)[:24] for n in names)
    more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
    return "[" + ", ".join(shown[:8]) + "]" + more


def clip(value: str) -> str:
    """``value`` cut to :data:`TEXT_MAX` characters: what a free-text field of the wire holds."""
    return value[:TEXT_MAX]


def _string(data: dict, key: str) -> str:
    value = _get(data, key)
    if not isinstance(value, str):
        raise SchemaError(
            "wrong_type", f"field {key!r} must be a string, got {type(value).__name__}"
        )
    return value


def _checked(key: str, value, problem: tuple[str, str] | None):
    if problem:
        raise SchemaError(problem[0], f"field {key!r} {problem[1]}")
    return value


def text_problem(
    value: str, *, choices: tuple[str, ...] | None = None, max_len: float = 512
) -> tuple[str, str] | None:
    """(reason, what is wrong, said after the field's name) of a text value, None when it is
    valid: the words of every text check, a single field's or a column's value's."""
    if len(value) > max_len:
        return "out_of_range", f"is longer than {max_len} characters"
    if choices is not None and value not in choices:
        return "out_of_range", f"must be one of {choices}, got {value!r}"
    return None


@functools.lru_cache(maxsize=4096)  # the same few names in every message of a stream
def name_problem(value: str) -> tuple[str, str] | None:
    """:func:`text_problem` of an identifier (see :func:`name`)."""
    if problem := text_problem(value, max_len=32):
        return problem
    return None if NAME.match(value) else ("out_of_range", f"is not a valid name: {value!r}")


@functools.lru_cache(maxsize=4096)
def date_problem(value: str) -> tuple[str, str] | None:
    """:func:`text_problem` of an ISO date (``YYYY-MM-DD``, or ``YYYYMMDD``)."""
    if problem := text_problem(value, max_len=10):
        return problem
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return "wrong_type", f"must be an ISO date (YYYY-MM-DD), got {value!r}"
    return None


def text(
    data: dict, key: str, *, choices: tuple[str, ...] | None = None, max_len: float = 512
) -> str:
    value = _string(data, key)
    return _checked(key, value, text_problem(value, choices=choices, max_len=max_len))


def name(data: dict, key: str) -> str:
    """An identifier such as an underlying: 1-32 of letters, digits, '.', '_', '/', '-'."""
    value = _string(data, key)
    return _checked(key, value, name_problem(value))


def date(data: dict, key: str) -> dt.date:
    value = _string(data, key)
    return dt.date.fromisoformat(_checked(key, value, date_problem(value)))


def number_map(data: dict, key: str, *, allow_none: bool = False) -> dict[str, float | None]:
    """A map of names to finite numbers (or None where ``allow_none``)."""
    value = _get(data, key)
    if not isinstance(value, dict):
        raise SchemaError("wrong_type", f"field {key!r} must be a map, got {type(value).__name__}")
    out: dict[str, float | None] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise SchemaError("wrong_type", f"field {key!r} has a non-string key {k!r}")
        if v is None and allow_none:
            out[k] = None
            continue
        try:
            out[k] = finite(value, k)
        except SchemaError as exc:
            raise SchemaError(exc.reason, f"in field {key!r}: {exc.detail}") from None
    return out


def text_list(data: dict, key: str, *, max_items: int = 64, max_len: int = 512) -> tuple[str, ...]:
    """A list of at most ``max_items`` strings, each of at most ``max_len`` characters."""
    value = _get(data, key)
    if not isinstance(value, (list, tuple)):
        raise SchemaError("wrong_type", f"field {key!r} must be a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise SchemaError("out_of_range", f"field {key!r} has more than {max_items} items")
    return tuple(text({key: v}, key, max_len=max_len) for v in value)


def number_list(data: dict, key: str, *, max_items: int = 1024) -> tuple[float, ...]:
    """A list of at most ``max_items`` finite numbers."""
    value = _get(data, key)
    if not isinstance(value, list):
        raise SchemaError("wrong_type", f"field {key!r} must be a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise SchemaError("out_of_range", f"field {key!r} has more than {max_items} items")
    try:
        return tuple(finite({"item": v}, "item") for v in value)
    except SchemaError as exc:
        raise SchemaError(exc.reason, f"in field {key!r}: {exc.detail}") from None


def flag_list(data: dict, key: str, *, max_items: int = 1024) -> tuple[bool, ...]:
    """A list of at most ``max_items`` booleans."""
    value = _get(data, key)
    if not isinstance(value, list) or not all(isinstance(v, bool) for v in value):
        raise SchemaError("wrong_type", f"field {key!r} must be a list of booleans")
    if len(value) > max_items:
        raise SchemaError("out_of_range", f"field {key!r} has more than {max_items} items")
    return tuple(value)


def plain(data: dict, key: str, *, max_depth: int = 6, max_items: int = 4096) -> Any:
    """A tree of maps (text keys), lists, text, whole numbers, finite numbers, booleans and
    None: data archived as it was (a calibration's inputs), checked for shape, not meaning."""
    value = _get(data, key)

    def check(v, depth: int, where: str) -> None:
        if depth > max_depth:
            raise SchemaError("out_of_range", f"field {key!r} nests deeper than {max_depth}")
        if isinstance(v, dict):
            if len(v) > max_items or not all(isinstance(k, str) for k in v):
                raise SchemaError("wrong_type", f"field {key!r}: {where} must be a map of text")
            for k, item in v.items():
                check(item, depth + 1, f"{where}.{k}")
        elif isinstance(v, list):
            if len(v) > max_items:
                raise SchemaError("out_of_range", f"field {key!r}: {where} is too long")
            for i, item in enumerate(v):
                check(item, depth + 1, f"{where}[{i}]")
        elif isinstance(v, float) and not math.isfinite(v):
            raise SchemaError("not_finite", f"field {key!r}: {where} is not finite")
        elif not (v is None or isinstance(v, (str, int, float, bool))):
            raise SchemaError("wrong_type", f"field {key!r}: {where} is a {type(v).__name__}")

    check(value, 0, key)
    return value
