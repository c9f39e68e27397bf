"""A broker out of reach, said in a few lines: aiokafka logs every failed attempt of every
client (a broker stopped for 30 s gave 3,257 ERROR lines, ~100 a second: "Unable connect to
node", "Failed fetch messages", "Unable to update metadata", ...), which buried everything else
a worker had to say. :class:`QuietOutage` lets the first through as one line saying what
happens, then one every ``every`` seconds with the count held back, and says when the broker
answers again (:meth:`QuietOutage.settle`, from the worker's once-a-second health timer); every
error is counted (``volstream_broker_errors_total``). Other aiokafka messages pass unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["LOGGERS", "QuietOutage"]

LOGGERS = (  # aiokafka's loggers that report a broker out of reach
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
)
SIGNS = (  # what their messages say when the broker does not answer
    "Unable connect to node",
    "Connect call failed",
    "NodeNotReadyError",
    "KafkaConnectionError",
    "Unable to update metadata",
    "Unable to request metadata",
    "coordinator dead",
    "Heartbeat",
    "RequestTimedOutError",
)
QUIET_S = 5.0  # no such error for this long: the broker answers again


class QuietOutage(logging.Filter):
    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every = every
        self.clock = clock
        self.errors = 0  # every broker error seen, said or not
        self._since: float | None = None  # when the outage began (None: none)
        self._said = self._last = 0.0
        self._held = 0

    def install(self) -> QuietOutage:
        """Filter :data:`LOGGERS` (a logger's filter sees only its own records)."""
        for name in LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if not any(sign in message for sign in SIGNS):
            return True
        now = self.clock()
        self.errors += 1
        self._last = now
        if self._since is None:
            self._since, self._said, self._held = now, now, 0
            self._say(record, "the broker does not answer (%s); retrying, its errors counted in "
                      "volstream_broker_errors_total and said every %.0f s", message, self.every)  # fmt: skip
            return True
        if now - self._said >= self.every:
            self._said, held, self._held = now, self._held, 0
            self._say(record, "the broker still does not answer after %.0f s (%d errors since "
                      "the last line; the latest: %s)", now - self._since, held + 1, message)  # fmt: skip
            return True
        self._held += 1
        return False

    def silent(self) -> float:
        """Seconds since the outage began (0: the broker answers)."""
        return 0.0 if self._since is None else self.clock() - self._since

    def settle(self, log: logging.Logger) -> None:
        """Say the outage is over once no broker error came for ``QUIET_S`` seconds."""
        if self._since is not None and self.clock() - self._last >= QUIET_S:
            log.warning("the broker answers again, after %.0f s out of reach",
                        self._last - self._since)  # fmt: skip
            self._since = None

    @staticmethod
    def _say(record: logging.LogRecord, msg: str, *args) -> None:
        record.msg, record.args = msg, args
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
