"""``volstream replay``: send a tick file's quotes to the quotes topic, keeping event times."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.cli.connect import add_batch_flag, kafka_flags, settings_of
from streams.cli.smile_file import SmileFileError
from streams.feed import replay
from streams.feed.tickfile import TickFileError


def add_parser(sub) -> None:
    rep = sub.add_parser(
        "replay",
        help="replay a tick file into volstream.quotes, keeping event timestamps",
        description=_REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("file", type=Path, help="ticks: .csv, .jsonl, .parquet (or .msgpack quotes)")
    rep.add_argument(
        "--map",
        type=_column_map,
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read quote field FIELD from the file's COLUMN (repeatable), e.g. --map ts=time "
        "--map mid_vol=iv",
    )
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="multiple of real time (default 1)")
    pace.add_argument("--max", action="store_true", help="as fast as possible")
    kafka_flags(rep)
    rep.add_argument("--quiet", action="store_true", help="no progress line")
    add_batch_flag(rep)
    rep.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    import asyncio

    if not args.file.is_file():
        raise SmileFileError(f"{args.file}: no such file")
    speed = None if args.max else args.speed
    settings = settings_of(args)
    try:
        summary = asyncio.run(
            replay.replay(
                args.file,
                settings,
                speed=speed,
                progress=not args.quiet,
                batch=args.batch,
                rename=dict(args.map),
            )
        )
    except TickFileError as exc:
        print(f"volstream replay: {exc}", file=sys.stderr)
        return 2
    for problem in summary.problems[:_SHOWN]:
        print(f"row {problem.row}: {problem.field or 'quote'}: {problem.reason}: {problem.detail}")
    if len(summary.problems) > _SHOWN:
        print(f"... and {len(summary.problems) - _SHOWN:,} more refused rows")
    if summary.ignored:
        print(f"ignored columns (not quote fields; use one with --map): {summary.ignored}")
    rejected = sum(summary.rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common()) or "none"
    failed = f"; {summary.failed:,} FAILED to send" if summary.failed else ""
    print(
        f"sent {summary.sent:,} ticks in {summary.seconds:.1f} s; rejected {rejected:,} ({reasons}){failed}"
    )
    if summary.sent == 0:
        print("volstream replay: no valid tick was sent", file=sys.stderr)
        return 2
    return 1 if summary.failed else 0


_SHOWN = 10  # refused rows listed one by one; the rest are counted
_REPLAY_HELP = """Send a tick file's quotes to the quotes topic, keyed by underlying, keeping
their event times (paced by them at --speed times real time, or --max as fast as the broker
takes them).

Files: .csv, .jsonl or .parquet with one quote per row; columns named as the quote's fields,
in any order: ts (epoch seconds or ISO-8601, e.g. 2026-12-02T10:00:00Z; no offset means UTC),
underlying, asset_class (fx or equity), expiry (YYYY-MM-DD), strike, source; fx: forward and
mid_vol or bid_vol and ask_vol; equity: spot, rate, dividend and a vol or a price
(mid_price or bid_price and ask_price) with call (true or false); optional: seq (file order
when absent), size, open_interest. Without a source column, source is the file's name;
without an asset_class column, a row with a forward and a vol is fx and one with a spot and a
vol or price is equity (a row that fits both or neither is refused). Other names are mapped
with --map, e.g.
  volstream replay --map ts=time --map strike=K --map mid_vol=iv ticks.csv
A .msgpack file is a stream of encoded quotes.

Every row is checked as the worker checks a quote; refused rows are listed with their row
number (1 is the first data row), field and reason, and are not sent. Exit status: 0 when
every valid tick was delivered, 1 when some failed to send, 2 when the file cannot be read or
holds no valid tick."""


def _column_map(text: str) -> tuple[str, str]:
    field, sep, column = text.partition("=")
    if not sep or not field or not column:
        raise argparse.ArgumentTypeError(f"expected field=column, got {text!r}")
    return field.strip(), column.strip()
