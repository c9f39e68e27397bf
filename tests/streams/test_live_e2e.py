"""The live page of a worker fed by a replay, in headless Chromium: it shows the fitted smile
through the replayed quotes and an alert raised during the replay (the identifiability rule,
its threshold lowered so that it fires); the screenshot is kept in test-artifacts/."""

import os
import subprocess
import time
import urllib.request
import uuid
from collections import defaultdict

import numpy as np
import pytest

from schemas import book_key
from streams.feed.replay import read_ticks
from streams.local.broker import free_port
from streams.worker.metrics import scrape
from tests.pages import keep, open_url
from tests.streams.test_stream_e2e import TICKS, VOLSTREAM, worker

pytestmark = pytest.mark.kafka

READY = """const s = window.volstreamLive;
return !!(s && s.detail && s.detail.slices.length && s.overview.alerts.length
          && Object.keys(s.overview.lags).length
          && document.querySelectorAll('#charts canvas').length);"""


def test_the_live_page_of_a_replayed_stream(kafka_bootstrap, tmp_path):
    prefix = f"live-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {"VOLSTREAM_ALERTS": "condition=1"}  # every fit's condition number is above 1
    with worker(kafka_bootstrap, prefix, f"{prefix}-g", tmp_path, tmp_path / "worker.log",
                metrics_port=port, more=env):  # fmt: skip
        sent = subprocess.run(
            [str(VOLSTREAM), "replay", "--max", "--quiet", "--bootstrap", kafka_bootstrap,
             str(TICKS)],
            capture_output=True, text=True, timeout=300,
            env=os.environ | {"VOLSTREAM_TOPIC_PREFIX": prefix},
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 180
        while True:  # the worker serves its page once its programs are loaded
            try:
                scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the worker never served its page"
                time.sleep(0.5)
        page = open_url(f"http://127.0.0.1:{port}/?u=EURUSD", READY, timeout=180, height=1500)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert b"volstream_calibrations_total" in r.read()  # the same endpoint
    keep("live-page-replay.png", page.screenshot)
    assert page.errors == [] and page.overflow <= 0
    live = page.live
    assert live["underlying"] == "EURUSD"
    assert "identifiability" in page.text and "alerts firing" in page.text
    assert "behind the newest quote" in page.text  # freshness: the watermarks' lag

    # each smile drawn: its quotes are replayed ticks of that smile, and the curve runs
    # through them within the fit's own error
    replayed = defaultdict(set)
    for q in read_ticks(TICKS):
        replayed[book_key(q.underlying, q.expiry)].add(round(q.strike, 6))
    for s in live["detail"]["slices"]:
        assert {round(k, 6) for k in s["strikes"]} <= replayed[s["key"]]
        at_quotes = np.interp(s["strikes"], s["curve_strikes"], s["curve_vols"])
        misfit = np.sqrt(np.mean((at_quotes - np.array(s["vols"])) ** 2))  # vol points
        assert misfit * 100 < 3 * s["rmse_bp"] + 5, s["key"]
