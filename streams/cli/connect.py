"""The flags every command that talks to Kafka shares (where the broker is, how to reach it,
how many quotes a sender puts in one message), and the settings they give: the environment's
(``streams.settings``), each flag over its variable."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from streams.access import MECHANISMS, PROTOCOLS
from streams.local.broker import resolve_bootstrap
from streams.settings import Settings

__all__ = ["add_batch_flag", "bootstrap_of", "kafka_flags", "settings_of"]


def bootstrap_of(args) -> str:
    """--bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else the local broker (started if needed)."""
    return args.bootstrap or resolve_bootstrap()


_SECURITY = {  # each flag --NAME over its variable KAFKA_NAME (streams.access)
    "security_protocol": {"choices": PROTOCOLS,
                          "help": "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL"},
    "sasl_mechanism": {"choices": MECHANISMS, "help": "default SCRAM-SHA-512"},
    "sasl_username": {"help": "the user to authenticate as"},
    "sasl_password_file": {"type": Path, "help": "a file holding its password"},
    "ssl_cafile": {"type": Path, "help": "CA certificates (PEM) to check the broker's against"},
    "ssl_certfile": {"type": Path, "help": "this client's certificate (PEM)"},
    "ssl_keyfile": {"type": Path, "help": "this client's private key (PEM)"},
}  # fmt: skip


def kafka_flags(parser: argparse.ArgumentParser, what: str = "") -> None:
    """The flags of a command that talks to Kafka: where the broker is and how to reach it
    (each over its ``KAFKA_*`` variable; see ``streams.access``)."""
    group = parser.add_argument_group(
        "Kafka connection", "each flag over its KAFKA_* variable (KAFKA_BOOTSTRAP_SERVERS, "
        "KAFKA_SECURITY_PROTOCOL, ...); a password only from a file or KAFKA_SASL_PASSWORD")  # fmt: skip
    group.add_argument("--bootstrap", help=f"{what}Kafka bootstrap servers (host:port,...)")
    for name, options in _SECURITY.items():
        group.add_argument(f"--{name.replace('_', '-')}", **options)


def settings_of(args) -> Settings:
    """The environment's settings, with this verb's broker and credentials (its flags)."""
    env = dict(os.environ)
    for name in _SECURITY:
        if getattr(args, name, None) is not None:
            env[f"KAFKA_{name.upper()}"] = str(getattr(args, name))
    return dataclasses.replace(Settings.from_env(env), bootstrap=bootstrap_of(args))


def add_batch_flag(p: argparse.ArgumentParser) -> None:
    """``--batch``: how many quotes go in one message (the senders' flag)."""
    p.add_argument(
        "--batch",
        type=int,
        default=1024,
        help="quotes per message and underlying, as typed columns (QuoteColumns; a paced "
        "quote waits at most 5 ms for company); 1 sends each quote alone, far slower for "
        "workers (default 1024)",
    )
