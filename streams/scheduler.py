"""Micro-batched calibration: dirty smiles of every underlying in one ``calibrate_batch``.

Each smile starts warm from its last *good* parameters (converged, no failed gate) and cold
otherwise; the stability gate compares with its last *converged* parameters, so a genuine jump
fails the gate once and is then the new reference. Results that did not converge or failed a
gate are returned flagged, and never become a warm start. Smiles are grouped by their own
strike-count bucket, so a smile's numbers never depend on which others share its batch: a
replay reproduces every parameter exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from engine.buckets import bucket
from engine.sabr import SABRCalibrator
from schemas import Params
from streams.report import plain
from streams.surface import SmileSnapshot

__all__ = ["Calibrations", "SmileState"]

FREE = ("alpha", "rho", "nu")


@dataclass
class SmileState:
    warm: dict[str, float] | None = None  # last good parameters
    prior: dict[str, float] | None = None  # last converged parameters


class Calibrations:
    """Calibrate batches of smile snapshots and keep each smile's warm-start state."""

    def __init__(
        self,
        calibrator: SABRCalibrator | None = None,
        betas: Mapping[str, float] | None = None,
        default_beta: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # one code path for every batch size: a smile's bits never depend on its batch
        self.calibrator = calibrator or SABRCalibrator(beta=default_beta, min_batch=8)
        self.betas = dict(betas or {})
        self.default_beta = default_beta
        self.clock = clock
        self.state: dict[tuple[str, str], SmileState] = {}

    def beta(self, underlying: str) -> float:
        return self.betas.get(underlying, self.default_beta)

    def warmup(self, batch_sizes=(8, 16, 32), widths=(8, 16)) -> None:
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

    def run(self, snapshots: list[SmileSnapshot]) -> list[Params]:
        """Calibrate ``snapshots`` (at most one per smile); results in the same order."""
        keys = [s.key for s in snapshots]
        if len(set(keys)) != len(keys):
            raise ValueError("a batch holds at most one snapshot per smile")
        out: list[Params | None] = [None] * len(snapshots)
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(snapshots):
            groups.setdefault(bucket(len(s.strikes), 8), []).append(i)
        for rows in groups.values():
            for i, params in zip(rows, self._calibrate([snapshots[i] for i in rows])):
                out[i] = params
        return out  # type: ignore[return-value]

    def _calibrate(self, snaps: list[SmileSnapshot]) -> list[Params]:
        states = [self.state.setdefault(s.key, SmileState()) for s in snaps]

        def column(attr: str) -> dict[str, np.ndarray]:
            return {
                n: np.array(
                    [getattr(st, attr)[n] if getattr(st, attr) else np.nan for st in states]
                )
                for n in FREE
            }

        result = self.calibrator.calibrate_batch(
            np.array([s.forward for s in snaps]),
            np.array([s.time_to_expiry for s in snaps]),
            [np.array(s.strikes) for s in snaps],
            [np.array(s.vols) for s in snaps],
            init=column("warm"),
            prior=column("prior"),
            beta=np.array([self.beta(s.underlying) for s in snaps]),
        )
        done = self.clock()
        out = []
        for i, (snap, st) in enumerate(zip(snaps, states)):
            r = result.smile(i)
            values = plain(r)
            params = {k: float(v) for k, v in r.params.items()}
            message = Params(
                underlying=snap.underlying,
                expiry=snap.expiry,
                model="sabr",
                params=values["params"],
                forward=snap.forward,
                time_to_expiry=snap.time_to_expiry,
                converged=bool(r.converged),
                status=r.status_message,
                warm=bool(r.warm),
                iterations=int(r.iterations),
                rmse=values["rmse"],
                gates=values["gates"],
                diagnostics=values["diagnostics"] | {"outliers_dropped": float(snap.dropped)},
                window_start=snap.window_start,
                window_end=snap.window_end,
                n_quotes=len(snap.strikes),
                received_at=snap.received_at,
                published_at=done,
            )
            if message.converged:
                st.prior = params
                if message.good:
                    st.warm = params
            out.append(message)
        return out

    def export_state(self) -> dict[str, dict]:
        """Warm-start state as plain data (for a compacted topic or a table)."""
        return {f"{u}|{e}": {"warm": s.warm, "prior": s.prior} for (u, e), s in self.state.items()}

    def import_state(self, data: Mapping[str, dict]) -> None:
        for key, value in data.items():
            underlying, expiry = key.split("|", 1)
            self.state[(underlying, expiry)] = SmileState(value.get("warm"), value.get("prior"))
