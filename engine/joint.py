"""Joint calibration of several index surfaces with shared parameters (the multi-asset
playbook): one least-squares problem, one Levenberg-Marquardt solve, block-structured.

Each asset's residuals depend only on its own row of parameters, and a shared parameter is one
coordinate over the rows of the assets that share it (:class:`engine.parameters.Slots`). The
Jacobian is therefore block-sparse: the fit computes each asset's residual Jacobian against its
own five parameters (``vmap`` over assets, five forward-mode tangents each, never one tangent
per coordinate of the whole problem) and assembles :math:`J^\\top J = \\sum_a M_a^\\top
G_a^\\top G_a M_a` through the slot map :math:`M_a = \\partial P_a / \\partial x`. An asset's
``weight`` scales its squared residuals. The fit starts from the individual fits (one batch),
shared parameters at the weighted mean of theirs.

:func:`analyze_parameter_consistency` asks whether the data support the sharing: the shift of
each parameter against the individual fits, the fit cost of sharing, and a likelihood-ratio
test under Gaussian errors of one variance, with AIC and BIC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaincc

from engine.core import settle
from engine.gates import feller_gate, price_error_gate
from engine.heston.calibrator import HestonCalibrator
from engine.heston.model import PARAM_NAMES, HestonParams
from engine.heston.problem import fit_errors, model_prices, quadrature_rule
from engine.heston.surface import HestonSurface, pad_surface, per_option
from engine.optimize import Status, levenberg_marquardt
from engine.parameters import Slots
from engine.result import CalibrationResult
from engine.selection import gaussian_criteria

__all__ = [
    "AssetClassSpec",
    "ConsistencyReport",
    "CrossAssetCalibrator",
    "JointResult",
    "analyze_parameter_consistency",
]


@dataclass(frozen=True)
class AssetClassSpec:
    """One asset of a joint fit: its ``name`` (the key of its data), the ``weight`` of its
    squared residuals, and the parameters it shares with every other asset listing them."""

    name: str
    weight: float = 1.0
    shared_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shared_params", tuple(self.shared_params))
        unknown = set(self.shared_params) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(
                f"AssetClassSpec({self.name!r}): unknown shared_params {sorted(unknown)}; "
                f"Heston's are {PARAM_NAMES}"
            )
        if not self.weight > 0:
            raise ValueError(f"AssetClassSpec({self.name!r}): weight must be > 0")


@dataclass(frozen=True)
class JointResult:
    """A joint fit: ``results[asset]`` is each asset's fit in the usual form (scalar
    ``params``, its own ``loss`` and ``rmse`` unscaled by its weight, gates), ``shared``
    maps each shared parameter to the assets sharing one value."""

    assets: tuple[str, ...]
    results: dict[str, CalibrationResult]
    shared: dict[str, tuple[str, ...]]
    converged: bool
    status: int
    iterations: int
    loss: float  # the joint objective: 0.5 * sum of weighted squared residuals
    slots: Slots  # the free coordinates and the assets (rows) each one sets
    loss_history: np.ndarray = field(repr=False)

    @property
    def n_free(self) -> int:
        """Free coordinates of the joint problem."""
        return len(self.slots.rows)

    @property
    def n_free_individually(self) -> int:
        """Free parameters of the same assets fitted one by one (no sharing)."""
        return sum(len(rows) for rows in self.slots.rows)

    @property
    def params(self) -> dict[str, dict[str, float]]:
        return {a: {n: float(v) for n, v in r.params.items()} for a, r in self.results.items()}

    @property
    def status_message(self) -> str:
        return Status(self.status).message

    @property
    def good(self) -> bool:
        return self.converged and all(bool(r.good) for r in self.results.values())


@dataclass(frozen=True)
class _Config:
    slots: Slots
    nodes: int
    max_steps: int
    tol: float
    vol_fit: bool
    weights: tuple[float, ...]
    block: bool  # False: the dense forward-mode Jacobian, one tangent per coordinate


def _asset_residuals(p: Array, s: HestonSurface, u: Array, kernel: Array, vol_fit: bool):
    return (jnp.sqrt(s.weights) * fit_errors(model_prices(p, s, u, kernel), s, vol_fit)).ravel()


@partial(jax.jit, static_argnums=0)
def _joint_fit(cfg: _Config, surfaces: HestonSurface, p0: Array):
    """Every asset's surface (stacked, (A, ...)) from rows ``p0`` (A, 5), on quadrature nodes
    fitted to each asset's start."""
    u, kernel = jax.vmap(partial(quadrature_rule, nodes=cfg.nodes))(surfaces, p0)
    scale = jnp.sqrt(jnp.asarray(cfg.weights))
    one = partial(_asset_residuals, vol_fit=cfg.vol_fit)
    fill = partial(cfg.slots.fill, held=p0)

    def residuals(x, _):
        r = jax.vmap(one)(fill(x), surfaces, u, kernel)
        return (scale[:, None] * r).ravel()

    def block(p, s, u_a, k_a, w):
        jac, r = jax.jacfwd(lambda q: (w * one(q, s, u_a, k_a),) * 2, has_aux=True)(p)
        return jac.T @ jac, jac.T @ r, 0.5 * jnp.sum(r * r)

    def linearise(_fn, x, _args):
        slots = jax.jacfwd(fill)(x)  # (A, 5, n): which cells each coordinate moves
        normal, grad, cost = jax.vmap(block)(fill(x), surfaces, u, kernel, scale)
        return (
            jnp.sum(cost),
            jnp.einsum("aip,aij,ajq->pq", slots, normal, slots),
            jnp.einsum("aip,ai->p", slots, grad),
        )

    out = levenberg_marquardt(
        residuals,
        cfg.slots.values(p0),
        None,
        max_steps=cfg.max_steps,
        tol=cfg.tol,
        record_history=True,
        linearise=linearise if cfg.block else None,
    )
    p = fill(out.x)
    status = settle(cfg.slots, p, out.status)
    model = jax.vmap(model_prices)(p, surfaces, u, kernel)
    errors = jax.vmap(partial(fit_errors, vol_fit=cfg.vol_fit))(model, surfaces)
    rel = jnp.where(surfaces.weights > 0, jnp.abs(model / surfaces.prices - 1.0), 0.0)
    return p, out._replace(status=status), errors, jnp.max(rel, axis=(1, 2))


class CrossAssetCalibrator:
    """The playbook's ``CrossAssetCalibrator(asset_specs=[AssetClassSpec(...)],
    base_calibrator=HestonCalibrator())``: the base supplies the parameter specs (bounds,
    held parameters), tolerance, step limit, residual, liquidity filter and thresholds.
    ``block_jacobian=False`` builds the dense Jacobian instead (the same solve, slower as
    assets are added: the reference the block form is checked and measured against)."""

    def __init__(
        self,
        asset_specs: Sequence[AssetClassSpec],
        base_calibrator: HestonCalibrator | None = None,
        block_jacobian: bool = True,
    ) -> None:
        self.asset_specs = tuple(asset_specs)
        names = [a.name for a in self.asset_specs]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"a joint fit needs two or more assets, each named once: {names}")
        self.base = base_calibrator or HestonCalibrator()
        self.block_jacobian = block_jacobian
        if not isinstance(self.base, HestonCalibrator):
            raise TypeError("CrossAssetCalibrator fits Heston surfaces: pass a HestonCalibrator")

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.asset_specs)

    @property
    def shared(self) -> dict[str, tuple[str, ...]]:
        """Each parameter shared by two or more assets, and which; a parameter only one asset
        lists is that asset's own."""
        out = {}
        for name in PARAM_NAMES:
            group = tuple(a.name for a in self.asset_specs if name in a.shared_params)
            if len(group) > 1:
                out[name] = group
        return out

    def slots(self) -> Slots:
        """The free coordinates: one per shared parameter and group, one per asset otherwise;
        held (``fixed``) parameters have none."""
        shared = self.shared

        def groups(name: str) -> list[tuple[int, ...]]:
            group = shared.get(name, ())
            own = [(i,) for i, a in enumerate(self.assets) if a not in group]
            return ([tuple(self.assets.index(a) for a in group)] if group else []) + own

        return Slots.of(self.base.parameter_specs, PARAM_NAMES, groups)

    def _data(self, asset_data: Mapping[str, dict]) -> list[dict]:
        missing = [a for a in self.assets if a not in asset_data]
        if missing:
            raise ValueError(
                f"asset_data has no surface for {missing} (it has {sorted(asset_data)})"
            )
        return [asset_data[a] for a in self.assets]

    def calibrate_individually(
        self, asset_data: Mapping[str, dict]
    ) -> dict[str, CalibrationResult]:
        """Each asset on its own, all in one batch: the playbook's individual fits."""
        batch = self.base.calibrate_batch(self._data(asset_data))
        return {a: batch.smile(i) for i, a in enumerate(self.assets)}

    def calibrate(
        self,
        asset_data: Mapping[str, dict],
        individual: Mapping[str, CalibrationResult] | None = None,
    ) -> JointResult:
        """Fit every asset's surface (``HestonCalibrator`` market data, by asset name) at
        once, starting from ``individual`` fits when given, else from fresh ones."""
        data = self._data(asset_data)
        if individual is None:
            individual = self.calibrate_individually(asset_data)
        b = self.base
        packed = [b.pack(d) for d in data]
        shape = (max(s.expiries.shape[0] for s in packed), max(s.strikes.shape[1] for s in packed))
        stacked = HestonSurface(
            *(np.stack(x) for x in zip(*(pad_surface(s, *shape) for s in packed)))
        )
        vol_fit = any(np.isfinite(s.vols).any() for s in packed)
        p0 = np.array([[float(individual[a].params[n]) for n in PARAM_NAMES] for a in self.assets])
        weights = np.array([a.weight for a in self.asset_specs])
        for name, group in self.shared.items():  # shared: the weighted mean of the assets'
            rows = [self.assets.index(a) for a in group]
            col = PARAM_NAMES.index(name)
            p0[rows, col] = np.average(p0[rows, col], weights=weights[rows])
        held = [i for i, n in enumerate(PARAM_NAMES) if b.parameter_specs[n].fixed]
        p0[:, held] = [b.parameter_specs[PARAM_NAMES[i]].init for i in held]
        slots = self.slots()
        cfg = _Config(
            slots,
            b.pricing.nodes,
            b.solving.max_steps,
            b.solving.tol,
            vol_fit,
            tuple(weights.tolist()),
            self.block_jacobian,
        )
        p, out, errors, worst = _joint_fit(cfg, stacked, jnp.asarray(p0))
        p, errors, worst = np.asarray(p), np.asarray(errors), np.asarray(worst)
        status = int(out.status)
        converged = status == Status.CONVERGED
        results = {
            a: self._asset_result(p[i], errors[i], worst[i], stacked.weights[i], data[i], converged)
            for i, a in enumerate(self.assets)
        }
        return JointResult(
            assets=self.assets,
            results=results,
            shared=self.shared,
            converged=converged,
            status=status,
            iterations=int(out.iterations),
            loss=float(out.cost),
            slots=slots,
            loss_history=np.asarray(out.loss_history)[: int(out.iterations) + 1],
        )

    def _asset_result(self, p, errors, worst, w, data, converged) -> CalibrationResult:
        """One asset's part of the joint fit (``errors`` zero on padding, weights ``w``)."""
        cost = 0.5 * float(np.sum(w * errors**2))
        n = int(np.sum(w > 0))
        th = self.base.thresholds
        return CalibrationResult(
            params={n_: np.float64(v) for n_, v in zip(PARAM_NAMES, p)},
            converged=np.bool_(converged),
            status=np.int32(Status.CONVERGED if converged else Status.MAX_STEPS),
            iterations=np.int32(0),
            loss=np.float64(cost),
            rmse=np.float64(np.sqrt(2.0 * cost / n)),
            residuals=per_option(errors, data),
            diagnostics={"max_price_error": np.float64(worst), "n_options": n},
            gates={
                "feller": feller_gate(HestonParams(*p).feller_gap),
                "price_error": price_error_gate(worst, th.price_error),
            },
            warm=np.bool_(True),
            model="heston",
        )


@dataclass(frozen=True)
class ConsistencyReport:
    """What sharing costs and whether the data support it (Gaussian errors of one variance:
    ``n ln(SSE_joint / SSE_individual)`` is chi-squared with as many degrees of freedom as
    the sharing removed parameters, when sharing is true)."""

    shifts: dict[str, dict[str, tuple[float, float]]]  # param -> asset -> (individual, joint)
    sse_individual: float
    sse_joint: float
    n_options: int
    k_individual: int
    k_joint: int
    likelihood_ratio: float
    p_value: float
    aic: tuple[float, float]  # (individual, joint)
    bic: tuple[float, float]
    alpha: float = 0.05

    @property
    def cost_of_sharing(self) -> float:
        """Relative rise of the sum of squared errors that sharing costs."""
        return self.sse_joint / self.sse_individual - 1.0

    @property
    def supported(self) -> bool:
        """The likelihood-ratio test does not reject the shared parameters at ``alpha``."""
        return self.p_value >= self.alpha

    @property
    def verdict(self) -> str:
        lr = (
            f"likelihood ratio {self.likelihood_ratio:.2f} on "
            f"{self.k_individual - self.k_joint} degrees of freedom, p = {self.p_value:.3g}"
        )
        prefers = "joint" if self.bic[1] <= self.bic[0] else "individual"
        head = "sharing supported" if self.supported else "sharing NOT supported"
        return (
            f"{head}: {lr}; the fit costs {100 * self.cost_of_sharing:.1f}% more squared "
            f"error; BIC prefers the {prefers} fits"
        )


def analyze_parameter_consistency(
    joint_result: JointResult,
    individual_results: Mapping[str, CalibrationResult],
    alpha: float = 0.05,
) -> ConsistencyReport:
    """Each parameter's joint value against each asset's individual fit, the fit cost of
    sharing, and the likelihood-ratio test and information criteria of the sharing."""
    assets = joint_result.assets
    shifts = {
        n: {
            a: (float(individual_results[a].params[n]), float(joint_result.results[a].params[n]))
            for a in assets
        }
        for n in PARAM_NAMES
    }
    sse_ind = sum(2.0 * float(individual_results[a].loss) for a in assets)
    sse_joint = sum(2.0 * float(joint_result.results[a].loss) for a in assets)
    n = sum(int(joint_result.results[a].diagnostics["n_options"]) for a in assets)
    k_joint, k_ind = joint_result.n_free, joint_result.n_free_individually
    (ll_i, aic_i, bic_i), (ll_j, aic_j, bic_j) = (
        gaussian_criteria(sse_ind, n, k_ind),
        gaussian_criteria(sse_joint, n, k_joint),
    )
    lr = 2.0 * (ll_i - ll_j)  # n ln(SSE_joint / SSE_individual)
    df = k_ind - k_joint
    p_value = float(gammaincc(df / 2.0, max(lr, 0.0) / 2.0)) if df > 0 else 1.0
    return ConsistencyReport(
        shifts=shifts,
        sse_individual=sse_ind,
        sse_joint=sse_joint,
        n_options=n,
        k_individual=k_ind,
        k_joint=k_joint,
        likelihood_ratio=float(lr),
        p_value=p_value,
        aic=(aic_i, aic_j),
        bic=(bic_i, bic_j),
        alpha=alpha,
    )
