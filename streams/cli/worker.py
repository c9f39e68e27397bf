"""``volstream worker``: run a calibration worker."""

from __future__ import annotations

from streams.cli.connect import kafka_flags, settings_of


def add_parser(sub) -> None:
    worker = sub.add_parser(
        "worker",
        help="run a calibration worker (consumes quotes, publishes params and alerts)",
        description="Consume volstream.quotes, keep rolling surfaces, recalibrate dirty smiles in "
        "micro-batches and publish volstream.params, volstream.alerts and volstream.dlq. Settings "
        "come from the environment (see streams/settings.py); without --bootstrap or "
        "KAFKA_BOOTSTRAP_SERVERS the local broker is started. Workers with the same "
        "VOLSTREAM_APP_ID share the partitions.",
    )
    kafka_flags(worker)
    worker.add_argument("--loglevel", default="warning", help="faust log level (default warning)")
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args) -> int:
    import logging

    from streams.worker.run import run_worker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_of(args)
    print(
        f"volstream worker: consuming {settings.bootstrap} as group {settings.app_id!r}", flush=True
    )
    run_worker(settings, loglevel=args.loglevel)
    return 0
