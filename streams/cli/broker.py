"""``volstream broker``: start, stop or query the local Kafka broker."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    broker = sub.add_parser(
        "broker",
        help="start, stop or query the local Kafka broker (KRaft, loopback)",
        description="A local Apache Kafka 4.x broker for demos and tests: jars fetched with "
        "Maven and cached, KRaft storage formatted, one broker+controller on loopback. Data and "
        "logs live in --state-dir (default $VOLSTREAM_STATE_DIR/kafka or ~/.volstream/kafka). "
        "`status` exits 0 only when the broker answers a Metadata request.",
    )
    broker.add_argument("action", choices=("start", "stop", "status"))
    broker.add_argument("--state-dir", type=Path, help="data, logs, config and pid file")
    broker.add_argument("--port", type=int, help="client port (default 9092)")
    broker.add_argument("--controller-port", type=int, help="KRaft controller port (default 9093)")
    broker.add_argument("--json", action="store_true", help="status as JSON")
    broker.set_defaults(func=cmd_broker)


def cmd_broker(args) -> int:
    from streams.local.broker import BrokerConfig, LocalKafka

    config = BrokerConfig(
        **{
            k: v
            for k, v in (
                ("state_dir", args.state_dir),
                ("port", args.port),
                ("controller_port", args.controller_port),
            )
            if v is not None
        }
    )
    broker = LocalKafka(config)
    if args.action == "start":
        print(
            f"starting Kafka {config.bootstrap} (state in {config.state_dir}; the first start "
            "fetches the broker's jars with Maven)...",
            flush=True,
        )
        print(f"running: bootstrap {broker.start()}; log {broker.log_dir / 'server.log'}")
        return 0
    if args.action == "stop":
        print("stopped" if broker.stop() else "not running")
        return 0
    status = broker.status()
    if args.json:
        print(json.dumps(status))
    else:
        state = (
            "running and answering"
            if status["answering"]
            else ("running, not answering" if status["running"] else "not running")
        )
        print(f"{state}: {status['bootstrap']} (pid {status['pid']}; state {status['state_dir']})")
    return 0 if status["answering"] else 1
