"""Bursts and breadth on the broker (issue 22, scenario 5), at a size for CI: a warm worker
sent 100,000 ticks of 500 underlyings (5,000 smiles) at once, spanning 10 minutes of event
time; half the names fall silent after 150 s. Every quote lies within its smile's fit, and
smiles are fitted again only every 10 minutes of event time (``VOLSTREAM_TRIGGER_AGE``): the
test is of taking ticks in, not of fitting (``bench/wide.py`` fits every 30 s). The lag drains, the worker stays up, and the
silent names' smiles are dropped from the book once unquoted for VOLSTREAM_EVICT_AFTER (300 s),
said in its log and metrics. ``bench/wide.py`` runs the full size (1,000,000 ticks of 5,000
underlyings, 50,000 smiles) and reports its figures in docs/reliability.md."""

import re
from pathlib import Path

import pytest

from bench.wide import burst

pytestmark = pytest.mark.kafka


def test_a_burst_across_5000_smiles_drains_and_silent_ones_are_dropped(kafka_bootstrap, tmp_path):
    got = burst(kafka_bootstrap, tmp_path, underlyings=500, expiries=10, ticks=100_000,
                seconds=600.0, evict_after=300.0, trigger_age=600.0)  # fmt: skip
    log = Path(got["log"]).read_text()
    print({k: v for k, v in got.items() if k != "log"})
    assert got["alive"], log[-3000:]
    assert got["consumed"] == got["ticks"] >= 100_000  # every tick taken, the lag drained
    assert (got["held"], got["dropped"]) == (2500, 2500), log[-3000:]
    said = re.findall(r"dropped (\d+) smiles and surfaces with no quote for 300 s", log)
    named = re.findall(r"W(\d{4})\|", "".join(x for x in log.splitlines() if "dropped" in x))
    assert sum(map(int, said)) == 2500 and named and all(int(n) < 250 for n in named)
    assert got["peak_rss_mb"] - got["rss_warm_mb"] < 1000, got  # the burst left no flood behind
