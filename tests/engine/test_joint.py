"""Joint multi-asset Heston calibration: shared parameters recovered, the sharing tested."""

import numpy as np
import pytest

from engine.blackscholes import implied_vol
from engine.heston import heston_price
from engine.joint import AssetClassSpec, CrossAssetCalibrator, analyze_parameter_consistency

OWN = {  # v0, kappa, theta, sigma per index
    "SPX": (0.04, 2.0, 0.05, 0.5),
    "SX5E": (0.05, 1.2, 0.06, 0.7),
    "NKY": (0.03, 3.0, 0.04, 0.4),
}
SPOTS = {"SPX": 5000.0, "SX5E": 4000.0, "NKY": 30000.0}


def surface(name: str, rho: float, noise: float = 5e-4, seed: int = 0) -> dict:
    """9 strikes x 4 expiries of vols, with Gaussian noise of ``noise`` vol."""
    spot, rng = SPOTS[name], np.random.default_rng(seed + len(name))
    t = np.repeat([0.25, 0.5, 1.0, 2.0], 9)
    k = spot * np.exp(np.tile(np.linspace(-0.3, 0.3, 9), 4) * np.sqrt(t))
    forward = spot * np.exp(0.02 * t)
    calls = k >= forward
    price = np.asarray(heston_price(spot, k, t, 0.02, 0.0, *OWN[name], rho, calls))
    vols = np.asarray(implied_vol(price * np.exp(0.02 * t), forward, k, t, calls))
    vols = vols + noise * rng.standard_normal(t.size)
    return {"spot": spot, "strikes": k, "maturities": t, "rate": 0.02, "target_vols": vols}


def test_one_true_rho_is_recovered_and_the_sharing_is_supported():
    data = {name: surface(name, -0.6) for name in OWN}
    cal = CrossAssetCalibrator([AssetClassSpec(n, 1.0, ["rho"]) for n in OWN])
    individual = cal.calibrate_individually(data)
    joint = cal.calibrate(data, individual)
    assert joint.converged and joint.shared == {"rho": ("SPX", "SX5E", "NKY")}
    rhos = {p["rho"] for p in joint.params.values()}
    assert len(rhos) == 1 and rhos.pop() == pytest.approx(-0.6, abs=0.01)
    for name, own in OWN.items():  # the rest stay each index's own
        assert joint.params[name]["kappa"] == pytest.approx(own[1], rel=0.15)
    assert (joint.n_free, joint.n_free_individually) == (13, 15)
    report = analyze_parameter_consistency(joint, individual)
    assert report.supported and report.p_value > 0.05, report.verdict
    assert 0 <= report.cost_of_sharing < 0.2 and report.bic[1] < report.bic[0]
    assert report.n_options == 108 and report.verdict.startswith("sharing supported")
    spx = report.shifts["rho"]["SPX"]
    assert spx[1] == joint.params["SPX"]["rho"] and spx[0] == float(individual["SPX"].params["rho"])


def test_clearly_different_rhos_are_reported_as_not_sharing():
    data = {name: surface(name, rho) for name, rho in zip(OWN, (-0.3, -0.6, -0.9))}
    cal = CrossAssetCalibrator([AssetClassSpec(n, 1.0, ["rho"]) for n in OWN])
    individual = cal.calibrate_individually(data)
    report = analyze_parameter_consistency(cal.calibrate(data, individual), individual)
    assert not report.supported and report.p_value < 1e-6
    assert report.cost_of_sharing > 10 and report.bic[1] > report.bic[0]
    assert "NOT supported" in report.verdict


def test_weights_pull_a_shared_value_toward_the_heavier_asset():
    data = {"SPX": surface("SPX", -0.3, noise=0), "SX5E": surface("SX5E", -0.8, noise=0)}

    def shared_rho(weight: float) -> float:
        specs = [AssetClassSpec("SPX", weight, ["rho"]), AssetClassSpec("SX5E", 1.0, ["rho"])]
        return CrossAssetCalibrator(specs).calibrate(data).params["SPX"]["rho"]

    # SX5E's vol-of-vol makes its smile far more sensitive to rho: at equal weights its rho
    # wins; SPX's must weigh ~1000x as much to win instead (measured: -0.798, -0.750, -0.302)
    even, more, most = shared_rho(1.0), shared_rho(20.0), shared_rho(1000.0)
    assert even == pytest.approx(-0.8, abs=0.01) and most == pytest.approx(-0.3, abs=0.01)
    assert even < more < most


def test_several_shared_parameters_and_the_block_jacobian_equal_the_dense_solve():
    data = {name: surface(name, -0.6, seed=5) for name in OWN}
    specs = [AssetClassSpec(n, 1.0 + i, ["rho", "kappa"]) for i, n in enumerate(OWN)]
    block = CrossAssetCalibrator(specs).calibrate(data)
    dense = CrossAssetCalibrator(specs, block_jacobian=False).calibrate(data)
    assert block.converged and dense.converged and block.n_free == 2 + 3 * 3
    assert len({p["kappa"] for p in block.params.values()}) == 1
    assert len({(p["v0"], p["theta"]) for p in block.params.values()}) == 3
    for name in OWN:
        for param, value in block.params[name].items():
            assert value == pytest.approx(dense.params[name][param], rel=1e-6), (name, param)
    assert block.loss == pytest.approx(dense.loss, rel=1e-9)


def test_bad_specs_and_missing_data_are_refused():
    with pytest.raises(ValueError, match="unknown shared_params"):
        AssetClassSpec("SPX", 1.0, ["correlation"])
    with pytest.raises(ValueError, match="two or more assets"):
        CrossAssetCalibrator([AssetClassSpec("SPX")])
    cal = CrossAssetCalibrator([AssetClassSpec("SPX", 1.0, ["rho"]), AssetClassSpec("NKY")])
    assert cal.shared == {}  # only one asset lists rho: nothing is shared
    with pytest.raises(ValueError, match=r"no surface for \['NKY'\]"):
        cal.calibrate({"SPX": surface("SPX", -0.6)})
