"""The ``volstream`` command line.

Verbs: ``calibrate`` fits smiles from a file and reports parameters, fit and validation gates;
``broker`` drives the local Kafka broker; ``worker``, ``replay``, ``simulate`` and ``tail`` run
and feed and read the stream; ``demo`` runs all of it on the bundled sample. Input errors exit with status 2 and a message
naming the file, row and field; ``--fail-on-gates`` makes failed gates exit 1 (for scripts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

from streams.cli import smile_file
from streams.cli.connect import kafka_flags, settings_of
from streams.cli.smile_file import SmileFileError, load_smiles
from streams.feed import replay
from streams.feed.tickfile import TickFileError
from streams.local.broker import BrokerError
from streams.settings import JOB_NAMES

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


def _calibrate_smiles(smiles, args) -> tuple[list[dict], float]:
    from engine.sabr import SABRCalibrator
    from streams.cli.report import records

    beta = None if args.beta == "free" else float(args.beta)
    cal = SABRCalibrator(
        beta=beta, max_steps=args.max_steps, tol=args.tol, optimizer=args.optimizer
    )
    weights = "atm" if args.weights == "atm" else [np.asarray(s.weights) for s in smiles]
    start = time.perf_counter()
    result = cal.calibrate_batch(
        [s.forward for s in smiles],
        [s.time_to_expiry for s in smiles],
        [np.asarray(s.strikes) for s in smiles],
        [np.asarray(s.vols) for s in smiles],
        weights,
    )
    recs = records(smiles, result, "sabr")
    if args.runbook:
        for i in np.flatnonzero(~np.asarray(result.good)):
            recs[i] = _runbook(cal, smiles[i], result.smile(int(i)), args.weights)
    return recs, time.perf_counter() - start


def _runbook(cal, smile, fit, weights) -> dict:
    """A failed smile's fit after the failure runbook (engine.runbook): its record, with the
    step that fixed it (or ``None``: escalate) and every attempt."""
    from engine.runbook import run_failure_runbook
    from streams.cli.report import records

    data = {
        "forward": smile.forward,
        "maturities": smile.time_to_expiry,
        "strikes": np.asarray(smile.strikes),
        "target_vols": np.asarray(smile.vols),
        "weights": "atm" if weights == "atm" else np.asarray(smile.weights),
    }
    outcome = run_failure_runbook(cal, data, fit)
    (rec,) = records([smile], outcome.result.as_batch(), "sabr")
    attempts = [{"step": a.step, "detail": a.detail, "good": a.good} for a in outcome.attempts]
    return rec | {"runbook": {"step": outcome.step, "attempts": attempts}}


def _print_results(recs: list[dict], elapsed: float, args) -> int:
    from streams.cli.report import render_table

    if args.json:
        json.dump(recs, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(recs))
        ok = sum(r["converged"] for r in recs)
        failed = sum(any(g["verdict"] == "fail" for g in r["gates"].values()) for r in recs)
        for r in recs:
            if "runbook" in r:
                step = r["runbook"]["step"]
                said = f"fixed by {step}" if step else "not fixed: escalate to the quant team"
                print(f"runbook: {r['underlying']} {r['expiry']} {said}")
        print(
            f"\n{len(recs)} smiles, {ok} converged, {failed} failing a gate; "
            f"{elapsed * 1e3:.0f} ms including compilation"
        )
    if args.fail_on_gates and any(
        any(g["verdict"] == "fail" for g in r["gates"].values()) for r in recs
    ):
        return 1
    return 0


def cmd_calibrate(args) -> int:
    if args.model != "sabr":
        raise SmileFileError(f"model {args.model!r} is not available (sabr)")
    smiles = load_smiles(args.file, args.valuation_date)
    recs, elapsed = _calibrate_smiles(smiles, args)
    return _print_results(recs, elapsed, args)


def cmd_demo(args) -> int:
    from streams.local.demo import run_demo

    speed = None if args.max else args.speed
    return run_demo(args.bootstrap, speed=speed)


def cmd_tail(args) -> int:
    import asyncio

    from streams.feed.tail import tail
    from streams.settings import TOPIC_KINDS

    settings = settings_of(args)
    topic = settings.topics[args.topic] if args.topic in TOPIC_KINDS else args.topic
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a tail: not an error
        asyncio.run(
            tail(
                settings.client(),
                topic,
                from_beginning=args.from_beginning,
                limit=args.limit,
                as_json=args.json,
                idle=args.idle,
            )
        )
    return 0


def cmd_simulate(args) -> int:
    import asyncio

    from streams.feed.send import send_columns
    from streams.feed.simulate import TENOR_DAYS, TickSimulator

    settings = settings_of(args)
    settings.use_compile_cache()
    start = time.time()
    weekly = tuple(range(7, 7 * args.expiries + 1, 7))  # many smiles for load
    sim = TickSimulator(
        pairs=args.pairs,
        indices=args.indices,
        seed=args.seed,
        tenors=TENOR_DAYS if args.expiries == len(TENOR_DAYS) else weekly,
        index_tenors=TENOR_DAYS,
        forward_vol=args.forward_vol,
        spot_vol=args.spot_vol,
        vol_vol=args.vol_vol,
        jump_every=args.jump_every,
        jump_bp=tuple(args.jump_bp),
    )
    if args.max is not None:  # as fast as the broker takes them, event times at --rate
        chunks, due, total = sim.columns(start, args.rate, count=args.max, chunk=8192), None, None
    else:  # paced: each tick leaves at its event time, for --duration seconds
        chunks = _until(sim.columns(start, args.rate, chunk=256), start + args.duration)
        due, total = (lambda ts: ts - start), None
    summary = asyncio.run(
        send_columns(
            chunks, settings, due=due, batch=args.batch, progress=not args.quiet, total=total
        )
    )
    failed = f"; {summary.failed:,} FAILED to send" if summary.failed else ""
    rate = summary.sent / max(summary.seconds, 1e-9)
    print(
        f"sent {summary.sent:,} simulated ticks to {settings.topics['quotes']} in "
        f"{summary.seconds:.1f} s ({rate:,.0f} ticks/s){failed}"
    )
    return 1 if summary.failed else 0


def _until(chunks, end: float):
    """The rows of ``chunks`` with event times up to ``end``."""
    for chunk in chunks:
        keep = chunk.numbers["ts"] <= end
        if keep.all():
            yield chunk
            continue
        if keep.any():
            yield chunk.take(keep)
        return


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


def cmd_compile(args) -> int:
    from streams.settings import Settings
    from streams.worker.run import compile_programs

    print("compiling the worker's solver programs for this machine (once; minutes on 2 cores)")
    compile_programs(
        Settings.from_env(), say=lambda line: print(line, flush=True), force=args.force
    )
    return 0


def cmd_playbook(args) -> int:
    import json

    from playbooks.data import SampleFiles
    from playbooks.jobs import DATE, PRIOR, run_job
    from playbooks.report import write_report
    from streams.settings import Settings

    Settings.from_env().use_compile_cache()  # a run after the first loads its programs
    if args.prior and args.name not in ("model-selection", "term-structure"):
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


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beta", default="0.5", help="fixed SABR beta in [0, 1], or 'free' (default 0.5)"
    )
    p.add_argument(
        "--weights",
        choices=("file", "atm"),
        default="file",
        help="'file': the weight column (1 when absent); 'atm': exp(-ln(K/F)^2/0.05)",
    )
    p.add_argument(
        "--optimizer",
        choices=("lm", "optimistix", "lbfgs", "adam"),
        default="lm",
        help="solver (default lm; the runbook's fallbacks are lbfgs and adam)",
    )
    p.add_argument("--max-steps", type=int, default=500, help="solver step limit (default 500)")
    p.add_argument("--tol", type=float, default=1e-8, help="convergence tolerance (default 1e-8)")
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.add_argument("--fail-on-gates", action="store_true", help="exit 1 if any smile fails a gate")
    p.add_argument(
        "--runbook",
        action="store_true",
        help="walk the failure runbook on every smile that fails (other starts, more steps, "
        "L-BFGS/Adam, rho or nu held) and report the step that fixed it",
    )


_BATCH = {
    "type": int,
    "default": 1024,
    "help": "quotes per message and underlying, as typed columns (QuoteColumns; a paced quote "
    "waits at most 5 ms for company); 1 sends each quote alone, far slower for workers "
    "(default 1024)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volstream",
        description="Streaming calibrator of option volatility models (SABR for FX smiles, Heston for equity index surfaces).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cal = sub.add_parser(
        "calibrate",
        help="fit smiles from a CSV or JSON file and report parameters and gates",
        description=smile_file.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal.add_argument("file", type=Path, help="CSV or JSON file of quotes or market_data")
    cal.add_argument("--model", default="sabr", help="model to fit (sabr)")
    cal.add_argument(
        "--valuation-date", type=_date, help="ISO date for rows with expiry but no valuation_date"
    )
    _add_fit_options(cal)
    cal.set_defaults(func=cmd_calibrate)

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

    comp = sub.add_parser(
        "compile",
        help="compile the worker's programs into the compile cache (the install runs it)",
        description="Trace and compile every program a worker warms (SABR batches of each "
        "VOLSTREAM_WARM_BATCHES size, the Heston surfaces, the runbook's steps, the tolerance "
        "checks) into the compile cache ($VOLSTREAM_JAX_CACHE, default "
        "~/.volstream/jax-cache). Workers and the demo on this machine then load them in "
        "seconds instead of tracing and compiling for minutes. `make` runs it once when it "
        "creates .venv/; a program traced by other engine code or another JAX is not loaded, "
        "so it compiles again after an upgrade (a stamp in the cache says what it compiled for: "
        "a second run for the same engine, JAX and settings returns at once).",
    )
    comp.add_argument("--force", action="store_true",
                      help="compile even what the cache's stamp says is there")  # fmt: skip
    comp.set_defaults(func=cmd_compile)

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
    rep.add_argument("--batch", **_BATCH)
    rep.set_defaults(func=cmd_replay)

    demo = sub.add_parser(
        "demo",
        help="the main job: broker, worker, replayed sample stream and a live table",
        description="Runs the whole path: the local broker (unless KAFKA_BOOTSTRAP_SERVERS or "
        "--bootstrap), a worker, a replay of data/sample_ticks.csv, and a live table of the "
        "parameters it publishes; ends with a summary of what was measured.",
    )
    demo.add_argument("--bootstrap", help="Kafka bootstrap servers (default: local broker)")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=30.0, help="replay speed (default 30x)")
    pace.add_argument("--max", action="store_true", help="replay as fast as possible")
    demo.set_defaults(func=cmd_demo)

    from streams.cli.approve import add_approval_parsers
    from streams.cli.audit import add_audit_parser
    from streams.cli.daily import add_report_parser

    add_audit_parser(sub)
    add_approval_parsers(sub)
    add_report_parser(sub)

    tail_p = sub.add_parser("tail", help="print a topic's messages, decoded")
    tail_p.add_argument(
        "topic",
        help="quotes, params, alerts, dlq, state, jobs, watermarks (how current the params are), "
        "health, audit, or a full topic name",
    )
    tail_p.add_argument(
        "--from-beginning", action="store_true", help="start at the earliest offset"
    )
    tail_p.add_argument("--limit", type=int, help="stop after this many messages")
    tail_p.add_argument("--idle", type=float, help="stop after this many quiet seconds")
    tail_p.add_argument("--json", action="store_true", help="one JSON object per line")
    kafka_flags(tail_p)
    tail_p.set_defaults(func=cmd_tail)

    sim = sub.add_parser(
        "simulate",
        help="send synthetic ticks: FX smiles (SABR vols) and equity indices (Heston prices)",
        description="Send synthetic ticks: FX smiles quoting SABR vols and equity indices "
        "quoting Heston prices, every option first, then random re-quotes (the model plus "
        "noise inside the bid-ask) while forwards, spots and ATM vols random-walk in event "
        "time (--forward-vol, --spot-vol, --vol-vol: the tick rate changes how often a smile "
        "is quoted, not how fast it moves), with optional vol jumps (--jump-every, --jump-bp). "
        "Paced by event time (--rate, --duration), or as fast as the broker takes them (--max).",
        epilog="examples:\n"
        "  volstream simulate --rate 500 --duration 30       a live-looking stream\n"
        "  volstream simulate --max 1000000 --expiries 84 --indices 5 --rate 50000\n"
        "                                                    load: 504 smiles, 5 surfaces\n"
        "  volstream simulate --rate 500 --jump-every 30     a 20-60 bp vol jump every 30 s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument(
        "--rate", type=float, default=200.0, help="ticks per second of event time (default 200)"
    )
    sim.add_argument(
        "--duration", type=float, default=60.0, help="seconds to send, paced (default 60)"
    )
    sim.add_argument(
        "--max",
        type=int,
        metavar="N",
        help="send N ticks (after the opening quotes) as fast as the broker takes them, "
        "unpaced: a load generator (event times still --rate apart)",
    )
    sim.add_argument("--pairs", type=int, default=3, help="currency pairs, 0-6 (default 3)")
    sim.add_argument(
        "--expiries",
        type=int,
        default=4,
        help="expiries per pair: 4 (1m, 3m, 6m, 1y; the default) or that many weekly ones",
    )
    sim.add_argument(
        "--indices",
        type=int,
        default=1,
        help="equity indices, 0-5: SPX, SX5E, NDX, NKY, UKX (default 1)",
    )
    sim.add_argument(
        "--forward-vol",
        type=float,
        default=0.08,
        metavar="VOL",
        help="annualised lognormal vol of the FX forwards, per year of event time "
        "(default 0.08: 8%%/yr)",
    )
    sim.add_argument(
        "--spot-vol",
        type=float,
        default=0.20,
        metavar="VOL",
        help="annualised lognormal vol of the index spots (default 0.20: 20%%/yr)",
    )
    sim.add_argument(
        "--vol-vol",
        type=float,
        default=0.9,
        metavar="VOL",
        help="annualised lognormal vol of the ATM vol levels, SABR alpha and Heston "
        "sqrt(v0) (default 0.9: 90%%/yr)",
    )
    sim.add_argument(
        "--jump-every",
        type=float,
        metavar="SECONDS",
        help="a vol jump every SECONDS of event time: one random pair or index has every "
        "expiry's ATM vol moved at once (default: no jumps)",
    )
    sim.add_argument(
        "--jump-bp",
        type=float,
        nargs=2,
        default=(20.0, 60.0),
        metavar=("LOW", "HIGH"),
        help="jump sizes, uniform in LOW..HIGH vol basis points (1 bp = 0.0001 vol, i.e. "
        "0.01 vol point), random sign (default 20 60)",
    )
    sim.add_argument("--seed", type=int, default=5)
    kafka_flags(sim)
    sim.add_argument("--batch", **_BATCH)
    sim.add_argument("--quiet", action="store_true", help="no progress line")
    sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "beta") and args.beta != "free":
        try:
            beta = float(args.beta)
        except ValueError:
            beta = -1.0
        if not 0.0 <= beta <= 1.0:
            print(
                f"volstream: --beta must be a number in [0, 1] or 'free', not {args.beta!r}",
                file=sys.stderr,
            )
            return 2
    try:
        return args.func(args)
    except (SmileFileError, ValueError, BrokerError) as exc:
        print(f"volstream {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
