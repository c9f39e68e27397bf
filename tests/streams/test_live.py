"""The live page: what the worker keeps for it as it publishes (fitted curves checked against
QuantLib's SABR formula and against the quotes they were fitted to), and the page itself in
headless Chromium with 500 smiles: every row listed, the charts drawn, no draw long enough to
freeze the browser, no error, nothing off the window."""

import math

import numpy as np
import pytest
import QuantLib as ql
from prometheus_client import CollectorRegistry

from schemas import Alert, Params, encode
from streams.book.surfaces import SmileSnapshot
from streams.feed.simulate import TickSimulator
from streams.live.server import serve
from streams.live.view import LiveView
from streams.local.broker import free_port
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.pages import keep, open_url
from tests.streams.memory import Memory, feed

T0 = 1.795e9


@pytest.fixture(scope="module")
def fitted():
    """A pipeline's live view after a simulated stream of FX smiles and index surfaces."""
    sim = TickSimulator(pairs=2, tenors=(30, 91), indices=1, seed=9)
    quotes = list(sim.ticks(T0, rate=400, count=1200))
    pipe = Pipeline(Settings(topic_prefix="t"), Memory(), clock=lambda: T0 + 100)

    feed(pipe, [encode(q) for q in quotes], 100, T0)
    return pipe.live


def test_the_overview_lists_every_key_with_its_latest_fit(fitted):
    o = fitted.overview()
    keys = [r["key"] for r in o["rows"]]
    assert len(keys) == 5 and sum(k.endswith("|surface") for k in keys) == 1
    assert all(r["rmse_bp"] is not None and r["rmse_bp"] < 50 for r in o["rows"])


def test_a_smiles_curve_is_hagans_sabr_vol(fitted):
    d = fitted.detail("EURUSD")
    assert len(d["slices"]) == 2 and set(d["history"]) == {s["key"] for s in d["slices"]}
    for s in d["slices"]:
        (row,) = [r for r in fitted.overview()["rows"] if r["key"] == s["key"]]
        p = row["params"]
        t = fitted._latest[s["key"]][0].time_to_expiry
        ref = [100 * ql.sabrVolatility(k, s["forward"], t, p["alpha"], p["beta"], p["nu"],
                                       p["rho"]) for k in s["curve_strikes"]]  # fmt: skip
        np.testing.assert_allclose(s["curve_vols"], ref, rtol=1e-9)
        # and it runs through the quotes it was fitted to (within the fit's own error)
        at_quotes = np.interp(s["strikes"], s["curve_strikes"], s["curve_vols"])
        misfit = math.sqrt(np.mean((at_quotes - np.array(s["vols"])) ** 2))  # vol points
        assert misfit * 100 < 3 * s["rmse_bp"] + 5


def test_a_surfaces_slices_run_through_their_quotes(fitted):
    (underlying,) = {r["underlying"] for r in fitted.overview()["rows"] if r["model"] == "heston"}
    slices = fitted.detail(underlying)["slices"]
    assert len(slices) == 2  # one per expiry (the simulator's two tenors)
    for s in slices:
        assert len(s["curve_strikes"]) > 20 and s["strikes"]
        k = np.array(s["strikes"])
        inside = (k > min(s["curve_strikes"])) & (k < max(s["curve_strikes"]))
        at_quotes = np.interp(k[inside], s["curve_strikes"], s["curve_vols"])
        misfit = math.sqrt(np.mean((at_quotes - np.array(s["vols"])[inside]) ** 2))
        assert misfit * 100 < 3 * s["rmse_bp"] + 10


def test_alerts_stay_until_resolved_and_notices_are_listed():
    view = LiveView()
    fire = Alert(T0, "warning", "drift", "EURUSD 2027-01-01 sabr", "rho z=4", {}, "EURUSD|2027-01-01", "firing", "check")  # fmt: skip
    view.alerted([fire])
    assert [a["rule"] for a in view.overview()["alerts"]] == ["drift"]
    view.alerted([Alert(T0 + 1, "info", "drift", fire.subject, "ok", {}, fire.key, "resolved")])
    assert view.overview()["alerts"] == []
    view.alerted([Alert(T0 + 2, "info", "runbook", fire.subject, "fixed", {}, fire.key)])
    assert [a["message"] for a in view.overview()["notices"]] == ["fixed"]


def many_smiles(n: int = 500) -> LiveView:
    """``n`` SABR smiles (50 pairs x 10 tenors) as the page would get them, parameters and
    quotes made up (the page's load is what is measured, not the fits)."""
    from engine.model_values import quote_checks

    view = LiveView()
    rng = np.random.default_rng(1)
    snaps, params = [], []
    for i in range(n):
        pair, tenor = f"P{i // 10:02d}XYZ", i % 10
        t, f = 0.1 + 0.2 * tenor, 1.0 + 0.01 * (i // 10)
        p = {"alpha": 0.1 + 0.01 * rng.random(), "beta": 0.5, "rho": -0.2, "nu": 0.6}
        k = f * np.exp(np.linspace(-0.2, 0.2, 15))
        vols, _, _ = quote_checks(k, f, t, p["alpha"], 0.5, p["rho"], p["nu"], np.nan, np.nan,
                                  np.nan, np.nan, True, priced=np.zeros(k.size, bool))  # fmt: skip
        expiry = f"2027-{1 + tenor:02d}-15"
        snaps.append(SmileSnapshot(pair, "fx", expiry, f, t, tuple(k), tuple(vols + 1e-4 *
                                   rng.standard_normal(k.size)), T0, T0 + 1, 0, T0))  # fmt: skip
        gates = {"rmse": {"verdict": "pass", "value": 1e-4, "threshold": 1e-3}}
        params.append(Params(pair, expiry, "sabr", p, f, t, True, "converged", True, 12, 1e-4,
                             gates, {}, T0, T0 + 1, 15, T0, T0 + 0.05))  # fmt: skip
    for _ in range(3):  # a little history
        view.fitted(snaps, params)
    return view


def test_the_page_with_500_smiles_in_chromium():
    view = many_smiles()
    port = serve(CollectorRegistry(), view, "127.0.0.1", free_port())
    ready = ("const s = window.volstreamLive; return !!(s && s.detail && s.renders.length >= 3 "
             "&& document.querySelectorAll('#charts canvas').length)")  # fmt: skip
    page = open_url(f"http://127.0.0.1:{port}/", ready, height=1400)
    keep("live-page-500-smiles.png", page.screenshot)
    assert page.errors == [] and page.overflow <= 0
    assert page.title == page.h1 == "volstream live"
    assert "500 smiles and surfaces" in page.text
    table = page.tables[-1]
    assert table["rows"] == 501  # a header and every smile
    assert page.live["underlying"] == "P00XYZ" and len(page.live["detail"]["slices"]) == 10
    renders = page.live["renders"]  # ms of main-thread work a refresh: never a frozen page
    assert max(renders) < 1000 and sorted(renders)[len(renders) // 2] < 250, renders
