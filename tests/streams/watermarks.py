"""An independent check of what watermarks claim: every tick at or before a partition's
watermark is reflected by the parameters published before it: included in a fit (a window
ending at or after it), or within tolerance of its smile's latest fit, repriced here in full
(Hagan's vol for SABR; a Heston price by the Lewis integral for a surface, never the worker's
grid). A surface's tolerance gets 0.5 vol bp of slack for the worker's grid interpolation."""

import jax
import numpy as np

from engine.blackscholes import black_vega, forward_price, implied_vols_of_prices
from engine.heston import PARAM_NAMES as HESTON_NAMES
from engine.heston import heston_price
from engine.sabr import PARAM_NAMES as SABR_NAMES
from engine.sabr import hagan_vol
from schemas import Params, Quote, Watermark, book_key, decode
from streams.book.surfaces import SurfaceConfig

GRID_SLACK = 0.5e-4
_hagan = jax.jit(hagan_vol)
_heston = jax.jit(heston_price)


def _within(q: Quote, fit: Params, config: SurfaceConfig) -> bool:
    floor, flat = 1e-4 * config.tolerance_floor_bp, 1e-4 * config.tolerance_bp
    t = q.time_to_expiry
    p = fit.params
    if fit.model == "sabr":
        model = float(_hagan(q.strike, q.forward, t, *(p[n] for n in SABR_NAMES)))
        half = None if q.bid_vol is None or q.ask_vol is None else 0.5 * (q.ask_vol - q.bid_vol)
        return abs(q.vol - model) <= (flat if half is None else max(half, floor))
    args = (q.spot, q.strike, t, q.rate, q.dividend, *(p[n] for n in HESTON_NAMES))
    call = bool(q.call) if q.price is not None else True
    price = float(_heston(*args, call))
    forward = float(forward_price(q.spot, q.rate, q.dividend, t))
    vol = float(implied_vols_of_prices(price, q.spot, q.rate, q.dividend, t, q.strike, call)[0])
    vega = float(np.exp(-q.rate * t) * black_vega(forward, q.strike, t, vol))
    if q.vol is not None:
        half = None if q.bid_vol is None or q.ask_vol is None else 0.5 * (q.ask_vol - q.bid_vol)
        tol = flat if half is None else max(half, floor)
        return abs(q.vol - vol) <= tol + GRID_SLACK
    half = None if q.bid_price is None or q.ask_price is None else 0.5 * (q.ask_price - q.bid_price)
    tol = flat * vega if half is None else max(half, floor * vega)
    return abs(q.price - price) <= tol + GRID_SLACK * vega


def assert_watermarks_reflect(
    ticks: dict[int, list[Quote]], log: list[tuple[str, bytes]], config: SurfaceConfig
) -> int:
    """Check every watermark in ``log`` (the sink's sends in order) against the ``ticks`` of
    each partition; returns how many ticks the watermarks claimed."""
    fits: dict[str, list[Params]] = {}
    claimed = {p: -np.inf for p in ticks}
    checked = 0
    for topic, value in log:
        if topic.endswith(".params"):
            fit = decode(value, Params)
            fits.setdefault(fit.key, []).append(fit)
        elif topic.endswith(".watermarks"):
            mark = decode(value, Watermark)
            assert mark.event_time >= claimed[mark.partition], "a watermark moved back"
            for q in ticks[mark.partition]:
                if not claimed[mark.partition] < q.ts <= mark.event_time:
                    continue
                key = book_key(q.underlying, None if q.asset_class == "equity" else q.expiry)
                if key in mark.unfit:
                    continue
                mine = fits.get(key, [])
                covered = any(f.window_end >= q.ts for f in mine)
                last = mine[-1] if mine else None
                ok = covered or (last is not None and last.converged and _within(q, last, config))
                assert ok, f"watermark {mark.event_time} claims {q} that no fit reflects"
                checked += 1
            claimed[mark.partition] = mark.event_time
    return checked
