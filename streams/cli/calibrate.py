"""``volstream calibrate``: fit SABR smiles from a CSV or JSON file and report parameters, fit
and validation gates (a table, or JSON records); ``--runbook`` walks the failure runbook."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

from streams.cli import smile_file
from streams.cli.smile_file import SmileFileError, load_smiles


def add_parser(sub) -> None:
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


def _calibrate_smiles(smiles, args) -> tuple[list[dict], float]:
    from engine.sabr import SABRCalibrator, batch_arguments
    from streams.cli.report import records

    beta = None if args.beta == "free" else float(args.beta)
    cal = SABRCalibrator(
        beta=beta, max_steps=args.max_steps, tol=args.tol, optimizer=args.optimizer
    )
    if args.weights == "atm":
        smiles = [s._replace(smile=dataclasses.replace(s.smile, weights="atm")) for s in smiles]
    start = time.perf_counter()
    result = cal.calibrate_batch(*batch_arguments([s.smile for s in smiles]))
    recs = records(smiles, result, "sabr")
    if args.runbook:
        for i in np.flatnonzero(~np.asarray(result.good)):
            recs[i] = _runbook(cal, smiles[i], result.smile(int(i)))
    return recs, time.perf_counter() - start


def _runbook(cal, smile, fit) -> dict:
    """A failed smile's fit after the failure runbook (engine.runbook): its record, with the
    step that fixed it (or ``None``: escalate) and every attempt."""
    from engine.runbook import run_failure_runbook
    from streams.cli.report import records

    outcome = run_failure_runbook(cal, smile.smile, fit)
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


def _beta(text: str) -> str:
    """A fixed beta in [0, 1] or ``free``, as given."""
    try:
        ok = text == "free" or 0.0 <= float(text) <= 1.0
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"a number in [0, 1] or 'free', not {text!r}")
    return text


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beta",
        type=_beta,
        default="0.5",
        help="fixed SABR beta in [0, 1], or 'free' (default 0.5)",
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
