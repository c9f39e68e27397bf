"""The calibration result: parameters plus everything needed to decide whether to trust them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
        pick = lambda tree: jax.tree_util.tree_map(lambda a: a[index], tree)  # noqa: E731
        gates = {
            name: g._replace(
                value=g.value[index], passed=g.passed[index], applicable=g.applicable[index]
            )
            for name, g in self.gates.items()
        }
        return CalibrationResult(
            params=pick(self.params),
            converged=self.converged[index],
            status=self.status[index],
            iterations=self.iterations[index],
            loss=self.loss[index],
            rmse=self.rmse[index],
            residuals=self.residuals[index],
            diagnostics=pick(self.diagnostics),
            gates=gates,
            warm=self.warm[index],
            loss_history=None if self.loss_history is None else self.loss_history[index],
            sensitivities=None if self.sensitivities is None else self.sensitivities[index],
            sensitivity_params=self.sensitivity_params,
            model=self.model,
        )

    def as_batch(self) -> CalibrationResult:
        """A single fit as a batch of one (the inverse of ``rows(0)``)."""
        if self.batch_size is not None:
            return self
        one = lambda tree: jax.tree_util.tree_map(lambda a: np.asarray(a)[None], tree)  # noqa: E731
        gates = {
            name: g._replace(
                value=np.asarray(g.value)[None],
                passed=np.asarray(g.passed)[None],
                applicable=np.asarray(g.applicable)[None],
            )
            for name, g in self.gates.items()
        }
        return replace(
            self,
            params=one(self.params),
            converged=np.asarray(self.converged)[None],
            status=np.asarray(self.status)[None],
            iterations=np.asarray(self.iterations)[None],
            loss=np.asarray(self.loss)[None],
            rmse=np.asarray(self.rmse)[None],
            residuals=np.asarray(self.residuals)[None],
            diagnostics=one(self.diagnostics),
            gates=gates,
            warm=np.asarray(self.warm)[None],
            loss_history=None if self.loss_history is None else one(self.loss_history),
            sensitivities=None if self.sensitivities is None else one(self.sensitivities),
        )

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

        tree = lambda a, b: jax.tree_util.tree_map(put, a, b)  # noqa: E731
        gates = {
            name: g._replace(
                value=put(g.value, other.gates[name].value),
                passed=put(g.passed, other.gates[name].passed),
                applicable=put(g.applicable, other.gates[name].applicable),
            )
            for name, g in self.gates.items()
        }
        pick = lambda a, b: None if a is None else put(a, b)  # noqa: E731
        return replace(
            self,
            params=tree(self.params, other.params),
            converged=put(self.converged, other.converged),
            status=put(self.status, other.status),
            iterations=put(self.iterations, other.iterations),
            loss=put(self.loss, other.loss),
            rmse=put(self.rmse, other.rmse),
            residuals=put(self.residuals, other.residuals),
            diagnostics=tree(self.diagnostics, other.diagnostics),
            gates=gates,
            warm=put(self.warm, other.warm),
            loss_history=pick(self.loss_history, other.loss_history),
            sensitivities=pick(self.sensitivities, other.sensitivities),
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
