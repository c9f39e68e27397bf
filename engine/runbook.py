"""The playbook's calibration-failure runbook, automated: what a desk quant does by hand when
a fit fails, in order, stopping at the first step whose fit is good.

1. ``adjusted_starts``: other starting points (SABR: alpha halved and doubled, rho at
   +-0.5, nu low and high; Heston: v0 from 0.01 to 0.3 and kappa 0.5 to 5).
2. ``more_steps``: five times the step limit (at least 1,000).
3. ``alternative_optimizer``: L-BFGS (optax) with the larger step limit, then Adam.
4. ``simpler_model``: fewer free parameters (SABR with rho held at 0, then nu held at its
   start's value; Heston with kappa held at 1.5); the result says which parameter was held.
5. otherwise: escalate (``RunbookOutcome.escalate``) with every attempt's figures.

A fit is *good* when it converged and passed every applicable gate (``result.good``); the
outcome keeps the best fit seen (a good one; else the lowest loss) and says which step gave
it. Any calibrator with ``calibrate(market_data)``, a ``solving`` group and
``parameter_specs``, varied by ``replace`` (SABR and Heston: :mod:`engine.options`), plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.result import CalibrationResult

__all__ = [
    "RUNBOOK_STEPS",
    "RunbookAttempt",
    "RunbookOutcome",
    "run_failure_runbook",
    "with_held",
]

RUNBOOK_STEPS = (
    "initial",
    "adjusted_starts",
    "more_steps",
    "alternative_optimizer",
    "simpler_model",
)


@dataclass(frozen=True)
class RunbookAttempt:
    step: str
    detail: str  # what was changed
    good: bool
    loss: float


@dataclass(frozen=True)
class RunbookOutcome:
    """The runbook's result: the fit to use, the step that gave it (``None``: nothing gave a
    good fit: escalate), and every attempt in order."""

    result: CalibrationResult
    step: str | None
    attempts: tuple[RunbookAttempt, ...]

    @property
    def escalate(self) -> bool:
        return self.step is None

    @property
    def step_index(self) -> int:
        """The step's position in :data:`RUNBOOK_STEPS`; -1 when escalated."""
        return -1 if self.step is None else RUNBOOK_STEPS.index(self.step)

    def summary(self) -> str:
        tried = "; ".join(
            f"{a.step} ({a.detail}): {'good' if a.good else 'failed'}" for a in self.attempts
        )
        head = "escalate to the quant team" if self.escalate else f"fixed by {self.step}"
        return f"{head}: {tried}"


def with_held(calibrator, name: str, value: float):
    """A copy of ``calibrator`` holding parameter ``name`` at ``value`` (the original's
    specs are never touched)."""
    return calibrator.with_spec(name, init=value, fixed=True)


def _starts(calibrator, fit: CalibrationResult) -> list[tuple[str, object]]:
    """Step 1's variants: other starting points, by model."""
    if fit.model == "heston":
        variants = []
        for kappa in (0.5, 1.5, 5.0):
            v = calibrator.replace(v0_starts=(0.01, 0.05, 0.1, 0.3)).with_spec("kappa", init=kappa)
            variants.append((f"v0 starts 0.01-0.3, kappa start {kappa}", v))
        return variants
    alpha = float(np.nanmedian(np.asarray(fit.params["alpha"])))
    variants = []
    for a, rho, nu in ((0.5, -0.5, 0.3), (2.0, 0.5, 1.5), (1.0, 0.0, 0.1)):
        v = calibrator.with_spec("alpha", init=a * alpha)
        v = v.with_spec("rho", init=rho).with_spec("nu", init=nu)
        variants.append((f"alpha x{a}, rho {rho}, nu {nu}", v))
    return variants


def run_failure_runbook(
    calibrator, market_data: dict, fit: CalibrationResult | None = None
) -> RunbookOutcome:
    """Fit ``market_data`` (or take its failed ``fit``) and, while not good, walk the
    runbook's steps (module doc)."""
    fit = fit if fit is not None else calibrator.calibrate(market_data)
    attempts = [RunbookAttempt("initial", "as configured", bool(fit.good), float(fit.loss))]
    best = fit
    if bool(fit.good):
        return RunbookOutcome(fit, "initial", tuple(attempts))
    steps = max(5 * calibrator.solving.max_steps, 1000)
    plan: list[tuple[str, str, object]] = []
    plan += [("adjusted_starts", detail, v) for detail, v in _starts(calibrator, fit)]
    plan.append(("more_steps", f"max_steps {steps}", calibrator.replace(max_steps=steps)))
    for name in ("lbfgs", "adam"):
        v = calibrator.replace(optimizer=name, max_steps=steps)
        plan.append(("alternative_optimizer", f"{name}, max_steps {steps}", v))
    if fit.model == "heston":
        plan.append(("simpler_model", "kappa held at 1.5", with_held(calibrator, "kappa", 1.5)))
    else:
        nu = float(np.nanmedian(np.asarray(fit.params["nu"])))
        plan.append(("simpler_model", "rho held at 0", with_held(calibrator, "rho", 0.0)))
        plan.append(("simpler_model", f"nu held at {nu:.4g}", with_held(calibrator, "nu", nu)))
    for step, detail, variant in plan:
        try:
            result = variant.calibrate(market_data)
        except ValueError as exc:  # e.g. every parameter held: this variant cannot run
            attempts.append(RunbookAttempt(step, f"{detail}: {exc}", False, float("nan")))
            continue
        good = bool(np.all(np.asarray(result.good)))
        attempts.append(RunbookAttempt(step, detail, good, float(np.sum(result.loss))))
        if good:
            return RunbookOutcome(result, step, tuple(attempts))
        if np.sum(result.loss) < np.sum(best.loss):
            best = result
    return RunbookOutcome(best, None, tuple(attempts))
