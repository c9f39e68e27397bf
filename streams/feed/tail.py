"""Read a volstream topic and print its messages decoded: a line each, or JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from schemas import Alert, DeadLetter, Params, Quote, SchemaError, Watermark, decode
from streams.access import Kafka

__all__ = ["describe", "format_params", "tail"]


def format_params(params: Params) -> str:
    """The fitted parameters as ``name=value`` (SABR's fixed beta left out)."""
    return " ".join(
        f"{k}={'nan' if v is None else f'{v:.4g}'}" for k, v in params.params.items() if k != "beta"
    )


def describe(message) -> str:
    """One human-readable line for any volstream message."""
    if isinstance(message, Params):
        verdict = "good" if message.good else "FLAGGED"
        if message.approval != "auto":  # approvals on: a material change and its decision
            verdict += f" {message.approval.upper()}"
            if message.record_seq is not None:
                verdict += f" {message.key}@{message.record_seq}"
        latency = 1e3 * (message.published_at - message.received_at)
        error = "rmse" if message.model == "sabr" else "rmse(vol)"
        return (
            f"{message.subject} {format_params(message)} "
            f"{error}={1e4 * (message.rmse or 0):.2f}bp steps={message.iterations} "
            f"{'warm' if message.warm else 'cold'} {verdict} latency={latency:.0f}ms"
        )
    if isinstance(message, Alert):
        level = message.severity.upper() + (" resolved" if message.state == "resolved" else "")
        line = f"[{level}] {message.rule} {message.subject}: {message.message}"
        return line + (f" (runbook: {message.runbook})" if message.state == "firing" else "")
    if isinstance(message, DeadLetter):
        return (
            f"DEAD {message.reason}: {message.detail} ({message.topic} partition "
            f"{message.partition} offset {message.offset}, {message.original_size} bytes)"
        )
    if isinstance(message, Watermark):
        at = dt.datetime.fromtimestamp(message.event_time, dt.UTC).isoformat(
            timespec="milliseconds"
        )
        lag = 1e3 * (message.ts - message.event_time)
        waiting = f", {message.pending} due" if message.pending else ""
        thin = f", too few quotes to fit: {', '.join(message.unfit)}" if message.unfit else ""
        return (
            f"WATERMARK {message.topic} partition {message.partition}: every quote to {at} "
            f"reflected (published {lag:.0f} ms after it{waiting}{thin})"
        )
    if isinstance(message, Quote):
        level = f"fwd={message.forward}" if message.asset_class == "fx" else f"spot={message.spot}"
        quoted = (
            f"vol={100 * message.vol:.3f}%"
            if message.vol is not None
            else f"{'call' if message.call else 'put'}={message.price:g}"
        )
        return (
            f"{message.underlying} {message.expiry} K={message.strike:g} {quoted} {level} "
            f"seq={message.seq}"
        )
    return repr(message)


def _json(message) -> str:
    data = message.to_wire()
    if isinstance(message, DeadLetter):
        data["original"] = data["original"].hex()
    return json.dumps({"type": message.TYPE, **data})


async def tail(
    kafka: Kafka,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    as_json: bool,
    idle: float | None,
    emit: Callable[[str], None] = print,
) -> int:
    """Print messages of ``topic``; stop after ``limit`` messages or ``idle`` quiet seconds."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    count = 0
    try:
        while limit is None or count < limit:
            batch = await consumer.getmany(timeout_ms=int(1000 * (idle or 1.0)))
            if not batch and idle is not None:
                break
            for records in batch.values():
                for r in records:
                    try:
                        message = decode(r.value)
                        emit(_json(message) if as_json else describe(message))
                    except SchemaError as exc:
                        emit(
                            json.dumps({"undecodable": exc.reason})
                            if as_json
                            else f"undecodable: {exc}"
                        )
                    count += 1
                    if limit is not None and count >= limit:
                        return count
    finally:
        await consumer.stop()
    return count
