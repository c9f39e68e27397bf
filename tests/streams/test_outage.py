"""A broker out of reach is said in a few lines, every error counted."""

import logging

from streams.worker.outage import QuietOutage


def test_an_outage_is_said_once_every_30_s_and_when_it_ends(caplog):
    now = [0.0]
    quiet = QuietOutage(every=30.0, clock=lambda: now[0])
    conn = logging.getLogger("aiokafka.conn")
    conn.addFilter(quiet)
    try:
        with caplog.at_level(logging.INFO):
            conn.info("Connected to node 1")  # not an error: untouched
            for _ in range(3100):  # aiokafka: every 10 ms, 31 s long
                conn.error("Unable connect to node with id 1: [Errno 111] Connect call failed")
                now[0] += 0.01
            conn.error("Something else went wrong")  # not the broker's absence: untouched
            quiet.settle(logging.getLogger("volstream"))  # 0 s since the last: not yet
            now[0] += 5.0
            quiet.settle(logging.getLogger("volstream"))
            quiet.settle(logging.getLogger("volstream"))  # said once
    finally:
        conn.removeFilter(quiet)
    lines = [r.getMessage() for r in caplog.records]
    assert quiet.errors == 3100 and len(lines) == 5, lines
    assert lines[0] == "Connected to node 1"
    assert lines[1].startswith("the broker does not answer (Unable connect to node with id 1")
    assert lines[2].startswith("the broker still does not answer after 30 s (3000 errors")
    assert lines[3] == "Something else went wrong"
    assert lines[4] == "the broker answers again, after 31 s out of reach"
    assert caplog.records[1].levelname == "WARNING"
