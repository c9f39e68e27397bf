"""The calibration result: parameters plus everything needed to decide whether to trust them."""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import numpy as np
from jax import Array

from engine.gates import Gate, gate_verdict
from engine.optimize.status import Status

__all__ = ["CalibrationResult"]


@dataclass(frozen=True)
class CalibrationResult:
    """Result of one fit, or of a batch (every array then has a leading batch axis).

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

    @property
    def batch_size(self) -> int | None:
        """Number of smiles, or ``None`` for a single-smile result."""
        shape = np.shape(self.converged)
        return shape[0] if shape else None

    def smile(self, i: int) -> CalibrationResult:
        """The ``i``-th smile of a batch result, as a single-smile result."""
        if self.batch_size is None:
            raise TypeError("smile(i) indexes a batch result; this is a single smile")
        pick = lambda tree: jax.tree_util.tree_map(lambda a: a[i], tree)  # noqa: E731
        gates = {
            name: g._replace(value=g.value[i], passed=g.passed[i], applicable=g.applicable[i])
            for name, g in self.gates.items()
        }
        return CalibrationResult(
            params=pick(self.params),
            converged=self.converged[i],
            status=self.status[i],
            iterations=self.iterations[i],
            loss=self.loss[i],
            rmse=self.rmse[i],
            residuals=self.residuals[i],
            diagnostics=pick(self.diagnostics),
            gates=gates,
            warm=self.warm[i],
            loss_history=None if self.loss_history is None else self.loss_history[i],
            sensitivities=None if self.sensitivities is None else self.sensitivities[i],
            sensitivity_params=self.sensitivity_params,
        )

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
    def gates_passed(self) -> Array:
        """True where every applicable gate passed (and the fit converged)."""
        ok = np.asarray(self.converged)
        for g in self.gates.values():
            ok = ok & (np.asarray(g.passed) | ~np.asarray(g.applicable))
        return ok
