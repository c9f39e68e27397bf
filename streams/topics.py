"""volstream's topics, declared with explicit settings and created by the app at start-up."""

from __future__ import annotations

from streams.app import app, settings
from streams.settings import TopicSpec

__all__ = ["alerts", "dlq", "params", "quotes", "state"]


def _topic(spec: TopicSpec):
    return app.topic(
        spec.name,
        partitions=spec.partitions,
        config=spec.config,
        internal=True,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


quotes, params, alerts, dlq, state = (_topic(spec) for spec in settings.topic_specs.values())
