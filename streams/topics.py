"""volstream's topics, declared with explicit settings and created by the app at start-up."""

from __future__ import annotations

from datetime import timedelta

from streams.app import app, settings

__all__ = ["alerts", "dlq", "params", "quotes", "state"]


def _topic(name: str, partitions: int, **config):
    return app.topic(
        name,
        partitions=partitions,
        internal=True,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        **config,
    )


quotes = _topic(settings.topics["quotes"], settings.partitions, retention=timedelta(days=7))
params = _topic(settings.topics["params"], settings.partitions, retention=timedelta(days=30))
alerts = _topic(settings.topics["alerts"], 1, retention=timedelta(days=30))
dlq = _topic(settings.topics["dlq"], 1, retention=timedelta(days=30))
state = _topic(settings.topics["state"], 1, compacting=True)  # last warm-start state per smile
