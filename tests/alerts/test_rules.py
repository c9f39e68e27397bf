"""Health rules: each fires on a case built to trigger it and stays silent on a clean stream;
an alert fires once while its condition lasts and resolves once when it clears; one bad key
never makes a storm."""

import numpy as np
import pytest

from alerts import (
    AlertConfig,
    Health,
    consumer_lag,
    evaluate,
    model_failures,
    stale_keys,
    threshold,
)
from schemas import Alert, Params, decode, encode

RMSE_GATE = {"verdict": "pass", "value": 1e-4, "threshold": 0.005}


def params(converged=True, gates=None, alpha=0.1, rmse=1e-4, condition=50.0, expiry="2027-11-25",
           end=1.7e9):  # fmt: skip
    return Params(
        underlying="EURUSD",
        expiry=expiry,
        model="sabr",
        params={"alpha": alpha, "beta": 0.5, "rho": -0.1, "nu": 0.6},
        forward=1.1,
        time_to_expiry=1.0,
        converged=converged,
        status="converged" if converged else "max steps",
        warm=True,
        iterations=4,
        rmse=rmse,
        gates=gates or {"rmse": RMSE_GATE},
        diagnostics={"condition_number": condition},
        window_start=end,
        window_end=end,
        n_quotes=15,
        received_at=0.0,
        published_at=0.0,
    )


def calm(n=25, seed=0):
    """Good fits that wander a little: a clean stream's history."""
    rng = np.random.default_rng(seed)
    return [params(alpha=0.1 + 0.002 * rng.standard_normal(), rmse=1e-4 * (1 + 0.2 * rng.random()))
            for _ in range(n)]  # fmt: skip


def run(batches, health=None, config=None, now=1.0):
    """Each batch through evaluate; every alert, in order, and the health after."""
    health, out = health or Health(), []
    for i, batch in enumerate(batches):
        found, health = evaluate(health, batch, now + i, config=config)
        out += [a for alerts in found for a in alerts]
    return out, health


def test_a_clean_stream_raises_nothing():
    alerts, health = run([[p] for p in calm(60)])
    assert alerts == [] and health.held_total == 0


@pytest.mark.parametrize(
    "bad, rule, severity",
    [
        (params(converged=False), "not_converged", "critical"),
        (params(gates={"rmse": {"verdict": "fail", "value": 0.01, "threshold": 0.005}}),
         "gate.rmse", "warning"),
        (params(rmse=5e-4), "rmse_p95", "warning"),
        (params(alpha=0.2), "drift", "warning"),
        (params(condition=800.0), "identifiability", "warning"),
    ],
)  # fmt: skip
def test_each_fit_rule_fires_once_while_it_lasts_and_resolves_once(bad, rule, severity):
    alerts, health = run([[p] for p in calm()] + [[bad], [bad], [bad]])
    (fired,) = alerts
    assert (fired.rule, fired.severity, fired.state, fired.key) == (
        rule, severity, "firing", "EURUSD|2027-11-25")  # fmt: skip
    assert fired.runbook and fired.message
    assert decode(encode(fired), Alert) == fired  # on the wire as it is
    resolved, health = run([[params()], [params()]], health, now=10.0)
    assert [(a.rule, a.state) for a in resolved] == [(rule, "resolved")]
    assert health.keys["EURUSD|2027-11-25"].firing == frozenset()


def test_drift_carries_the_diagnosis_and_waits_for_history():
    early, _ = run([[p] for p in calm(5)] + [[params(alpha=0.5)]])
    assert early == []  # five fits are no history
    strikes = [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3]
    quiet = [0.10, 0.098, 0.097, 0.097, 0.098, 0.1, 0.102]
    health = Health()
    for p in calm():
        _, health = evaluate(health, [p], 1.0, [(strikes, quiet)])
    moved = list(quiet)
    moved[1] += 0.02  # a bad quote at 1.05, and a smaller move at 1.3
    moved[6] -= 0.005
    prior = dict(health.keys["EURUSD|2027-11-25"].prior)
    ((alert,),), _ = evaluate(health, [params(alpha=0.2)], 2.0, [([*strikes[:-1], 1.35], moved)])
    assert alert.rule == "drift" and alert.figures["alpha.z"] > 3
    assert "alpha z=" in alert.message and "rho.z" not in alert.figures
    assert {k[6:]: v for k, v in alert.figures.items() if k.startswith("prior.")} == prior
    moves = {k: v for k, v in alert.figures.items() if k.startswith("moved.")}
    assert next(iter(moves)) == "moved.1.05" and moves["moved.1.05"] == pytest.approx(0.02)
    assert "moved.1.35" not in moves and len(moves) == 5  # five of the six common strikes


def test_a_flagged_fit_leaves_the_windows_and_the_quality_rules_alone():
    _, health = run([[p] for p in calm()])
    before = health.keys["EURUSD|2027-11-25"]
    alerts, after = run([[params(converged=False, alpha=5.0, rmse=1.0)]], health)
    assert [a.rule for a in alerts] == ["not_converged"]
    history = after.keys["EURUSD|2027-11-25"]
    assert history.params == before.params and history.rmse == before.rmse
    assert history.failed[-1] and not any(history.failed[:-1])


def test_a_storm_is_bounded_per_key_and_what_it_held_back_is_counted():
    config = AlertConfig(per_minute=2)
    gates = {n: {"verdict": "fail", "value": 1.0, "threshold": 0.5} for n in ("a", "b", "c")}
    # one result fails three gates and does not converge: four conditions start at once
    alerts, health = run([[params(converged=False, gates=gates)]], config=config)
    assert len(alerts) == 2 and health.held_total == 2 and health.held["EURUSD|2027-11-25"] == 2
    # another key is not held back by this one
    other, health = run([[params(converged=False, expiry="2028-01-20")]], health, config)
    assert [a.key for a in other] == ["EURUSD|2028-01-20"]
    # a minute later the held ones fire, the first saying how many were held back
    later, health = run([[params(converged=False, gates=gates)]], health, config, now=70.0)
    assert [a.state for a in later] == ["firing", "firing"]
    assert later[0].figures["suppressed"] == 2.0 and "suppressed" not in later[1].figures
    assert health.held == {} and health.held_total == 2


def test_a_models_failure_rate_fires_above_one_percent():
    config = AlertConfig(min_outcomes=100, outcomes=50)
    fits = [params(expiry=f"2027-{m:02d}-20") for m in range(1, 13)] * 10  # 120 good fits
    alerts, health = run([fits], config=config)
    assert alerts == []
    failing = [params(converged=False, expiry="2027-01-20"), params(converged=False)]
    alerts, health = run([failing], health, config)
    fired = [a for a in alerts if a.rule == "failure_rate"]
    assert [(a.key, a.state, a.severity) for a in fired] == [("sabr", "firing", "critical")]
    assert fired[0].figures["rate"] == pytest.approx(2 / 122)
    # the failures leave the keys' windows as good fits follow: it resolves once
    again, health = run([fits[:2] * 50], health, config)
    assert [(a.rule, a.state) for a in again if a.rule == "failure_rate"] == [
        ("failure_rate", "resolved")
    ]
    assert model_failures(health, "heston", 5.0, config)[0] == []  # no heston fits known


def test_unread_quotes_fire_and_so_does_a_broker_that_does_not_answer():
    config = AlertConfig(consumer_lag=1000, unreachable=10.0)
    unread = {"q|0": 10.0, "q|1": 5000.0}
    alerts, health = consumer_lag(Health(), unread, 0.0, 1.0, config)
    assert [(a.key, a.state) for a in alerts] == [("q|1", "firing")]
    assert "5000 messages above 1000" in alerts[0].message
    # the broker silent 8 s: not yet judged; 12 s: every partition's lag is unknown, firing
    assert consumer_lag(health, unread, 8.0, 2.0, config)[0] == []
    alerts, health = consumer_lag(health, unread, 12.0, 3.0, config)
    assert [(a.key, a.state, a.rule) for a in alerts] == [("q|0", "firing", "consumer_lag")]
    assert alerts[0].message == "quotes not read for 12 s: the broker does not answer"
    assert consumer_lag(health, unread, 40.0, 4.0, config)[0] == []  # fired once
    # it answers again and the quotes are read: both resolve
    alerts, health = consumer_lag(health, {"q|0": 0.0, "q|1": 3.0}, 0.0, 5.0, config)
    assert sorted((a.key, a.state) for a in alerts) == [("q|0", "resolved"), ("q|1", "resolved")]


def test_a_lagging_partition_and_a_stale_key_fire_and_resolve():
    config = AlertConfig(freshness=2.0, stale_after=120.0)
    health = Health()
    lags = {"q|0": 0.1, "q|1": 5.0}
    alerts, health = threshold(health, "freshness", lags, config.freshness, 1.0, config, " s")
    assert [(a.key, a.state) for a in alerts] == [("q|1", "firing")] and "5 s" in alerts[0].message
    assert threshold(health, "freshness", lags, config.freshness, 2.0, config)[0] == []
    alerts, health = threshold(health, "freshness", {"q|1": 0.5}, config.freshness, 3.0, config)
    assert [(a.key, a.state) for a in alerts] == [("q|1", "resolved")]
    _, health = run([[params(end=1.7e9)]], health)
    quoted = {"EURUSD|2027-11-25": 1.7e9 + 200.0, "EURUSD|2099-01-01": 1.7e9 + 200.0}
    alerts, health = stale_keys(health, quoted, 4.0, config)
    assert [(a.rule, a.key, a.state) for a in alerts] == [("stale", "EURUSD|2027-11-25", "firing")]
    _, health = run([[params(end=1.7e9 + 190.0)]], health)
    alerts, health = stale_keys(health, quoted, 5.0, config)
    assert [(a.rule, a.state) for a in alerts] == [("stale", "resolved")]


def test_thresholds_are_configurable():
    bad = [[params(condition=800.0, alpha=0.115)]]
    assert {a.rule for a in run([[p] for p in calm()] + bad)[0]} == {"identifiability", "drift"}
    quiet, _ = run([[p] for p in calm()] + bad, config=AlertConfig(condition=1000.0, z=20.0))
    assert quiet == []
