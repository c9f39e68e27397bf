"""The ``volstream`` command line: one module of :mod:`streams.cli` per verb, each adding its
parser (``add_parser``) with the function that runs it.

Input errors exit with status 2 and a message naming the file, row and field; commands that
judge (``calibrate --fail-on-gates``, ``playbook``, ``audit verify``) exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import sys

from streams.cli import (
    approve,
    audit,
    broker,
    calibrate,
    compile,
    daily,
    demo,
    playbook,
    replay,
    simulate,
    tail,
    worker,
)
from streams.cli.smile_file import SmileFileError
from streams.local.broker import BrokerError

EPILOG = """examples:
  volstream calibrate data/fx_smiles.csv                 table of SABR fits, beta 0.5
  volstream calibrate --beta 0.7 --weights atm FILE      playbook ATM weighting, beta 0.7
  volstream calibrate --json FILE > fits.json            machine-readable, one record per smile
  volstream broker start                                 local Kafka on 127.0.0.1:9092
  volstream demo                                         the main job: stream, calibrate, publish
  volstream tail params                                  follow published parameters
  volstream playbook term-structure --out report/        a playbook on the sample data, as HTML

file formats (calibrate --help shows the columns): CSV or JSON quotes, or JSON market_data.
"""

# the verbs, in the order --help lists them
VERBS = (calibrate, broker, worker, playbook, compile, replay, demo, audit, approve, daily, tail,
         simulate)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volstream",
        description="Streaming calibrator of option volatility models (SABR for FX smiles, "
        "Heston for equity index surfaces).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SmileFileError, ValueError, BrokerError) as exc:
        print(f"volstream {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
