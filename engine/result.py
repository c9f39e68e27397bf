"""The calibration result: parameters plus everything needed to decide whether to trust them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial

import jax
import numpy as np
from jax import Array

from engine.gates import Gate, gate_verdict
from engine.optimize.status import Status

__all__ = ["CalibrationResult"]


@partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "params", "converged", "status", "iterations", "loss", "rmse", "residuals",
        "diagnostics", "gates", "warm", "loss_history", "sensitivities",
    ],
    meta_fields=["sensitivity_params", "model"],
)  # fmt: skip
@dataclass(frozen=True)
class CalibrationResult:
    """Result of one fit, or of a batch (every array then has a leading batch axis).

    A pytree (its arrays and gates' figures are the leaves; which parameters the
    sensitivities are of, and the model, are static), so views of a batch are tree maps.

    ``converged`` is true only for finite parameters whose solver reported ``CONVERGED``;
    ``residuals`` are model minus market vols (NaN where a smile has no quote);
    ``loss_history`` holds ``0.5 * sum(w r**2)`` per step (NaN past the end) when recorded;
    ``sensitivities`` (P, N) are ``d param / d market vol`` when requested.
    """

    params: dict[str, Array]
    converged: Array
    status: Array
    iterations: Array
    loss: Array
    rmse: Array
    residuals: Array
    diagnostics: dict[str, Array]
    gates: dict[str, Gate]
    warm: Array
    loss_history: Array | None = None
    sensitivities: Array | None = None
    sensitivity_params: tuple[str, ...] = field(default=())
    model: str = ""  # "sabr", "heston": which model's parameters these are

    @property
    def batch_size(self) -> int | None:
        """Number of smiles, or ``None`` for a single-smile result."""
        shape = np.shape(self.converged)
        return shape[0] if shape else None

    def smile(self, i: int) -> CalibrationResult:
        """The ``i``-th smile of a batch result, as a single-smile result."""
        if self.batch_size is None:
            raise TypeError("smile(i) indexes a batch result; this is a single smile")
        return self.rows(int(i))

    def rows(self, index) -> CalibrationResult:
        """The rows ``index`` (an int, a slice, indices or a mask) of a batch result."""
        return jax.tree.map(lambda a: a[index], self)

    def as_batch(self) -> CalibrationResult:
        """A single fit as a batch of one (the inverse of ``rows(0)``)."""
        if self.batch_size is not None:
            return self
        return jax.tree.map(lambda a: np.asarray(a)[None], self)

    def trimmed_history(self) -> CalibrationResult:
        """A single fit with ``loss_history`` cut to its steps: ``[-1]`` is the final loss."""
        steps = int(self.iterations)
        return replace(self, loss_history=np.asarray(self.loss_history)[: steps + 1])

    def with_rows(self, rows: np.ndarray, other: CalibrationResult) -> CalibrationResult:
        """This batch result with ``rows`` replaced by ``other``'s rows (in order): how a
        retry's results are merged back into a batch."""

        def put(mine, theirs):
            out = np.array(mine, copy=True)
            out[rows] = theirs
            return out

        return jax.tree.map(put, self, other)

    def with_better(self, rows: np.ndarray, other: CalibrationResult) -> CalibrationResult:
        """The cold retry of every calibrator: this batch result with each row of ``rows``
        taken from ``other`` (a fit of the same rows from other starts, in order) where that
        fit converged and this one did not, or it reached a lower loss. Those rows keep their
        ``warm`` (they were started warm) and say ``diagnostics["cold_retry"]``."""
        rows = np.asarray(rows)
        mine_converged, mine_loss = np.asarray(self.converged)[rows], np.asarray(self.loss)[rows]
        better = np.asarray(other.converged) & (
            ~mine_converged | (np.asarray(other.loss) < mine_loss)
        )
        out = replace(self.with_rows(rows[better], other.rows(better)), warm=self.warm)
        out.diagnostics["cold_retry"][rows[better]] = True
        return out

    @property
    def status_message(self) -> str | list[str]:
        """Readable solver outcome(s)."""
        codes = np.asarray(self.status)
        if codes.ndim == 0:
            return Status(int(codes)).message
        return [Status(int(c)).message for c in codes]

    def gate_verdicts(self) -> dict[str, str]:
        """``{gate: "pass" | "fail" | "n/a"}`` for a single-smile result."""
        if self.batch_size is not None:
            raise TypeError("gate_verdicts() is per smile: use result.smile(i).gate_verdicts()")
        return {n: gate_verdict(bool(g.passed), bool(g.applicable)) for n, g in self.gates.items()}

    @property
    def good(self) -> Array:
        """True where the parameters may be used: converged and every applicable gate passed.
        A fit that cannot reprice its input fails a gate, so it is never good."""
        return self.gates_passed

    @property
    def gates_passed(self) -> Array:
        """True where every applicable gate passed (and the fit converged)."""
        ok = np.asarray(self.converged)
        for g in self.gates.values():
            ok = ok & (np.asarray(g.passed) | ~np.asarray(g.applicable))
        return ok
