"""``volstream demo``: the main job, end to end, on the bundled sample."""

from __future__ import annotations


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="the main job: broker, worker, replayed sample stream and a live table",
        description="Runs the whole path: the local broker (unless KAFKA_BOOTSTRAP_SERVERS or "
        "--bootstrap), a worker, a replay of data/sample_ticks.csv, and a live table of the "
        "parameters it publishes; ends with a summary of what was measured.",
    )
    demo.add_argument("--bootstrap", help="Kafka bootstrap servers (default: local broker)")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=30.0, help="replay speed (default 30x)")
    pace.add_argument("--max", action="store_true", help="replay as fast as possible")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from streams.local.demo import run_demo

    speed = None if args.max else args.speed
    return run_demo(args.bootstrap, speed=speed)
