"""``volstream tail``: print a topic's messages, decoded."""

from __future__ import annotations

import contextlib

from streams.cli.connect import kafka_flags, settings_of


def add_parser(sub) -> None:
    tail_p = sub.add_parser("tail", help="print a topic's messages, decoded")
    tail_p.add_argument(
        "topic",
        help="quotes, params, alerts, dlq, state, jobs, watermarks (how current the params are), "
        "health, audit, or a full topic name",
    )
    tail_p.add_argument(
        "--from-beginning", action="store_true", help="start at the earliest offset"
    )
    tail_p.add_argument("--limit", type=int, help="stop after this many messages")
    tail_p.add_argument("--idle", type=float, help="stop after this many quiet seconds")
    tail_p.add_argument("--json", action="store_true", help="one JSON object per line")
    kafka_flags(tail_p)
    tail_p.set_defaults(func=cmd_tail)


def cmd_tail(args) -> int:
    import asyncio

    from streams.feed.tail import tail
    from streams.settings import TOPIC_KINDS

    settings = settings_of(args)
    topic = settings.topics[args.topic] if args.topic in TOPIC_KINDS else args.topic
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a tail: not an error
        asyncio.run(
            tail(
                settings.client(),
                topic,
                from_beginning=args.from_beginning,
                limit=args.limit,
                as_json=args.json,
                idle=args.idle,
            )
        )
    return 0
