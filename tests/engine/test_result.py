"""CalibrationResult is a pytree: its batch and row views come from the tree, so a field
added to the result travels through rows, batches and merges without a line more."""

import dataclasses

import jax
import numpy as np

from bench.smiles import fx_smiles
from engine.result import CalibrationResult
from engine.sabr import SABRCalibrator


def _batch(n: int = 4, seed: int = 5) -> CalibrationResult:
    d = fx_smiles(n, n_strikes=9, beta=0.5, seed=seed)
    prior = {k: d["params"][k] for k in ("alpha", "rho", "nu")}
    return SABRCalibrator().calibrate_batch(
        d["forward"], d["expiry"], d["strikes"], d["vols"], prior=prior, history=True
    )


def _same(a: CalibrationResult, b: CalibrationResult) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_every_field_but_the_static_ones_is_a_leaf():
    res = _batch()
    data = {f.name for f in dataclasses.fields(res)} - {"sensitivity_params", "model"}
    leaves = jax.tree_util.tree_leaves_with_path(res)
    named = {str(path[0]).strip(".") for path, _ in leaves}
    assert named == data - {"sensitivities"}  # None (not asked for) has no leaves
    # a gate's figures are leaves, its threshold and description stay whole
    one = res.rows(2)
    assert one.gates["rmse"].description == res.gates["rmse"].description
    assert one.gates["rmse"].threshold == res.gates["rmse"].threshold


def test_a_row_is_what_the_batch_holds_there_and_a_batch_of_one_is_its_inverse():
    res = _batch()
    row = res.smile(1)
    assert row.batch_size is None and row.model == "sabr"
    assert float(row.params["nu"]) == float(res.params["nu"][1])
    assert row.gate_verdicts() == res.rows(slice(1, 2)).smile(0).gate_verdicts()
    _same(row.as_batch(), res.rows(np.array([1])))


def test_merging_rows_replaces_those_rows_and_only_those():
    res, other = _batch(seed=5), _batch(seed=6)
    merged = res.with_rows(np.array([0, 3]), other.rows(np.array([2, 1])))
    _same(merged.rows(0), other.rows(2))
    _same(merged.rows(3), other.rows(1))
    _same(merged.rows(np.array([1, 2])), res.rows(np.array([1, 2])))
    assert not np.shares_memory(merged.loss, res.loss)  # a copy: res is unchanged
