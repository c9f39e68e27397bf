"""The faust app of one worker and its topics, built from the :class:`Settings` it is given
(nothing is read from the environment here: the CLI reads it once, into the settings)."""

from __future__ import annotations

import faust

from streams.settings import Settings

__all__ = ["build_app", "declare_topics"]


def build_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        broker_credentials=settings.security.faust_credentials(),  # TLS, SASL: streams.access
        autodiscover=False,
        datadir=str(settings.state_dir / "faust" / settings.app_id),
        web_enabled=False,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",  # the pipeline decodes: undecodable input goes to the DLQ
        topic_replication_factor=1,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        # a worker killed outright is noticed after this (faust's default, 60 s, held its
        # partitions a minute); heartbeats go every quarter of it, from the event loop
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.session_timeout / 4,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        broker_max_poll_records=4096,
        stream_buffer_maxsize=16384,
    )


def declare_topics(app: faust.App, settings: Settings) -> dict[str, faust.TopicT]:
    """Every volstream topic, by kind, with the partitions and configs of
    :attr:`Settings.topic_specs` (the app creates those missing at start-up)."""
    return {
        kind: app.topic(
            spec.name,
            partitions=spec.partitions,
            config=spec.config,
            internal=True,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        for kind, spec in settings.topic_specs.items()
    }
