"""Failed fits walk the failure runbook (:mod:`engine.runbook`) on a thread of their own,
never holding the stream up, at most once per ``cooldown`` seconds (wall clock) a smile or
surface. The outcome is an alert (:func:`alerts.runbook_alert`) and an audit record on the
key's runbook chain (:func:`schemas.runbook_key`): the params topic, and the key's own chain,
keep exactly one result per snapshot, a pure function of the quotes, so replays stay
bit-identical.

A fit flagged by the stability gate alone does not walk it: its steps (other starts, more
steps, another optimizer, a simpler model) mend a fit that failed, while a parameter that moved
more than the gate allows is news about the market or a weakly pinned parameter, which its
``gate.stability`` alert reports. In a realistic stream (bench/stream.py: quotes noisy inside their
bid-ask) about one refit in ten moves nu by more than 20%, and walking the runbook for each
took more of a 2-core machine than the stream itself."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from alerts import runbook_alert
from schemas import Alert, Params
from streams.book.calibrations import Calibrations
from streams.book.surfaces import Snapshot
from streams.worker.counters import Counters

__all__ = ["Runbooks"]

log = logging.getLogger(__name__)

Send = Callable[[list[Alert]], Awaitable[None]]  # alerts, awaited to delivery


def _mendable(message: Params) -> bool:
    """Whether the runbook's steps answer this result: it failed a gate besides stability."""
    failed = {name for name, gate in message.gates.items() if gate.get("verdict") == "fail"}
    return not message.good and (not message.converged or bool(failed - {"stability"}))


class Runbooks:
    def __init__(
        self,
        calibrations: Calibrations,
        cooldown: float,
        send_alerts: Send,
        counters: Counters,
        clock: Callable[[], float],
        record: Callable[[Params, Snapshot], Awaitable[None]] | None = None,
    ) -> None:
        self.calibrations = calibrations
        self.record = record  # the fix's audit record (None: the audit trail is off)
        self.cooldown = cooldown
        self.send_alerts = send_alerts
        self.counters = counters
        self.clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="runbook")
        self._running: dict[str, asyncio.Future] = {}  # key -> its runbook in flight
        self._started: dict[str, float] = {}  # key -> when its last runbook started

    def start(self, snapshots: Sequence[Snapshot], results: Sequence[Params]) -> None:
        """Start the runbook on each failed result whose smile is out of its cooldown."""
        if self.cooldown <= 0:
            return
        now = self.clock()
        for snap, message in zip(snapshots, results):
            key = message.key
            due = now - self._started.get(key, -math.inf) >= self.cooldown
            if _mendable(message) and key not in self._running and due:
                self._started[key] = now
                self._running[key] = asyncio.ensure_future(self._walk(snap))

    async def _walk(self, snap: Snapshot) -> None:
        loop = asyncio.get_running_loop()
        try:
            fix, outcome = await loop.run_in_executor(self._thread, self.calibrations.runbook, snap)
        except Exception:  # a bug must not stop the stream
            log.exception("the runbook on %s raised", snap.key)
            self.counters.errors += 1
            return
        finally:
            self._running.pop(snap.key, None)
        self.counters.runbooks[outcome.step or "escalated"] += 1
        self.counters.alerts += 1
        alert = runbook_alert(
            self.clock(),
            fix,
            outcome.summary(),
            outcome.step_index,
            len(outcome.attempts),
            outcome.escalate,
        )
        await self.send_alerts([alert])
        if self.record is not None:
            await self.record(fix, snap)

    async def done(self) -> None:
        """Wait for every runbook in flight (tests, and a worker that stops)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
