"""Material changes: a parameter's move (relative, with a floor), an RMSE jump (with a floor)
and a failed gate each make a fit material; small changes and a key's first good fit do not."""

from audit import Materiality, material_changes

RULES = Materiality(move=0.5, floor=0.1, rmse_jump=3.0, rmse_floor=1e-4)
APPROVED = {"alpha": 0.10, "rho": 0.02, "nu": 0.50, "rmse": 2e-4}


def test_small_changes_are_not_material():
    now = {"alpha": 0.12, "rho": 0.06, "nu": 0.70}  # 20%, 40% of the floor, 40%
    assert material_changes(now, 3e-4, [], APPROVED, RULES) == []


def test_a_large_move_names_the_parameter_and_its_size():
    (why,) = material_changes({"alpha": 0.16, "rho": 0.02, "nu": 0.5}, 2e-4, [], APPROVED, RULES)
    assert why.startswith("alpha moved 0.1 -> 0.16 (60% > 50%)")


def test_the_floor_keeps_a_parameter_near_zero_from_counting_every_tick():
    # rho 0.02 -> 0.06 is +200% of itself but 40% of the floor (0.1): not material
    assert material_changes({"rho": 0.06}, None, [], APPROVED, RULES) == []
    assert material_changes({"rho": 0.08}, None, [], APPROVED, RULES)  # 60% of the floor


def test_an_rmse_jump_counts_above_its_floor_only():
    (why,) = material_changes({}, 7e-4, [], APPROVED, RULES)
    assert "RMSE 2.00 -> 7.00 bp" in why
    tiny = {"rmse": 1e-5}
    assert material_changes({}, 5e-5, [], tiny, RULES) == []  # 5x, but under 1 bp


def test_a_failed_gate_is_material_even_on_a_first_fit_unless_turned_off():
    assert material_changes({"alpha": 9.0}, 1.0, [], None, RULES) == []  # first fit, clean
    (why,) = material_changes({"alpha": 0.1}, 2e-4, ["stability", "arbitrage"], None, RULES)
    assert why == "failed gate(s) arbitrage, stability"
    off = Materiality(failed_gate=False)
    assert material_changes({}, None, ["stability"], APPROVED, off) == []
