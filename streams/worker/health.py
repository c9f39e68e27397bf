"""The health topic, its one owner: what the health rules remember, written and read back.

The topic is compacted and keyed like the alerts (a smile's or surface's key, a model's name,
a quotes partition's key); each value is a :class:`schemas.KeyHealth`. A worker writes a key's
history with every batch that fitted it or changed its alerts (delivered before the batch's
quotes are committed), and reads the topic back when it starts and when it takes partitions
over: drift and RMSE are judged against the same history, and the alerts already firing
resolve instead of firing again.
"""

from __future__ import annotations

import math

from alerts import KeyHistory
from schemas import KeyHealth, encode
from streams.access import Kafka
from streams.book.state import read_latest

__all__ = ["health_message", "history_of", "read_health"]


def health_message(key: str, history: KeyHistory) -> tuple[bytes, bytes]:
    """The Kafka key and value that record ``history`` of ``key``."""
    message = KeyHealth(
        model=history.model,
        windows=dict(history.params),
        rmse=history.rmse,
        failed=history.failed,
        last_fit=history.last_fit if math.isfinite(history.last_fit) else None,
        prior={k: v for k, v in history.prior.items() if v is not None},
        firing=tuple(sorted(history.firing)),
    )
    return key.encode(), encode(message)


def history_of(message: KeyHealth) -> KeyHistory:
    """The rules' history as a :class:`schemas.KeyHealth` recorded it (its quotes, kept in
    memory only, start empty: the next drift alert lists no moved quotes)."""
    return KeyHistory(
        model=message.model,
        params=dict(message.windows),
        rmse=message.rmse,
        failed=message.failed,
        last_fit=-math.inf if message.last_fit is None else message.last_fit,
        prior=dict(message.prior),
        firing=frozenset(message.firing),
    )


async def read_health(kafka: Kafka, topic: str) -> dict[str, KeyHistory]:
    """Every key's latest history on the health topic (empty if it does not exist)."""
    return {k: history_of(m) for k, m in (await read_latest(kafka, topic, KeyHealth)).items()}
