"""What `volstream tail` prints of a message."""

from streams.feed.tail import describe
from tests.alerts.test_rules import calm, params, run


def test_tail_shows_an_alerts_state_and_its_runbook():
    (fired,), health = run([[p] for p in calm()] + [[params(converged=False)]])
    assert describe(fired).startswith("[CRITICAL] not_converged EURUSD 2027-11-25 sabr: ")
    assert "(runbook: Calibration Failure Response" in describe(fired)
    (resolved,), _ = run([[params()]], health, now=99.0)
    assert describe(resolved) == (
        "[CRITICAL resolved] not_converged EURUSD 2027-11-25 sabr: not_converged cleared"
    )
