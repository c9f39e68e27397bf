"""``volstream audit show|verify``: the calibration records of the audit topic, listed, and
checked: every key's hash chain, and each selected calibration run again from its archived
inputs (bit for bit where the same code on the same platform wrote it)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys

from schemas import CalibrationRecord

__all__ = ["add_audit_parser"]

EPILOG = """examples:
  volstream audit show --key 'EURUSD|2027-03-19' --limit 20
  volstream audit show --since 2026-12-07T09:00 --json
  volstream audit verify                      every chain; every record run again
  volstream audit verify --key 'SPX|surface' --since 2026-12-01 --until 2026-12-07
  volstream audit verify --no-rerun           chains only (fast)
exit status: 0 verified, 1 a record failed (named, with why), 2 bad arguments or no broker"""


def _time(text: str) -> float:
    """Epoch seconds or ISO-8601 (no offset: UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch seconds nor an ISO-8601 time"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def add_audit_parser(sub) -> None:
    """The ``audit`` verb and its ``show`` and ``verify`` commands."""
    p = sub.add_parser(
        "audit",
        help="list and verify the calibration records (the audit trail)",
        description="Every calibration the stream publishes leaves an immutable, hash-chained "
        "CalibrationRecord on PREFIX.audit (kept forever) with the inputs that run it again. "
        "`show` lists records; `verify` checks every key's chain (a removed, reordered or "
        "altered record, or a changed input, is named) and runs the selected calibrations "
        "again, comparing parameters bit for bit (within --tolerance where another engine "
        "version or platform wrote them).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = p.add_subparsers(dest="audit_command", required=True)
    for name, text in (("show", "list records"), ("verify", "check chains and re-run fits")):
        c = commands.add_parser(name, help=text, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        c.add_argument("--key", help="one smile or surface: 'EURUSD|2027-03-19', 'SPX|surface'")
        c.add_argument("--since", type=_time, help="calibrations at or after (epoch or ISO)")
        c.add_argument("--until", type=_time, help="calibrations before (epoch or ISO)")
        c.add_argument("--bootstrap", help="Kafka bootstrap servers")
        if name == "show":
            c.add_argument("--limit", type=int, help="the latest this many records")
            c.add_argument("--json", action="store_true", help="one JSON object per record")
        else:
            c.add_argument("--no-rerun", action="store_true", help="check the chains only")
            c.add_argument("--tolerance", type=float, default=1e-6,
                           help="relative, for records of another engine version or platform "
                           "(default 1e-6); the same code and platform must match bit for bit")  # fmt: skip
    p.set_defaults(func=cmd_audit)


def _read(args) -> list[CalibrationRecord]:
    from streams.book.state import read_all
    from streams.cli.main import _settings

    settings = _settings(args)
    topic = settings.topics["audit"]
    return [r for _, r in asyncio.run(read_all(settings.bootstrap, topic, CalibrationRecord))]


def _selected(args, records: list[CalibrationRecord]) -> list[CalibrationRecord]:
    return [
        r
        for r in records
        if (args.key is None or r.key == args.key)
        and (args.since is None or r.ts >= args.since)
        and (args.until is None or r.ts < args.until)
    ]


def cmd_audit(args, out=None) -> int:
    out = out or sys.stdout  # looked up now: a caller (or a test) may have replaced it
    records = _read(args)
    chosen = _selected(args, records)
    if args.audit_command == "show":
        return _show(chosen[-args.limit :] if args.limit else chosen, args.json, out)
    return _verify(args, records, chosen, out)


def _show(records: list[CalibrationRecord], as_json: bool, out) -> int:
    from streams.cli.report import aligned

    if as_json:
        for r in records:
            out.write(json.dumps(r.to_wire(), allow_nan=False) + "\n")
        return 0
    if not records:
        out.write("no records match\n")
        return 0
    header = ["key", "seq", "calibrated (UTC)", "model", "status", "validation", "rmse bp",
              "parameters", "record"]  # fmt: skip
    rows = [
        [
            r.key,
            str(r.seq),
            r.calibration_date[:23],
            r.model_type,
            "converged" if r.converged else r.status,
            r.validation_status,
            "-" if r.diagnostics.get("rmse") is None else f"{1e4 * r.diagnostics['rmse']:.2f}",
            " ".join(f"{k}={v:.4g}" for k, v in r.parameters.items() if v is not None),
            r.record_hash[:12],
        ]
        for r in records
    ]
    out.write(aligned(header, rows, {1, 6}) + "\n")
    return 0


def _verify(args, records, chosen, out) -> int:
    from audit import verify_chains
    from streams.book.calibrations import Calibrations
    from streams.worker.audit import rerun_all

    keys = {r.key for r in chosen}
    chains = [r for r in records if r.key in keys]  # a key's chain is checked from its start
    problems = verify_chains(chains)
    out.write(f"{len(chains):,} records of {len(keys):,} smiles and surfaces: ")
    if problems:
        out.write(f"{len(problems)} chain(s) broken\n")
        for p in problems:
            out.write(f"  FAILED {p.key} seq {p.seq} (record {p.position + 1} read): {p.reason}\n")
        return 1
    out.write("every chain intact\n")
    if args.no_rerun or not chosen:
        return 0
    cache: dict = {}

    def refit(snap, start, beta):
        betas = {snap.underlying: beta} if beta is not None else {}
        key = tuple(sorted(betas.items()))
        calibrations = cache.get(key) or cache.setdefault(key, Calibrations(betas=betas))
        return calibrations.refit(snap, start)

    out.write(f"running {len(chosen):,} calibrations again from their archived inputs...\n")
    out.flush()
    differ = rerun_all(chosen, refit, args.tolerance)
    if differ:
        for record, why in differ[:20]:
            out.write(f"  FAILED {record.key} seq {record.seq}: {why}\n")
        out.write(f"{len(differ)} of {len(chosen):,} calibrations do not reproduce\n")
        return 1
    out.write(f"all {len(chosen):,} reproduce their archived parameters\n")
    return 0
