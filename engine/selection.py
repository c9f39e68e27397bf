"""Model comparison and selection (the quarterly playbook): information criteria on one
measure, out-of-sample errors, and a recommendation weighing the playbook's five criteria.

Every model is scored on the same numbers: model minus market implied vol of every option of
the same ``market_data`` (:func:`vol_errors`), whatever its own fit measure was. With errors
Gaussian of one unknown variance, the maximised log-likelihood of ``n`` options is
:math:`-\\tfrac n2(\\ln(2\\pi\\,SSE/n) + 1)`; AIC is :math:`2(k+1) - 2\\ell` and BIC
:math:`(k+1)\\ln n - 2\\ell`, ``k`` the model's free parameters (the variance adds one to
every model alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from engine.crossval import CrossValidation
from engine.heston import HestonCalibrator
from engine.result import CalibrationResult
from engine.sabr import SABRCalibrator
from engine.slv import SLVCalibrator, SLVResult

__all__ = [
    "ModelComparison",
    "ModelScore",
    "OutOfSample",
    "Recommendation",
    "compare_models",
    "evaluate_out_of_sample",
    "gaussian_criteria",
    "generate_model_recommendation",
    "vol_errors",
]


def vol_errors(result: CalibrationResult, market_data: dict, calibrator=None) -> np.ndarray:
    """Model minus market implied vol of every option of ``market_data`` (input order) under a
    fit's parameters. ``calibrator`` prices models whose result does not say everything
    (time-dependent Heston: its segments); SABR, Heston and SLV (whose result carries its
    leverage; repriced with the default particles unless its calibrator is given) need none."""
    if calibrator is None:
        if result.model not in _DEFAULTS:
            raise ValueError(
                f"no vol errors for model {result.model!r} without its calibrator: pass calibrator="
            )
        calibrator = _DEFAULTS[result.model]()
    return calibrator.vol_errors_of(result, market_data)


# the calibrators whose results say everything their errors need (SLV's carries its leverage:
# repriced with the default particles)
_DEFAULTS = {"sabr": SABRCalibrator, "heston": HestonCalibrator, "slv": SLVCalibrator}


def gaussian_criteria(sse: float, n: int, k: int) -> tuple[float, float, float]:
    """Maximised log-likelihood, AIC and BIC of ``n`` errors with sum of squares ``sse`` under
    a model of ``k`` free parameters, the errors Gaussian of one unknown variance (which
    counts as one more parameter): the module doc's formulas, for every comparison."""
    ll = -0.5 * n * (np.log(2.0 * np.pi * sse / n) + 1.0)
    return float(ll), float(2 * (k + 1) - 2 * ll), float((k + 1) * np.log(n) - 2 * ll)


def _n_free(result: CalibrationResult) -> int:
    return int(np.sum(np.asarray(result.diagnostics["n_free"])))


class ModelScore(NamedTuple):
    name: str
    n_options: int
    n_free: int
    sse: float  # sum of squared implied-vol errors
    rmse: float
    log_likelihood: float
    aic: float
    bic: float
    converged: bool


@dataclass(frozen=True)
class ModelComparison:
    """``compare_models``' scores, one per model, in the order given."""

    scores: tuple[ModelScore, ...]

    @property
    def best_by_aic(self) -> str:
        return min(self.scores, key=lambda s: s.aic).name

    @property
    def best_by_bic(self) -> str:
        return min(self.scores, key=lambda s: s.bic).name

    def score(self, name: str) -> ModelScore:
        return next(s for s in self.scores if s.name == name)

    def table(self) -> list[dict]:
        """One row per model: what the report prints."""
        return [s._asdict() for s in self.scores]


def compare_models(
    entries: Sequence[
        tuple[str, CalibrationResult, dict] | tuple[str, CalibrationResult, dict, object]
    ],
) -> ModelComparison:
    """The playbook's ``compare_models([(name, result, market_data), ...])`` (a fourth item,
    the calibrator, prices models that need it: see :func:`vol_errors`). Every model must be
    scored on the same options: the same count of them is checked."""
    scores = []
    for entry in entries:
        name, result, data = entry[:3]
        errors = vol_errors(result, data, entry[3] if len(entry) > 3 else None)
        finite = np.isfinite(errors)
        if not finite.all():
            raise ValueError(
                f"{name}: the model has no implied vol at options "
                f"{np.flatnonzero(~finite)[:5].tolist()}: it cannot be scored on them"
            )
        n, k = errors.size, _n_free(result)
        sse = float(np.sum(errors**2))
        ll, aic, bic = gaussian_criteria(sse, n, k)
        converged = bool(np.all(np.asarray(result.converged)))
        rmse = float(np.sqrt(sse / n))
        scores.append(ModelScore(name, n, k, sse, rmse, ll, aic, bic, converged))
    if len({s.n_options for s in scores}) > 1:
        raise ValueError(
            "models scored on different options: "
            + ", ".join(f"{s.name} {s.n_options}" for s in scores)
        )
    return ModelComparison(tuple(scores))


class _Scores(Protocol):
    def errors(self, params: dict, market_data: dict) -> np.ndarray: ...


class OutOfSample(NamedTuple):
    """Errors of one fit's parameters on other dates' surfaces (the calibrator's measure)."""

    rmse: np.ndarray  # one per surface
    in_sample_rmse: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.rmse))

    @property
    def degradation(self) -> float:
        """Out-of-sample RMSE over in-sample RMSE: 1 generalises perfectly."""
        return self.mean / self.in_sample_rmse


def evaluate_out_of_sample(
    calibrator: _Scores,
    result: CalibrationResult,
    surfaces: Sequence[dict],
    in_sample: dict | None = None,
) -> OutOfSample:
    """How ``result`` (fitted on ``in_sample``) prices ``surfaces`` of other dates that it
    never saw: the RMS of ``calibrator.errors`` on each, against its in-sample RMS (without
    ``in_sample``, as the seed's playbook calls it, the fit's own: the RMS of its residuals,
    or its RMSE). An SLV fit is scored whole (its leverage is the model, not only its Heston
    ``params``)."""
    if not surfaces:
        raise ValueError("evaluate_out_of_sample needs at least one other date's surface")
    fit = result if isinstance(result, SLVResult) else result.params
    rms = lambda d: float(np.sqrt(np.mean(calibrator.errors(fit, d) ** 2)))  # noqa: E731
    if in_sample is None:  # the fit's residuals, else (a surface fit keeps none) its RMSE
        own = np.asarray(result.residuals, np.float64)
        own = own[np.isfinite(own)]
        inside = float(np.sqrt(np.mean(own**2))) if own.size else float(np.mean(result.rmse))
    else:
        inside = rms(in_sample)
    return OutOfSample(np.array([rms(d) for d in surfaces]), inside)


CRITERIA = ("fit", "stability", "generalization", "speed", "identifiability")


@dataclass(frozen=True)
class Recommendation:
    """The recommended model and, per criterion, each model's figure and rank (1 best)."""

    model: str
    figures: dict[str, dict[str, float]]  # criterion -> model -> figure
    ranks: dict[str, dict[str, int]]
    reasons: tuple[str, ...]

    def summary(self) -> str:
        return f"recommended: {self.model} - " + "; ".join(self.reasons)


def generate_model_recommendation(
    comparison: ModelComparison,
    cv_results: Mapping[str, CrossValidation],
    oos_errors: Mapping[str, OutOfSample],
    seconds: Mapping[str, float] | None = None,
    conditions: Mapping[str, float] | None = None,
) -> Recommendation:
    """Weigh the playbook's five criteria, each by its figure (lower is better): fit (BIC),
    stability (cross-validation ``std / mean`` of fold errors), generalization (mean
    out-of-sample RMSE), speed and convergence (calibration ``seconds``; an unconverged model
    ranks last), identifiability (condition number of the scaled Jacobian). The model with
    the lowest sum of ranks is recommended; BIC breaks ties. A criterion without figures for
    every model is left out and said so."""
    names = [s.name for s in comparison.scores]
    unconverged = {s.name for s in comparison.scores if not s.converged}
    figures: dict[str, dict[str, float]] = {
        "fit": {s.name: s.bic for s in comparison.scores},
        "stability": {n: cv_results[n].dispersion for n in names if n in cv_results},
        "generalization": {n: oos_errors[n].mean for n in names if n in oos_errors},
        "speed": {n: (np.inf if n in unconverged else v) for n, v in (seconds or {}).items()},
        "identifiability": dict(conditions or {}),
    }
    reasons, ranks = [], {}
    for criterion in CRITERIA:
        values = figures[criterion]
        if set(values) != set(names):
            reasons.append(f"{criterion}: not weighed (figures for {sorted(values) or 'none'})")
            figures[criterion] = {}
            continue
        order = sorted(names, key=lambda n: values[n])
        ranks[criterion] = {n: order.index(n) + 1 for n in names}
        reasons.append(f"{criterion}: {order[0]} best ({values[order[0]]:.4g})")
    total = {n: sum(r[n] for r in ranks.values()) for n in names}
    bic = figures["fit"]
    best = min(names, key=lambda n: (total[n], bic[n]))
    return Recommendation(best, figures, ranks, tuple(reasons))
