"""``volstream audit show|verify``: the calibration records of the audit topic, listed, and
checked: every key's hash chain, and each selected calibration run again from its archived
inputs (bit for bit where the same code on the same platform wrote it)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import textwrap

from schemas import CalibrationRecord, Decision
from streams.cli.connect import kafka_flags, settings_of

__all__ = ["add_parser"]

EPILOG = """examples:
  volstream audit show --key 'EURUSD|2027-03-19' --limit 20
  volstream audit show --since 2026-12-07T09:00 --json
  volstream audit show --pending              records waiting for an approver
  volstream audit verify                      every chain; every record run again
  volstream audit verify --key 'SPX|surface' --since 2026-12-01 --until 2026-12-07
  volstream audit verify --no-rerun           chains and decisions only (fast)
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


def add_parser(sub) -> None:
    """The ``audit`` verb and its ``show`` and ``verify`` commands."""
    p = sub.add_parser(
        "audit",
        help="list and verify the calibration records (the audit trail)",
        description="Every calibration the stream publishes leaves an immutable, hash-chained "
        "CalibrationRecord on PREFIX.audit (kept forever) with the inputs that run it again. "
        "`show` lists records with their approval; `verify` checks every key's chain (a "
        "removed, reordered or altered record, or a changed input, is named) and every "
        "approver's decision (signature, registered key, not the operator), and runs the "
        "selected calibrations again, comparing parameters bit for bit (within --tolerance where another engine "
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
        kafka_flags(c)
        if name == "show":
            c.add_argument("--limit", type=int, help="the latest this many records")
            c.add_argument("--json", action="store_true", help="one JSON object per record")
            c.add_argument("--pending", action="store_true",
                           help="only records waiting for an approver's decision")  # fmt: skip
        else:
            c.add_argument("--no-rerun", action="store_true",
                           help="check the chains and decisions only")  # fmt: skip
            c.add_argument("--tolerance", type=float, default=1e-6,
                           help="relative, for records of another engine version or platform "
                           "(default 1e-6); the same code and platform must match bit for bit")  # fmt: skip
    p.set_defaults(func=cmd_audit)


def _read(settings) -> tuple[list[CalibrationRecord], list[Decision]]:
    """Every record of the audit topic and every decision on them, in the order written."""
    from streams.book.state import read_all

    async def both():
        records = await read_all(settings.client(), settings.topics["audit"], CalibrationRecord)
        decisions = await read_all(settings.client(), settings.topics["decisions"], Decision)
        return [r for _, r in records], [d for _, d in decisions]

    return asyncio.run(both())


def _approvals(records, decisions) -> dict[tuple[str, int], str]:
    """(key, seq) -> what became of each pending record: pending, superseded, or the last
    decision on it (``approved by bob``). A decision's standing is ``verify``'s to judge."""
    last = {}
    for r in records:
        last[r.key] = max(last.get(r.key, -1), r.seq)
    out = {(r.key, r.seq): "pending" if r.seq == last[r.key] else "superseded"
           for r in records if r.validation_status == "pending"}  # fmt: skip
    for d in decisions:
        if (d.record_key, d.record_seq) in out:
            out[(d.record_key, d.record_seq)] = f"{d.decision} by {d.approver}"
    return out


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
    settings = settings_of(args)
    records, decisions = _read(settings)
    chosen = _selected(args, records)
    approvals = _approvals(records, decisions)
    if args.audit_command == "show":
        if args.pending:
            chosen = [r for r in chosen if approvals.get((r.key, r.seq)) == "pending"]
        return _show(chosen[-args.limit :] if args.limit else chosen, approvals, args.json, out)
    return _verify(args, settings, records, decisions, chosen, out)


def _show(records: list[CalibrationRecord], approvals, as_json: bool, out) -> int:
    from streams.cli.report import aligned

    if as_json:
        for r in records:
            out.write(json.dumps(r.to_wire(), allow_nan=False) + "\n")
        return 0
    if not records:
        out.write("no records match\n")
        return 0
    header = ["key", "seq", "calibrated (UTC)", "model", "status", "validation", "rmse bp",
              "parameters", "record", "approval"]  # fmt: skip
    rows = [
        [
            r.key,
            str(r.seq),
            r.calibration_date[:23],
            r.model_type,
            "converged" if r.converged else textwrap.shorten(r.status, 32, placeholder="..."),
            r.validation_status,
            "-" if r.diagnostics.get("rmse") is None else f"{1e4 * r.diagnostics['rmse']:.2f}",
            " ".join(f"{k}={v:.4g}" for k, v in r.parameters.items() if v is not None),
            r.record_hash[:12],
            approvals.get((r.key, r.seq), "-"),
        ]
        for r in records
    ]
    out.write(aligned(header, rows, {1, 6}) + "\n")
    return 0


def _verify(args, settings, records, decisions, chosen, out) -> int:
    from audit import check_decision, verify_chains
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
    by_id = {(r.key, r.seq): r for r in records}
    refused = [
        (d, why)
        for d in decisions
        if d.record_key in keys
        for why in [check_decision(d, by_id.get((d.record_key, d.record_seq)), settings.approvers)]
        if why
    ]
    if decisions or refused:
        mine = sum(d.record_key in keys for d in decisions)
        out.write(f"{mine:,} approvers' decisions: ")
        if refused:
            out.write(f"{len(refused)} do not stand\n")
            for d, why in refused:
                out.write(f"  FAILED {d.decision} of {d.record_key}@{d.record_seq} by "
                          f"{d.approver}: {why}\n")  # fmt: skip
            return 1
        out.write("every one signed by a registered approver other than the operator\n")
    if args.no_rerun or not chosen:
        return 0
    out.write(f"running {len(chosen):,} calibrations again from their archived inputs...\n")
    out.flush()
    differ = rerun_all(chosen, args.tolerance)
    if differ:
        for record, why in differ[:20]:
            out.write(f"  FAILED {record.key} seq {record.seq}: {why}\n")
        out.write(f"{len(differ)} of {len(chosen):,} calibrations do not reproduce\n")
        return 1
    out.write(f"all {len(chosen):,} reproduce their archived parameters\n")
    return 0
