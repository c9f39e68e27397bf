"""The faust application, and nothing else (topics and agents live in their own modules)."""

from __future__ import annotations

import faust

from streams.settings import Settings

__all__ = ["app", "settings"]

settings = Settings.from_env()

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
    autodiscover=False,
    datadir=str(settings.state_dir / "faust" / settings.app_id),
    web_enabled=False,
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",  # agents decode themselves: undecodable input goes to the DLQ
    topic_replication_factor=1,
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    broker_max_poll_records=4096,
    stream_buffer_maxsize=16384,
)
