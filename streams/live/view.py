"""What the live page shows, kept as the worker publishes: each smile's or surface's latest
quotes as fitted with the parameters fitted to them, a short parameter history, the alerts
(firing until resolved, and recent notices) and the stream's freshness.

The pipeline updates it on the event loop (a dict entry and a deque append a fit: nothing
computed); the page server's threads read it. The fitted curves are drawn only when a page
asks for an underlying, from the engine's own model values (Hagan's SABR vol, the Heston
vol grid), cached until the next fit. Everything is plain JSON numbers: the vols in %,
RMSE in vol bp, times in epoch seconds.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from schemas import Alert, Params, key_underlying
from streams.book.calibrations import snapshot_surface
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot

__all__ = ["LiveView"]

HISTORY = 240  # fits of parameter history per key
NOTICES = 50  # recent notices (events, not conditions)
CURVE_POINTS = 61


def _num(x: float | None, scale: float = 1.0) -> float | None:
    return None if x is None or not math.isfinite(x) else x * scale


def _pct(values: Iterable[float]) -> list[float | None]:
    return [_num(v, 100.0) for v in values]


class LiveView:
    """The live page's state; :meth:`overview` and :meth:`detail` are its JSON."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[Snapshot, Params]] = {}
        self._history: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._firing: dict[tuple[str, str], Alert] = {}  # (key, rule) -> the alert firing
        self._notices: deque[Alert] = deque(maxlen=NOTICES)
        self._curves: dict[str, tuple[float, list[dict]]] = {}  # key -> (published_at, slices)
        self._lock = threading.Lock()  # the curve cache, filled by the server's threads
        self.lags: dict[str, float] = {}  # quotes partition -> watermark lag (s)

    def fitted(self, snapshots: Iterable[Snapshot], results: Iterable[Params]) -> None:
        """Fits just published (the event loop)."""
        for snap, params in zip(snapshots, results):
            self._latest[params.key] = (snap, params)
            history = self._history.get(params.key)
            if history is None:
                history = self._history[params.key] = deque(maxlen=HISTORY)
            history.append((snap.window_end, params.params))

    def forget(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` (smiles and surfaces the book dropped): the page shows what is held."""
        gone = set(keys)
        for key in gone:
            for held in (self._latest, self._history, self._curves):
                held.pop(key, None)
        for rule_of in [k for k in self._firing if k[0] in gone]:
            self._firing.pop(rule_of)

    def published(self, key: str) -> Params | None:
        """``key``'s parameters as last published (the event loop: an approval publishes the
        same fit again, so marked)."""
        latest = self._latest.get(key)
        return None if latest is None else latest[1]

    def marked(self, params: Params) -> None:
        """A fit published again with an approver's decision: the same fit, so marked."""
        if params.key in self._latest:
            self._latest[params.key] = (self._latest[params.key][0], params)

    def alerted(self, alerts: Iterable[Alert]) -> None:
        """Alerts just sent: a firing one stays until its resolution comes."""
        for a in alerts:
            if a.state == "firing":
                self._firing[(a.key, a.rule)] = a
            elif a.state == "resolved":
                self._firing.pop((a.key, a.rule), None)
            else:
                self._notices.append(a)

    def overview(self) -> dict[str, Any]:
        """Every key's latest fit in a line, the alerts and the freshness: the page's table."""
        latest = dict(self._latest)  # one copy (atomic under the GIL): the loop goes on
        rows = []
        for key, (snap, p) in sorted(latest.items()):
            rows.append({
                "key": key, "underlying": p.underlying, "model": p.model,
                "good": p.good, "approval": p.approval, "status": p.status,
                "rmse_bp": _num(p.rmse, 1e4), "n": p.n_quotes,
                "params": {k: _num(v) for k, v in p.params.items()},
                "fitted_at": snap.window_end,
                "latency_ms": _num(p.published_at - p.received_at, 1e3),
            })  # fmt: skip
        firing = sorted(dict(self._firing).values(), key=lambda a: -a.ts)
        return {
            "rows": rows,
            "alerts": [_alert(a) for a in firing],
            "notices": [_alert(a) for a in reversed(list(self._notices))],
            "lags": dict(self.lags),
        }

    def detail(self, underlying: str) -> dict[str, Any]:
        """Each smile (or surface slice) of ``underlying``: its quotes as fitted, the fitted
        curve through them, and each key's parameter history."""
        latest = {k: v for k, v in dict(self._latest).items() if key_underlying(k) == underlying}
        out = {"underlying": underlying, "slices": [], "history": {}}
        for key, (snap, params) in sorted(latest.items()):
            out["slices"] += self._slices(key, snap, params)
            history = list(self._history.get(key, ()))
            out["history"][key] = {
                "t": [t for t, _ in history],
                "params": {name: [_num(h.get(name)) for _, h in history] for name in params.params},
            }
        return out

    def _slices(self, key: str, snap: Snapshot, params: Params) -> list[dict]:
        with self._lock:
            cached = self._curves.get(key)
        if cached is not None and cached[0] == params.published_at:
            return cached[1]
        slices = _smile(snap, params) if isinstance(snap, SmileSnapshot) else _surface(snap, params)
        head = {"key": key, "model": params.model, "good": params.good,
                "approval": params.approval, "rmse_bp": _num(params.rmse, 1e4)}  # fmt: skip
        slices = [head | s for s in slices]
        with self._lock:
            self._curves[key] = (params.published_at, slices)
        return slices


def _alert(a: Alert) -> dict:
    return {"ts": a.ts, "severity": a.severity, "rule": a.rule, "subject": a.subject,
            "message": a.message, "state": a.state, "runbook": a.runbook}  # fmt: skip


def _smile(snap: SmileSnapshot, params: Params) -> list[dict]:
    from engine.model_values import quote_checks

    strikes = np.array(snap.strikes)
    grid = np.linspace(strikes.min() * 0.98, strikes.max() * 1.02, CURVE_POINTS)
    p, nan = params.params, np.nan
    if params.converged and all(_num(p.get(n)) is not None for n in ("alpha", "rho", "nu")):
        vols, _, _ = quote_checks(grid, snap.forward, snap.time_to_expiry, p["alpha"],
                                  p.get("beta", nan), p["rho"], p["nu"], nan, nan, nan, nan,
                                  True, priced=np.zeros(grid.size, bool))  # fmt: skip
    else:
        vols = np.full(grid.size, nan)
    return [{"expiry": snap.expiry, "forward": snap.forward, "strikes": strikes.tolist(),
             "vols": _pct(snap.vols), "curve_strikes": grid.tolist(),
             "curve_vols": _pct(vols)}]  # fmt: skip


def _surface(snap: SurfaceSnapshot, params: Params) -> list[dict]:
    from engine.blackscholes import forward_price
    from engine.model_values import GRID_X, heston_vol_grid

    data = snapshot_surface(snap)  # price quotes as vols, as the fit saw them
    times, expiries = np.array(snap.times), np.array(snap.expiries)
    firsts = np.unique(times, return_index=True)[1]
    t = times[firsts]
    r, q = data.rates[firsts], data.dividends[firsts]
    p, names = params.params, ("v0", "kappa", "theta", "sigma", "rho")
    grid = None
    if params.converged and all(_num(p.get(n)) is not None for n in names):
        grid = heston_vol_grid(snap.spot, t, r, q, *(p[n] for n in names))
    forwards = np.asarray(forward_price(snap.spot, r, q, t))
    within = np.abs(GRID_X) <= 3.0  # three standard deviations each side
    out = []
    for row, first in enumerate(firsts):
        mine = times == times[first]
        used = data.weights[mine] > 0
        curve_k, curve_v = [], []
        if grid is not None:
            curve_k = (forwards[row] * np.exp(GRID_X[within] * grid.scale[row])).tolist()
            curve_v = _pct(grid.vols[row][within])
        out.append({"expiry": str(expiries[first]), "forward": float(forwards[row]),
                    "strikes": data.strikes[mine][used].tolist(),
                    "vols": _pct(data.values[mine][used]),
                    "curve_strikes": curve_k, "curve_vols": curve_v})  # fmt: skip
    return out
