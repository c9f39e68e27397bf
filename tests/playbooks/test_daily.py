"""The daily report from what a stream published: counts, percentiles and moves checked
against the messages themselves, the page in headless Chromium (every plot shown, its text on
its canvas), and the report of a day without calibrations refused."""

import datetime as dt

import numpy as np
import pytest

from alerts import AlertConfig
from playbooks.daily import daily_report, day_of, write_daily
from schemas import Alert, Params, Watermark, decode, encode
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.pages import check_report, keep, open_page
from tests.streams.memory import Memory, feed

T0 = 1.795e9
NOW = 1.8e9  # the wall clock of publication: 2027-01-15


@pytest.fixture(scope="module")
def published():
    sim = TickSimulator(pairs=1, tenors=(30, 91), indices=1, seed=2, jump_every=3.0)
    quotes = list(sim.ticks(T0, rate=300, count=900))
    sink = Memory()
    settings = Settings(topic_prefix="d", alerts=AlertConfig(condition=1.0))  # alerts fire
    pipe = Pipeline(settings, sink, clock=lambda: NOW)

    feed(pipe, [encode(q) for q in quotes], 60, NOW - 0.05)
    out = {kind: [decode(v, cls) for _, v in sink.sent[f"d.{kind}"]]
           for kind, cls in (("params", Params), ("alerts", Alert), ("watermarks", Watermark))}  # fmt: skip
    return out


def test_the_report_counts_what_was_published(published):
    params, alerts, marks = published["params"], published["alerts"], published["watermarks"]
    day = day_of(NOW)
    assert day == dt.date(2027, 1, 15)
    r = daily_report(day, params, alerts, marks)
    keys = {p.key for p in params}
    assert r.lines[0].startswith(f"{len(params):,} calibrations of {len(keys)} smiles")
    (sabr,) = [row for row in r.tables["by model"] if row["model"] == "sabr"]
    mine = [p for p in params if p.model == "sabr"]
    assert sabr["calibrations"] == len(mine)
    p50, p95, p99 = (float(x) for x in sabr["RMSE p50 / p95 / p99, bp"].split(" / "))
    assert p50 == pytest.approx(np.median([1e4 * p.rmse for p in mine]), abs=0.006)
    assert p50 <= p95 <= p99
    fired = sum(a.state == "firing" for a in alerts)
    assert fired and f"Alerts: {fired:,} fired" in " ".join(r.lines)
    (row,) = [x for x in r.tables["alerts by rule"] if x["rule"] == "identifiability"]
    assert row["fired"] == sum(a.rule == "identifiability" and a.state == "firing" for a in alerts)
    assert sum(r.hourly["good"]) + sum(r.hourly["flagged"]) + sum(r.hourly["not converged"]) == len(
        params
    )
    # the largest move: a key's first and last good fit, as listed
    top = r.tables["largest parameter moves over the day"][0]
    good = [p for p in params if p.good and p.key == top["smile or surface"]]
    first, last = good[0].params[top["parameter"]], good[-1].params[top["parameter"]]
    assert (top["first"], top["last"]) == (first, last)
    assert top["move, %"] == pytest.approx(100 * (last - first) / max(abs(first), 0.1), abs=0.005)
    assert r.freshness_s.size == len(marks)


def test_the_report_page_in_chromium(published, tmp_path):
    r = daily_report(day_of(NOW), published["params"], published["alerts"], published["watermarks"])
    page = open_page(write_daily(r, tmp_path).parent)
    check_report(page, tmp_path)  # every PNG shown; tables; nothing off the window; no error
    keep("daily-report.png", page.screenshot)
    assert "success rate" in page.text.lower() and "bp" in page.text
    assert page.title == "volstream daily report: 2027-01-15 (UTC)"
