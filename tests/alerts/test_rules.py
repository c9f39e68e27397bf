"""Health rules: gate failures, non-convergence, drift z-scores."""

import pytest

from alerts import History, drift_alerts, evaluate, gate_alerts
from schemas import Params


def params(converged=True, gates=None, alpha=0.1):
    return Params(
        underlying="EURUSD",
        expiry="2027-11-25",
        model="sabr",
        params={"alpha": alpha, "beta": 0.5, "rho": -0.1, "nu": 0.6},
        forward=1.1,
        time_to_expiry=1.0,
        converged=converged,
        status="converged" if converged else "max steps",
        warm=True,
        iterations=4,
        rmse=1e-4,
        gates=gates or {"rmse": {"verdict": "pass", "value": 1e-4, "threshold": 0.005}},
        diagnostics={},
        window_start=1.7e9,
        window_end=1.7e9,
        n_quotes=15,
        received_at=0.0,
        published_at=0.0,
    )


def test_failed_gates_warn_and_non_convergence_is_critical():
    failing = {
        "rmse": {"verdict": "fail", "value": 0.01, "threshold": 0.005},
        "feller": {"verdict": "n/a", "value": None, "threshold": None},
    }
    alerts = gate_alerts(params(gates=failing), now=5.0)
    assert [(a.severity, a.rule) for a in alerts] == [("warning", "gate.rmse")]
    assert alerts[0].figures == {"value": 0.01, "threshold": 0.005}
    critical = gate_alerts(params(converged=False), now=5.0)
    assert [(a.severity, a.rule) for a in critical] == [("critical", "not_converged")]
    assert gate_alerts(params(), now=5.0) == []


def test_drift_fires_beyond_three_sigma_after_enough_history():
    history = History()
    for i in range(25):
        alerts, history = drift_alerts(history, params(alpha=0.1 + 0.001 * (i % 5)), now=1.0)
        assert alerts == []
    alerts, history = drift_alerts(history, params(alpha=0.2), now=2.0)
    assert [a.rule for a in alerts] == ["drift"] and alerts[0].figures["z"] > 3
    before = history
    (alerts,), after = evaluate(history, [params(converged=False, alpha=5.0)], now=3.0)
    assert [a.rule for a in alerts] == ["not_converged"] and after == before  # bad fits: no update
    # a batch is the results one after the other: the same alerts and history
    batch = [params(alpha=0.1), params(alpha=0.3), params(alpha=0.1)]
    found, together = evaluate(history, batch, now=4.0)
    one_by_one = history
    for p, alerts in zip(batch, found):
        expected, one_by_one = drift_alerts(one_by_one, p, now=4.0)
        assert alerts == gate_alerts(p, now=4.0) + expected
    assert together == one_by_one and any(found)


def test_a_drift_alert_carries_the_prior_fit_and_the_quotes_that_moved():
    strikes = [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3]
    calm = [0.10, 0.098, 0.097, 0.097, 0.098, 0.1, 0.102]
    history = History()
    for i in range(25):
        _, history = drift_alerts(
            history, params(alpha=0.1 + 0.001 * (i % 5)), now=1.0, quotes=(strikes, calm)
        )
    prior = dict(history.last[params().key][0])
    moved = list(calm)
    moved[1] += 0.02  # a bad quote at 1.05, and a smaller move at 1.3
    moved[6] -= 0.005
    (alert,), _ = drift_alerts(
        history, params(alpha=0.2), now=2.0, quotes=([*strikes[:-1], 1.35], moved)
    )
    assert alert.rule == "drift"
    assert {k: v for k, v in alert.figures.items() if k.startswith("prior.")} == {
        f"prior.{k}": v for k, v in prior.items()
    }
    moves = {k: v for k, v in alert.figures.items() if k.startswith("moved.")}
    assert next(iter(moves)) == "moved.1.05" and moves["moved.1.05"] == pytest.approx(0.02)
    assert "moved.1.3" not in moves and "moved.1.35" not in moves  # quoted in one fit only
    assert len(moves) == 5  # the five largest of the six common strikes
