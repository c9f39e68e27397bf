"""Batched calibration of the snapshots an epoch closed, and the warm-start state of each.

FX smiles are fitted with SABR (beta fixed per underlying); equity index surfaces with Heston,
every expiry at once, multi-start when cold and from their last good parameters when warm, in
implied-vol space: a price quote is first turned into its implied vol against the spot it was
quoted with, so quotes struck at different moments of a moving market fit together.

Each smile starts warm from its last *good* parameters (converged, no failed gate) and cold
otherwise; the stability gate compares with its last *converged* parameters, so a genuine jump
fails the gate once and is then the new reference. Results that did not converge or failed a
gate are returned flagged, and never become a warm start.

The book yields at most one snapshot per smile and epoch, so a batch of snapshots calibrates in
*rounds*: round ``r`` holds each smile's ``r``-th snapshot, and needs only the rounds before it
(a backlog's many epochs cost a few large batches, not one small one per epoch). Smiles are
grouped by their own strike-count bucket, and a smile's numbers never depend on which others
share its batch (surfaces are fitted one by one): a replay reproduces every parameter exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from engine.blackscholes import implied_vols_of_prices
from engine.buckets import bucket
from engine.heston import PARAM_NAMES as HESTON_PARAMS
from engine.heston import HestonCalibrator
from engine.market import Smile, Surface
from engine.result import CalibrationResult
from engine.runbook import RunbookOutcome, run_failure_runbook, with_held
from engine.sabr import SABRCalibrator
from schemas import Params, WarmState
from streams.book.results import plain
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot

__all__ = ["Calibrations", "rounds", "snapshot_surface"]

FREE = ("alpha", "rho", "nu")
Values = dict[str, float] | None


def rounds(snapshots: Sequence[Snapshot]) -> list[list[int]]:
    """Indices of ``snapshots`` in rounds: round ``r`` holds each smile's ``r``-th snapshot
    in this sequence, so a round only needs the rounds before it."""
    out: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, snap in enumerate(snapshots):
        r = seen[snap.key] = seen.get(snap.key, -1) + 1
        if r == len(out):
            out.append([])
        out[r].append(i)
    return out


class Calibrations:
    """Calibrate batches of smile and surface snapshots and keep the warm-start state of each
    (keyed like :attr:`schemas.Params.key`)."""

    def __init__(
        self,
        calibrator: SABRCalibrator | None = None,
        betas: Mapping[str, float] | None = None,
        default_beta: float = 0.5,
        clock: Callable[[], float] = time.time,
        heston: HestonCalibrator | None = None,
    ) -> None:
        # one code path for every batch size (a smile's bits never depend on its batch), and
        # four batch shapes per strike bucket to compile before taking traffic
        self.calibrator = calibrator or SABRCalibrator(
            beta=default_beta, min_batch=8, batch_growth=4, max_batch=512
        )
        # a surface grows expiry by expiry as its opening quotes arrive: pack in steps of 4
        self.heston = heston or HestonCalibrator(expiry_step=4)
        self.betas = dict(betas or {})
        self.default_beta = default_beta
        self.clock = clock
        self.state: dict[str, WarmState] = {}
        self.starts: list[WarmState] = []  # the last run's: each fit's state before it

    def beta(self, underlying: str) -> float:
        return self.betas.get(underlying, self.default_beta)

    def warmup(self, batch_sizes=(8, 32, 128, 512), widths=(8, 16)) -> None:
        """Compile the bucketed SABR programs before the worker takes traffic."""
        self.calibrator.warmup(batch_sizes, widths)

    def warmup_heston(self, shapes: Sequence[tuple[int, int]] = ((4, 12),)) -> None:
        """Compile the Heston programs (cold, warm and the fine-node polish) of surfaces of
        ``shapes`` (expiries, strikes per expiry), and the price inversion, before the worker
        takes traffic."""
        for shape in shapes:
            self.heston.warmup(shape)
        implied_vols_of_prices(0.1, 1.0, 0.0, 0.0, 1.0, 1.0, True)

    def warmup_runbook(self, widths=(8, 16), shapes: Sequence[tuple[int, int]] = ((4, 11),)):
        """Trace every step of the runbook for a smile of each strike width and a surface of
        each shape (expiries, strikes), on quotes no step can fit (a zigzag), so that a fit
        failing in the stream walks programs already traced: a surface's first runbook
        otherwise traced ten programs, 26 s of a 2-core machine's CPU, later ones 1 s."""
        for n in widths:
            strikes = np.exp(np.linspace(-0.2, 0.2, n))
            vols = 0.1 + 0.03 * (-1.0) ** np.arange(n)
            self.runbook(SmileSnapshot("WARM", "fx", "2099-01-01", 1.0, 0.5, tuple(strikes),
                                       tuple(vols), 0.0, 0.0, 0, 0.0))  # fmt: skip
        for m, k in shapes:
            t = np.repeat(0.25 * np.arange(1, m + 1), k)
            strikes = 100.0 * np.exp(np.tile(np.linspace(-0.3, 0.3, k), m) * np.sqrt(t))
            vols = 0.2 + 0.05 * (-1.0) ** np.arange(m * k)
            nan, n = (math.nan,) * (m * k), m * k
            expiries = tuple(f"2099-0{1 + i // k}-01" for i in range(n))
            self.runbook(SurfaceSnapshot("WARM", 100.0, expiries, tuple(t), tuple(strikes),
                                         (0.0,) * n, (0.0,) * n, tuple(vols), nan, (None,) * n,
                                         (100.0,) * n, nan, 0.0, 0.0, 0, 0.0))  # fmt: skip

    @staticmethod
    def _group(snap: Snapshot) -> tuple:
        """Smiles of one strike bucket calibrate in one batch; surfaces one by one."""
        if isinstance(snap, SmileSnapshot):
            return ("sabr", bucket(len(snap.strikes), 8))
        return ("heston",)

    def run(self, snapshots: Sequence[Snapshot]) -> list[Params]:
        """Calibrate ``snapshots`` (in arrival order, any number per smile or surface); results
        in the same order. One batch per round and program (see ``_group``). ``starts`` then
        holds the state each fit started from (what an audit record archives)."""
        out: list[Params | None] = [None] * len(snapshots)
        self.starts = [WarmState()] * len(snapshots)
        for rows in rounds(snapshots):
            for i in rows:
                self.starts[i] = self._state(snapshots[i].key)
            groups: dict[tuple, list[int]] = {}
            for i in rows:
                groups.setdefault(self._group(snapshots[i]), []).append(i)
            for (model, *_), group in groups.items():
                fit = self._calibrate if model == "sabr" else self._calibrate_surfaces
                for i, params in zip(group, fit([snapshots[i] for i in group])):
                    out[i] = params
            for i in rows:  # in arrival order, whichever bucket each snapshot went to
                self._remember(out[i], snapshots[i].epoch)  # type: ignore[arg-type]
        return out  # type: ignore[return-value]

    def _remember(self, message: Params, epoch: int) -> None:
        """Converged parameters become the stability reference, good ones the warm start (the
        audit chain's head goes on as it was: the audit trail moves it)."""
        state = self._state(message.key)
        warm, prior = state.warm, state.prior
        if message.converged:  # converged parameters are finite: no None among them
            prior = dict(message.params)
            warm = prior if message.good else warm
        self.state[message.key] = dataclasses.replace(state, epoch=epoch, warm=warm, prior=prior)

    def refit(self, snap: Snapshot, start: WarmState) -> Params:
        """``snap`` calibrated again from ``start`` as :meth:`run` did (what ``volstream audit
        verify`` compares with the archived parameters); this calibrator's state is untouched."""
        again = Calibrations(self.calibrator, self.betas, self.default_beta, self.clock,
                             self.heston)  # fmt: skip
        again.state[snap.key] = start
        (params,) = again.run([snap])
        return params

    def _state(self, key: str) -> WarmState:
        return self.state.get(key) or WarmState()

    def _calibrate(self, snaps: list[SmileSnapshot]) -> list[Params]:
        states = [self._state(s.key) for s in snaps]
        result = self.calibrator.calibrate_batch(
            np.array([s.forward for s in snaps]),
            np.array([s.time_to_expiry for s in snaps]),
            [np.array(s.strikes) for s in snaps],
            [np.array(s.vols) for s in snaps],
            init=_column([st.warm for st in states], FREE),
            prior=_column([st.prior for st in states], FREE),
            beta=np.array([self.beta(s.underlying) for s in snaps]),
        )
        return _messages(snaps, result, "sabr", self.clock())

    def _calibrate_surfaces(self, snaps: list[SurfaceSnapshot]) -> list[Params]:
        """One program call per surface: XLA's batched reductions are not bit-identical across
        batch sizes, and a replay must be (a desk has a few indices, not hundreds)."""
        out = []
        for snap in snaps:
            warm = self._state(snap.key).warm
            result = self.heston.calibrate_batch(
                [snapshot_surface(snap)], init=_column([warm], HESTON_PARAMS) if warm else None
            )
            out += _messages([snap], result, "heston", self.clock())
        return out

    def runbook(self, snap: Snapshot) -> tuple[Params, RunbookOutcome]:
        """Walk the failure runbook (:mod:`engine.runbook`) on a snapshot whose fit failed:
        the fit it ends with as :class:`Params` (diagnostics ``runbook_step``: the step's
        index in ``RUNBOOK_STEPS``, -1 when it escalated) and the outcome. Warm state is left
        alone, so a replay's parameters never depend on when a runbook finished."""
        if isinstance(snap, SmileSnapshot):
            calibrator = with_held(self.calibrator, "beta", self.beta(snap.underlying))
            data = Smile.of(snap.forward, snap.time_to_expiry, snap.strikes, snap.vols)
            model = "sabr"
        else:
            calibrator, data, model = self.heston, snapshot_surface(snap), "heston"
        outcome = run_failure_runbook(calibrator, data)
        (message,) = _messages([snap], outcome.result.as_batch(), model, self.clock())
        step = {"runbook_step": float(outcome.step_index)}
        return dataclasses.replace(message, diagnostics=message.diagnostics | step), outcome

    def import_state(self, states: Mapping[str, WarmState]) -> None:
        """Take warm-start state read back from the state topic (see :mod:`streams.book.state`)."""
        self.state.update(states)


def _column(values: Sequence[Values], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Parameter columns of a batch, NaN where a row has none (a cold start)."""
    return {n: np.array([v[n] if v else np.nan for v in values]) for n in names}


def snapshot_surface(snap: SurfaceSnapshot) -> Surface:
    """A surface snapshot as the market data of a vol fit (:class:`engine.market.Surface`):
    each price quote as the vol it implies against the spot it was quoted with; a price whose
    implied vol does not exist weighs zero."""
    t, k = np.array(snap.times), np.array(snap.strikes)
    r, q = np.array(snap.rates), np.array(snap.dividends)
    vols = np.array(snap.vols)
    priced = np.flatnonzero(~np.isfinite(vols))
    if priced.size:
        calls = np.array([bool(c) for c in snap.calls])
        vols[priced] = implied_vols_of_prices(
            *(np.array(a)[priced] for a in (snap.prices, snap.quote_spots)),
            r[priced], q[priced], t[priced], k[priced], calls[priced],
        )  # fmt: skip
    usable = np.isfinite(vols)
    return Surface.quoted(
        snap.spot, k, t, vols=np.where(usable, vols, 0.2), rates=r, dividends=q,
        weights=usable.astype(np.float64), open_interest=np.array(snap.open_interest),
    )  # fmt: skip


def _messages(
    snaps: Sequence[Snapshot], result: CalibrationResult, model: str, done: float
) -> list[Params]:
    """One :class:`Params` per snapshot of a batch ``result``; a surface's is stamped with its
    last expiry (forward and time) and lists its expiries."""
    out = []
    for snap, values in zip(snaps, plain(result)):
        if isinstance(snap, SmileSnapshot):
            where = {"expiry": snap.expiry, "forward": snap.forward, "t": snap.time_to_expiry}
        else:
            last = int(np.argmax(snap.times))
            t, growth = snap.times[last], snap.rates[last] - snap.dividends[last]
            where = {
                "expiry": snap.expiries[last],
                "forward": snap.spot * math.exp(growth * t),
                "t": t,
                "spot": snap.spot,
                "expiries": tuple(sorted(set(snap.expiries))),
            }
        out.append(
            Params(
                underlying=snap.underlying,
                expiry=where.pop("expiry"),
                model=model,
                params=values["params"],
                forward=where.pop("forward"),
                time_to_expiry=where.pop("t"),
                converged=values["converged"],
                status=values["status"],
                warm=values["warm"],
                iterations=values["iterations"],
                rmse=values["rmse"],
                gates=values["gates"],
                diagnostics=values["diagnostics"] | {"outliers_dropped": float(snap.dropped)},
                window_start=snap.window_start,
                window_end=snap.window_end,
                n_quotes=len(snap.strikes),
                received_at=snap.received_at,
                published_at=done,
                **where,
            )
        )
    return out
