"""Micro-batched calibration: dirty smiles of every underlying in one ``calibrate_batch``.

Each smile starts warm from its last *good* parameters (converged, no failed gate) and cold
otherwise; the stability gate compares with its last *converged* parameters, so a genuine jump
fails the gate once and is then the new reference. Results that did not converge or failed a
gate are returned flagged, and never become a warm start.

Warm starts advance in *warm epochs* of event time (``warm_epoch`` seconds): every calibration
of a smile within one epoch starts from the state the smile had when the epoch began. The
snapshots of an epoch are then independent of each other, so a backlog calibrates in one large
batch per epoch rather than one small round per snapshot, while the chain stays a function of
the ticks alone. Smiles are grouped by their own strike-count bucket, and a smile's numbers never
depend on which others share its batch: a replay reproduces every parameter exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.buckets import bucket
from engine.sabr import SABRCalibrator
from schemas import Params
from streams.report import plain
from streams.surface import SmileSnapshot

__all__ = ["Calibrations", "SmileState", "epochs"]

FREE = ("alpha", "rho", "nu")
Values = dict[str, float] | None


@dataclass
class SmileState:
    """``warm``/``prior``: last good / converged parameters; ``base_*``: the same as of the
    start of ``epoch``, where every calibration of that epoch starts."""

    warm: Values = None
    prior: Values = None
    epoch: int | None = None
    base_warm: Values = None
    base_prior: Values = None

    def enter(self, epoch: int) -> None:
        """Start ``epoch`` (a no-op within the current one): the latest state becomes its base."""
        if self.epoch is None or epoch > self.epoch:
            self.epoch, self.base_warm, self.base_prior = epoch, self.warm, self.prior


def epochs(snapshots: Sequence[SmileSnapshot], length: float) -> list[list[int]]:
    """Indices of ``snapshots`` in rounds: round ``r`` holds each smile's snapshots of its
    ``r``-th warm epoch in this sequence, so a round only needs the rounds before it."""
    out: list[list[int]] = []
    seen: dict[tuple[str, str], tuple[int, int]] = {}  # smile -> (epoch, round)
    for i, s in enumerate(snapshots):
        e = math.floor(s.window_end / length)
        last = seen.get(s.key)
        r = 0 if last is None else last[1] + (e > last[0])
        seen[s.key] = (max(e, last[0]) if last else e, r)
        if r == len(out):
            out.append([])
        out[r].append(i)
    return out


class Calibrations:
    """Calibrate batches of smile snapshots and keep each smile's warm-start state."""

    def __init__(
        self,
        calibrator: SABRCalibrator | None = None,
        betas: Mapping[str, float] | None = None,
        default_beta: float = 0.5,
        warm_epoch: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not warm_epoch > 0:
            raise ValueError(f"warm_epoch must be positive seconds, got {warm_epoch}")
        # one code path for every batch size (a smile's bits never depend on its batch), and
        # four batch shapes per strike bucket to compile before taking traffic
        self.calibrator = calibrator or SABRCalibrator(
            beta=default_beta, min_batch=8, batch_growth=4, max_batch=512
        )
        self.betas = dict(betas or {})
        self.default_beta = default_beta
        self.warm_epoch = warm_epoch
        self.clock = clock
        self.state: dict[tuple[str, str], SmileState] = {}

    def beta(self, underlying: str) -> float:
        return self.betas.get(underlying, self.default_beta)

    def warmup(self, batch_sizes=(8, 32, 128, 512), widths=(8, 16)) -> None:
        """Compile the bucketed programs before the worker takes traffic."""
        for b in batch_sizes:
            for n in widths:
                strikes = np.exp(np.linspace(-0.2, 0.2, n))[None, :].repeat(b, 0)
                vols = 0.1 + 0.05 * np.log(strikes) ** 2
                self.calibrator.calibrate_batch(
                    np.ones(b),
                    np.ones(b),
                    strikes,
                    vols,
                    init={n: np.full(b, np.nan) for n in FREE},
                    prior={n: np.full(b, np.nan) for n in FREE},
                )

    def run(self, snapshots: Sequence[SmileSnapshot]) -> list[Params]:
        """Calibrate ``snapshots`` (in arrival order, any number per smile); results in the
        same order. One batch per warm-epoch round and strike-count bucket."""
        out: list[Params | None] = [None] * len(snapshots)
        for rows in epochs(snapshots, self.warm_epoch):
            groups: dict[int, list[int]] = {}
            for i in rows:
                snap = snapshots[i]
                self.state.setdefault(snap.key, SmileState()).enter(
                    math.floor(snap.window_end / self.warm_epoch)
                )
                groups.setdefault(bucket(len(snap.strikes), 8), []).append(i)
            for group in groups.values():
                for i, params in zip(group, self._calibrate([snapshots[i] for i in group])):
                    out[i] = params
            for i in rows:  # in arrival order, whichever bucket each snapshot went to
                self._remember(out[i])  # type: ignore[arg-type]
        return out  # type: ignore[return-value]

    def _remember(self, message: Params) -> None:
        """Converged parameters become the stability reference, good ones the warm start."""
        if message.converged:  # converged parameters are finite: no None among them
            st = self.state[(message.underlying, message.expiry)]
            st.prior = dict(message.params)
            if message.good:
                st.warm = st.prior

    def _calibrate(self, snaps: list[SmileSnapshot]) -> list[Params]:
        states = [self.state[s.key] for s in snaps]

        def column(values: list[Values]) -> dict[str, np.ndarray]:
            return {n: np.array([v[n] if v else np.nan for v in values]) for n in FREE}

        result = self.calibrator.calibrate_batch(
            np.array([s.forward for s in snaps]),
            np.array([s.time_to_expiry for s in snaps]),
            [np.array(s.strikes) for s in snaps],
            [np.array(s.vols) for s in snaps],
            init=column([st.base_warm for st in states]),
            prior=column([st.base_prior for st in states]),
            beta=np.array([self.beta(s.underlying) for s in snaps]),
        )
        done = self.clock()
        out = []
        for snap, values in zip(snaps, plain(result)):
            message = Params(
                underlying=snap.underlying,
                expiry=snap.expiry,
                model="sabr",
                params=values["params"],
                forward=snap.forward,
                time_to_expiry=snap.time_to_expiry,
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
            )
            out.append(message)
        return out

    def export_state(self) -> dict[str, dict]:
        """Warm-start state as plain data (for a compacted topic or a table)."""
        return {f"{u}|{e}": self.record(u, e) for u, e in self.state}

    def record(self, underlying: str, expiry: str) -> dict:
        """One smile's state as plain data."""
        return vars(self.state[(underlying, expiry)]).copy()

    def import_state(self, data: Mapping[str, dict]) -> None:
        fields = SmileState.__dataclass_fields__
        for key, value in data.items():
            underlying, expiry = key.split("|", 1)
            self.state[(underlying, expiry)] = SmileState(
                **{k: v for k, v in value.items() if k in fields}
            )
