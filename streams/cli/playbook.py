"""``volstream playbook``: run a calibration playbook on the sample files or the stream's
surfaces, with an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playbooks.names import JOB_NAMES, OUT_OF_SAMPLE
from streams.cli.connect import kafka_flags, settings_of


def add_parser(sub) -> None:
    play = sub.add_parser(
        "playbook",
        help="run a calibration playbook on surface files, with an HTML report",
        description="Run one of the calibration playbooks on the sample surfaces in data/ "
        "(fx_daily_smiles.csv, equity_surfaces.csv, rates.csv): daily-sabr (a pair's smile, "
        "ATM-weighted, every gate), weekly-heston (multi-start, identifiability, 5-fold "
        "cross-validation), joint (indices sharing rho, and whether the data support it), "
        "term-structure (theta on the seed's time segments that the quotes reach, smoothness and "
        "calendar-arbitrage gates, out of sample on a prior date), "
        "model-selection (SABR, Heston, time-dependent Heston and Heston SLV by AIC/BIC, "
        "cross-validation and a prior date out of sample, with the recommendation). --stream "
        "runs it on the stream's current surfaces instead. Prints the findings; --out writes "
        "PNG plots and index.html. Exits 1 when the fit is flagged by a gate.",
        epilog="examples:\n"
        "  volstream playbook daily-sabr --asset USDJPY --date 2026-11-24\n"
        "  volstream playbook joint --asset SPX --asset SX5E --asset NKY --out joint/\n"
        "  volstream playbook model-selection --asset SPX --prior 2026-11-20 --out sel/\n"
        "  volstream playbook weekly-heston --stream --asset SPX   # the live book's SPX",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    play.add_argument("name", choices=JOB_NAMES, help="the playbook")
    play.add_argument("--date", help="trade date, ISO (default 2026-11-27, the sample's)")
    play.add_argument(
        "--asset", action="append", help="pair or index (repeat for joint; default per playbook)"
    )
    play.add_argument(
        "--prior",
        action="append",
        help="out-of-sample dates of model-selection and term-structure (default 2026-11-20)",
    )
    play.add_argument(
        "--stream",
        action="store_true",
        help="the stream's current surfaces instead of files: the quotes topic read back "
        "into a book (its last 5 minutes: the book's quote age)",
    )
    kafka_flags(play, "with --stream: ")
    play.add_argument("--out", type=Path, help="folder for the PNG plots and index.html")
    play.add_argument("--json", action="store_true", help="findings and tables as JSON")
    play.set_defaults(func=cmd_playbook)


def cmd_playbook(args) -> int:
    import json

    from playbooks.data import SampleFiles
    from playbooks.jobs import DATE, PRIOR, run_job
    from playbooks.report import write_report
    from streams.settings import Settings

    Settings.from_env().use_compile_cache()  # a run after the first loads its programs
    if args.prior and args.name not in OUT_OF_SAMPLE:
        raise ValueError(
            "--prior is for model-selection and term-structure (their out-of-sample dates)"
        )
    if args.stream:
        if args.date or args.prior:
            raise ValueError("--stream reads today's book: --date and --prior are for files")
        import asyncio

        from streams.worker.readback import stream_source

        source = asyncio.run(stream_source(settings_of(args)))
    else:
        source = SampleFiles(args.date or DATE, args.prior or PRIOR)
    try:
        report = run_job(args.name, tuple(args.asset or ()), source)
    except LookupError as exc:  # no such asset or date in the sample files: said, not guessed
        raise ValueError(str(exc).strip("'\"")) from None
    if args.json:
        print(json.dumps({"name": report.name, "good": report.good, "lines": report.lines,
                          "tables": report.tables}, default=float, indent=1))  # fmt: skip
    else:
        print(report.title)
        for line in report.lines:
            print(f"  {line}")
    if args.out:
        page = write_report(report, args.out)
        print(f"report: {page}", file=sys.stderr if args.json else sys.stdout)
    return 0 if report.good else 1
