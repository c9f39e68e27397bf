"""``volstream report``: the daily calibration report (:mod:`playbooks.daily`) from what the
stream published: the params, alerts and watermarks topics, read back."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from streams.cli.connect import kafka_flags, settings_of

__all__ = ["add_parser"]

EPILOG = """examples:
  volstream report --out report/                 the latest day the stream published
  volstream report --date 2026-12-07 --out dec07/
exit status: 0 written, 1 nothing published that day, 2 bad arguments or no broker"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="the daily calibration report, from the topics (PNG plots and index.html)",
        description="What the stream published in one UTC day (by wall clock of publication): "
        "calibrations and the success rate against the playbook's 99.9%, the RMSE "
        "distribution, the largest parameter moves, latency and freshness percentiles, "
        "failed gates, alerts and pending approvals. Prints the summary; writes PNG plots "
        "and index.html into --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--date", type=dt.date.fromisoformat,
                   help="the UTC day, YYYY-MM-DD (default: the latest day with calibrations)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="folder for the plots and index.html")
    kafka_flags(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from playbooks.daily import daily_report, day_of, write_daily
    from schemas import Alert, Params, Watermark
    from streams.book.state import read_all

    settings = settings_of(args)

    async def read(kind: str, message: type) -> list:
        return [m for _, m in await read_all(settings.client(), settings.topics[kind], message)]

    async def every():
        return await asyncio.gather(read("params", Params), read("alerts", Alert),
                                    read("watermarks", Watermark))  # fmt: skip

    params, alerts, marks = asyncio.run(every())
    day = args.date or (max(day_of(p.published_at) for p in params) if params else None)
    mine = [p for p in params if day_of(p.published_at) == day]
    if not mine:
        print(f"no calibrations published on {day or 'any day'} (UTC) on "
              f"{settings.topics['params']}", file=sys.stderr)  # fmt: skip
        return 1
    report = daily_report(
        day,
        mine,
        [a for a in alerts if day_of(a.ts) == day],
        [w for w in marks if day_of(w.ts) == day],
    )
    print(report.title)
    for line in report.lines:
        print(f"  {line}")
    print(f"report: {write_daily(report, args.out)}")
    return 0
