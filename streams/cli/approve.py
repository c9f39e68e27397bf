"""``volstream keys new``, ``volstream approve ID`` and ``volstream reject ID``: an approver's
key pair, and their signed decision on a calibration record waiting for approval."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from streams.cli.connect import kafka_flags, settings_of

__all__ = ["add_parser"]

EPILOG = """how approvals work:
  1. each approver makes a key pair once:  volstream keys new --as bob
     and the desk registers the printed public key with the workers:
     VOLSTREAM_APPROVERS=bob=<64 hex digits>,carol=<...>
  2. a material change (VOLSTREAM_MATERIAL: a parameter's move, an RMSE jump, a failed gate)
     is recorded PENDING; its parameters go out with approval="pending" and a warning alert
     names the record, e.g. 'EURUSD|2027-03-19@41'
  3. volstream approve 'EURUSD|2027-03-19@41' --as bob --reason "BoJ intervention, checked"
     signs the decision with bob's key and puts it on PREFIX.decisions (kept forever); the
     worker checks it and publishes the parameters again, approved
  the approver must differ from the calibrations' operator (VOLSTREAM_OPERATOR); `volstream
  audit verify` checks every decision's signature and approver.
exit status: 0 decision published, 1 refused (named, with why), 2 bad arguments or no broker"""


def _key_path(settings, name: str) -> Path:
    return settings.state_dir / "keys" / f"{name}.key"


def add_parser(sub) -> None:
    """The ``keys``, ``approve`` and ``reject`` verbs."""
    fmt = argparse.RawDescriptionHelpFormatter
    keys = sub.add_parser("keys", help="make an approver's signing key pair", epilog=EPILOG,
                          formatter_class=fmt)  # fmt: skip
    keys_cmd = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_cmd.add_parser(
        "new",
        help="a fresh Ed25519 key pair for an approver",
        description="Writes the private key (keep it secret; mode 0600) and prints the public "
        "key to register in VOLSTREAM_APPROVERS.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    new.add_argument("--as", dest="name", required=True, help="the approver's name")
    new.add_argument("--out", type=Path,
                     help="where to write the private key (default STATE_DIR/keys/NAME.key)")  # fmt: skip
    new.set_defaults(func=cmd_keys_new)
    for verdict, verb in (("approved", "approve"), ("rejected", "reject")):
        p = sub.add_parser(
            verb,
            help=f"{verb} a calibration waiting for approval (signed)",
            description=f"Signs the decision that record ID is {verdict} with the approver's "
            "key and publishes it on PREFIX.decisions. ID is KEY@SEQ, as the material-change "
            "alert and `volstream audit show --pending` name it, or the start of its record "
            "hash (8 hex digits or more).",
            epilog=EPILOG,
            formatter_class=fmt,
        )
        p.add_argument("record", metavar="ID", help="KEY@SEQ or a record hash prefix")
        p.add_argument("--as", dest="name", required=True, help="the approver's name")
        p.add_argument("--key-file", type=Path,
                       help="the approver's private key (default STATE_DIR/keys/NAME.key)")  # fmt: skip
        p.add_argument("--reason", default="", help="why (kept with the decision)")
        kafka_flags(p)
        p.set_defaults(func=cmd_decide, verdict=verdict)


def cmd_keys_new(args) -> int:
    from audit import new_key, public_key
    from streams.settings import Settings

    path = args.out or _key_path(Settings.from_env(), args.name)
    if path.exists():
        print(f"{path} exists: an approver keeps one key (remove it first to replace it)",
              file=sys.stderr)  # fmt: skip
        return 2
    private = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(private.hex() + "\n")
    print(f"private key of {args.name} written to {path} (keep it secret)")
    print("register the public key with the workers:")
    print(f"  VOLSTREAM_APPROVERS={args.name}={public_key(private)}")
    return 0


def _find(records, wanted: str):
    """The record ``wanted`` names (KEY@SEQ or a hash prefix), or why none."""
    key, at, seq = wanted.rpartition("@")
    if at and seq.isdigit():
        found = [r for r in records if r.key == key and r.seq == int(seq)]
    elif len(wanted) >= 8 and all(c in "0123456789abcdef" for c in wanted.lower()):
        found = [r for r in records if r.record_hash.startswith(wanted.lower())]
    else:
        return None, f"{wanted!r} is neither KEY@SEQ nor a record hash prefix (8+ hex digits)"
    hashes = {r.record_hash for r in found}
    if len(hashes) > 1:
        return None, f"{wanted!r} names {len(hashes)} records: give more of the hash"
    return (found[-1], None) if found else (None, f"no record {wanted!r} on the audit topic")


def cmd_decide(args) -> int:
    from audit import check_decision, decide
    from schemas import CalibrationRecord
    from streams.book.state import read_all

    settings = settings_of(args)
    path = args.key_file or _key_path(settings, args.name)
    try:
        private = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.name}'s key from {path}: {exc}", file=sys.stderr)
        return 2
    records = [r for _, r in asyncio.run(read_all(settings.client(), settings.topics["audit"],
                                                  CalibrationRecord))]  # fmt: skip
    record, why = _find(records, args.record)
    if record is None:
        print(why, file=sys.stderr)
        return 1
    name = f"{record.key}@{record.seq}"
    if record.validation_status != "pending":
        print(f"{name} does not wait for approval (it is {record.validation_status})",
              file=sys.stderr)  # fmt: skip
        return 1
    last = max(r.seq for r in records if r.key == record.key)
    if last != record.seq:
        print(f"{name} is superseded by {record.key}@{last}: its parameters are no longer the "
              "published ones; decide on the latest", file=sys.stderr)  # fmt: skip
        return 1
    decision = decide(record, args.verdict, args.name, args.reason, private, time.time())
    refused = check_decision(decision, record, settings.approvers)
    if refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1
    asyncio.run(_publish(settings, decision))
    print(f"{name} {args.verdict} by {args.name}: published on {settings.topics['decisions']}; "
          "the worker publishes its parameters again, so marked")  # fmt: skip
    return 0


async def _publish(settings, decision) -> None:
    from aiokafka import AIOKafkaProducer

    from streams.feed.send import ensure_topics
    from streams.worker.approvals import decision_message

    await ensure_topics(settings)
    producer = AIOKafkaProducer(**settings.client(acks="all"))
    await producer.start()
    try:
        key, value = decision_message(decision)
        await producer.send_and_wait(settings.topics["decisions"], value, key=key)
    finally:
        await producer.stop()
