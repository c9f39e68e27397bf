"""The stream's current surfaces as a playbook source: what ``volstream playbook NAME
--stream`` and the worker's scheduled jobs run on.

:class:`BookSource` offers a book's smiles and surfaces (:meth:`SurfaceBook.current`) in the
form the jobs read (:class:`playbooks.jobs.Source`); :func:`streams.worker.readback.stream_source`
fills a book from the quotes topic for the command line. A stream's book holds today's quotes only: no prior dates, so model selection weighs no
out-of-sample criterion (its report says so).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from engine.sabr import atm_weights
from streams.book.calibrations import snapshot_surface
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot

__all__ = ["BookSource"]


class BookSource:
    """Playbook surfaces from snapshots of a book (:meth:`SurfaceBook.current`)."""

    def __init__(self, snapshots: Sequence[Snapshot], at: float) -> None:
        self.snapshots = list(snapshots)
        self.at = at

    @property
    def label(self) -> str:
        return "from the stream at " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.at))

    def _names(self, kind: type) -> list[str]:
        return sorted({s.underlying for s in self.snapshots if isinstance(s, kind)})

    def fx_smiles(self, pair: str) -> list[dict]:
        smiles = sorted(
            (s for s in self.snapshots if isinstance(s, SmileSnapshot) and s.underlying == pair),
            key=lambda s: s.time_to_expiry,
        )
        if not smiles:
            raise LookupError(
                f"no {pair} smile on the stream (it holds {self._names(SmileSnapshot)})"
            )
        return [
            {"forward": s.forward, "strikes": np.array(s.strikes), "maturities": s.time_to_expiry,
             "target_vols": np.array(s.vols), "weights": atm_weights(np.array(s.strikes), s.forward)}
            for s in smiles
        ]  # fmt: skip

    def index_surface(self, index: str) -> dict:
        for s in self.snapshots:
            if isinstance(s, SurfaceSnapshot) and s.underlying == index:
                return snapshot_surface(s).market_data()  # the playbooks' dict
        raise LookupError(
            f"no index {index!r} surface on the stream (it holds {self._names(SurfaceSnapshot)})"
        )

    def prior_surfaces(self, index: str) -> list[dict]:
        return []
