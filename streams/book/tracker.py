"""The book and its calibrations stepped together in tick order, on one thread.

A tick is checked against the fits of every epoch its partition closed before it
(:mod:`streams.book.surfaces`), so each epoch's due smiles and surfaces are calibrated before
the next epoch's ticks are taken in. The :class:`Tracker` does both on the calibration thread,
a batch of validated rows at a time, and says what each partition's ticks are now reflected
up to (:class:`~streams.book.surfaces.Coverage`). Nothing here does I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from schemas import Params, QuoteColumns, RowProblem, WarmState
from streams.book.calibrations import Calibrations
from streams.book.surfaces import Coverage, Snapshot, SurfaceBook

__all__ = ["Step", "Tracker"]

log = logging.getLogger(__name__)


class Step(NamedTuple):
    """What one batch produced: the snapshots fitted and their results (in order), each
    partition's coverage after it, the snapshots whose calibration raised (a bug: said
    loudly, and the stream goes on; their smiles keep no fit, so their next tick is due), and
    the rows the book refused (:meth:`SurfaceBook.screen`: stale ticks)."""

    snapshots: list[Snapshot]
    results: list[Params]
    coverage: dict[int, Coverage]
    failed: list[tuple[Snapshot, Exception]]
    starts: list[WarmState]  # the state each result's fit started from (the audit archives it)
    refused: Sequence[RowProblem] = ()  # rows of the batch given to take, with why
    evicted: Sequence[str] = ()  # keys of the smiles and surfaces dropped: no quote for long

    @classmethod
    def none(cls) -> Step:
        """A step that took nothing and fitted nothing."""
        return cls([], [], {}, [], [])


class Tracker:
    def __init__(self, book: SurfaceBook, calibrations: Calibrations) -> None:
        self.book = book
        self.calibrations = calibrations

    def take(self, rows: QuoteColumns, partitions: np.ndarray, received_at: float) -> Step:
        """Take ``rows`` (valid, each partition's in its order; ``partitions`` per row) into
        the book, calibrating each epoch's due snapshots as it closes."""
        keep, refused = self.book.screen(rows, partitions)
        step = Step([], [], {}, [], [], refused)
        if refused:
            rows, partitions = rows.take(keep), partitions[keep]
        if rows.n:
            self.book.ingest(rows, partitions, received_at, lambda snaps: self._fit(snaps, step))
        for p in np.unique(partitions).tolist():
            step.coverage[p] = self.book.coverage(p)
        if self.book.evicted:
            step, self.book.evicted = step._replace(evicted=tuple(self.book.evicted)), []
        return step

    def flush(self, partitions: Iterable[int], quiet_until: float | None = None) -> Step:
        """Close the open epoch of ``partitions`` (quiet ones) and calibrate what is due;
        their coverage may then reach ``quiet_until``, the event time the stream reached."""
        step = Step([], [], {}, [], [])
        for p in partitions:
            self._fit(self.book.flush(p), step)
            step.coverage[p] = self.book.coverage(p, quiet_until)
        return step

    def _fit(self, snapshots: list[Snapshot], step: Step) -> None:
        if not snapshots:
            return
        try:
            results = self.calibrations.run(snapshots)
        except Exception as exc:
            log.exception("calibration of %d smiles failed", len(snapshots))
            step.failed.extend((snap, exc) for snap in snapshots)
            self.book.fitted(snapshots, [None] * len(snapshots))
            return
        self.book.fitted(snapshots, results)
        step.snapshots.extend(snapshots)
        step.results.extend(results)
        step.starts.extend(self.calibrations.starts)
