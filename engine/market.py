"""Typed market data: an FX :class:`Smile` and an equity index :class:`Surface`, each read
and checked once, whatever reads it.

The playbooks hand calibrators a ``market_data`` dict; :meth:`Surface.of` reads that dict once,
checks it (each error names the key and the options' indices, as users have always seen) and
holds the result frozen: spot, per-option strikes, maturities, rates and dividend yields, the
target prices or vols, call flags, weights and open interest. Every calibrator takes a Surface
or the dict (the seed's door, read through :meth:`Surface.of`), so a key is read in one place:
``call`` is the call flags for every model.

A price at or below its intrinsic value has no time value to fit: the option is *dropped*
(``no_time_value`` holds its index, and calibrators report it), not a refusal of the surface.
A price above its no-arbitrage upper bound is refused: it says the data or the call flag is
wrong. :meth:`Surface.plain` is one canonical form of the data (lists of float64 in the input's
order, keys sorted when encoded), what a hash of the market data is computed over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.blackscholes import discount_factor, forward_price

__all__ = ["Smile", "Surface", "refuse", "smiles_of"]

_TARGETS = ("target_prices", "target_vols")


def _column(value, n: int, name: str) -> np.ndarray:
    try:
        out = np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()
    except ValueError:
        raise ValueError(
            f"market_data[{name!r}] must be a scalar or one value per strike ({n}), "
            f"got shape {np.shape(value)}"
        ) from None
    refuse(~np.isfinite(out), f"market_data[{name!r}]", out, "is not finite")
    return out


def refuse(bad: np.ndarray, what: str, values: np.ndarray, why: str) -> None:
    """Raise naming the first offending options (their indices in the input) and values."""
    if np.any(bad):
        idx = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{what} {why} at option {idx} (values {values[idx].tolist()})")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Surface:
    """One equity index's option quotes, checked (build it with :meth:`of`).

    Arrays hold one value per option in the input's order and are read-only. ``target`` is
    ``"prices"`` (``values`` are option prices, each a call unless ``calls`` says a put) or
    ``"vols"`` (Black implied vols). ``open_interest`` is NaN where not reported.
    ``no_time_value`` lists the options dropped from any fit (module doc)."""

    spot: float
    strikes: np.ndarray
    maturities: np.ndarray
    rates: np.ndarray
    dividends: np.ndarray
    target: str
    values: np.ndarray
    calls: np.ndarray
    weights: np.ndarray
    open_interest: np.ndarray
    no_time_value: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.strikes.size

    @property
    def forwards(self) -> np.ndarray:
        return forward_price(self.spot, self.rates, self.dividends, self.maturities)

    @property
    def fitted(self) -> np.ndarray:
        """Options a fit may use: positive weight and time value (before any liquidity filter,
        which is the calibrator's setting)."""
        keep = self.weights > 0
        keep[list(self.no_time_value)] = False
        return keep

    @classmethod
    def of(cls, market_data: Surface | dict) -> Surface:
        """Read and check a playbook ``market_data`` dict: ``spot``, ``strikes``,
        ``maturities``, exactly one of ``target_prices`` or ``target_vols``, optional ``rate``,
        ``dividend``, ``weights``, ``call`` and ``open_interest`` (scalars or one per option).
        A Surface is returned as it is. Raises ``ValueError`` naming the key and options."""
        if isinstance(market_data, Surface):
            return market_data
        for key in ("spot", "strikes", "maturities"):
            if key not in market_data:
                raise ValueError(f"market_data needs {key!r}")
        if sum(key in market_data for key in _TARGETS) != 1:
            raise ValueError("market_data needs exactly one of 'target_prices' or 'target_vols'")
        target = "vols" if "target_vols" in market_data else "prices"
        return cls.quoted(
            market_data["spot"],
            market_data["strikes"],
            market_data["maturities"],
            **{target: market_data[f"target_{target}"]},
            rates=market_data.get("rate", 0.0),
            dividends=market_data.get("dividend", 0.0),
            calls=market_data.get("call"),
            weights=market_data.get("weights", 1.0),
            open_interest=market_data.get("open_interest"),
        )

    @classmethod
    def quoted(
        cls, spot: float, strikes, maturities, *, vols=None, prices=None, rates=0.0,
        dividends=0.0, calls=None, weights=1.0, open_interest=None,
    ) -> Surface:  # fmt: skip
        """A surface from its values (scalars or one per option), the door every reader goes
        through: exactly one of ``vols`` or ``prices``; ``calls`` defaults to out of the money
        for vols and to calls for prices; ``open_interest`` None when not reported. Raises
        ``ValueError`` naming the value (as the dict's key) and options."""
        strikes = np.atleast_1d(np.asarray(strikes, np.float64)).copy()
        n = strikes.size
        spot = float(spot)
        if not spot > 0:
            raise ValueError(f"market_data['spot'] must be positive, got {spot}")
        maturities = _column(maturities, n, "maturities")
        rates = _column(rates, n, "rate")
        dividends = _column(dividends, n, "dividend")
        weights = _column(weights, n, "weights")
        refuse(~(strikes > 0), "market_data['strikes']", strikes, "must be positive")
        refuse(~(maturities > 0), "market_data['maturities']", maturities, "must be positive")
        refuse(weights < 0, "market_data['weights']", weights, "must be non-negative")
        interest = np.full(n, np.nan)
        if open_interest is not None:
            interest = np.broadcast_to(np.asarray(open_interest, np.float64), (n,))
        forward = forward_price(spot, rates, dividends, maturities)
        dropped: tuple[int, ...] = ()
        if (vols is None) == (prices is None):
            raise ValueError("a surface needs exactly one of vols or prices")
        if vols is not None:  # the vol is the same either side: OTM unless told
            target, values = "vols", _column(vols, n, "target_vols")
            refuse(~(values > 0), "market_data['target_vols']", values, "must be positive")
            calls = np.broadcast_to(strikes >= forward if calls is None else calls, (n,))
        else:
            target, values = "prices", _column(prices, n, "target_prices")
            calls = np.broadcast_to(np.asarray(True if calls is None else calls, bool), (n,))
            discount = discount_factor(rates, maturities)
            intrinsic = discount * (forward - strikes)  # S e^{-qT} - K e^{-rT}
            upper = discount * np.where(calls, forward, strikes)
            tol = 1e-12 * upper
            refuse(
                values >= upper + tol,
                "market_data['target_prices']",
                values,
                "above the no-arbitrage bound (S e^-qT for a call, K e^-rT for a put; "
                "is 'call' right?)",
            )
            floor = np.maximum(np.where(calls, intrinsic, -intrinsic), 0.0) + tol
            dropped = tuple(np.flatnonzero(values <= floor).tolist())
        return cls(
            spot, *map(_frozen, (strikes, maturities, rates, dividends)), target,
            _frozen(values), _frozen(calls.astype(bool)), _frozen(weights),
            _frozen(interest.copy()), dropped,
        )  # fmt: skip

    def with_weights(self, weights) -> Surface:
        """This surface with other weights (a scalar or one per option), open interest unread."""
        return dataclasses.replace(
            self,
            weights=_frozen(np.broadcast_to(np.asarray(weights, np.float64), (len(self),)).copy()),
            open_interest=_frozen(np.full(len(self), np.nan)),
        )

    def market_data(self) -> dict:
        """The playbook's dict of this surface (its every key spelled as the seed spells it)."""
        out = {
            "spot": self.spot,
            "strikes": self.strikes,
            "maturities": self.maturities,
            "rate": self.rates,
            "dividend": self.dividends,
            f"target_{self.target}": self.values,
            "call": self.calls,
            "weights": self.weights,
        }
        if not np.isnan(self.open_interest).all():
            out["open_interest"] = self.open_interest
        return out

    def plain(self) -> dict:
        """The surface as plain data (lists of floats in the input's order; open interest not
        reported is None): one canonical form for a hash, in any language."""
        interest = [None if np.isnan(x) else float(x) for x in self.open_interest]
        return {
            "spot": self.spot,
            "strikes": self.strikes.tolist(),
            "maturities": self.maturities.tolist(),
            "rates": self.rates.tolist(),
            "dividends": self.dividends.tolist(),
            "target": self.target,
            "values": self.values.tolist(),
            "calls": self.calls.tolist(),
            "weights": self.weights.tolist(),
            "open_interest": interest,
        }


@dataclass(frozen=True, eq=False)
class Smile:
    """One expiry's quotes of an FX pair, SABR's market data: the forward, the expiry (years),
    strikes and mid vols (read-only arrays), and weights: one per option, ``"atm"`` (the
    playbook's ATM weighting) or None (equal). ``rows`` are the options' indices in the dict
    the smile was read from (:func:`smiles_of`), so errors come back in the input's order."""

    forward: float
    expiry: float
    strikes: np.ndarray
    vols: np.ndarray
    weights: np.ndarray | str | None = None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return self.strikes.size

    @classmethod
    def of(cls, forward: float, expiry: float, strikes, vols, weights=None, rows=None) -> Smile:
        """One expiry's smile from its values (any sequences of numbers: copied, read-only),
        the door every reader goes through. Raises ``ValueError`` on a shape or a forward or
        expiry that is not positive and finite."""
        strikes, vols = _strikes_and_vols(strikes, vols)
        if not (0 < forward < np.inf and 0 < expiry < np.inf):
            raise ValueError(
                f"a smile needs a positive forward and expiry, got {forward}, {expiry}"
            )
        if weights is not None and not isinstance(weights, str):
            weights = _frozen(
                np.broadcast_to(np.asarray(weights, np.float64), strikes.shape).copy()
            )
        rows = None if rows is None else _frozen(np.asarray(rows))
        return cls(float(forward), float(expiry), _frozen(strikes), _frozen(vols), weights, rows)

    def plain(self) -> dict:
        """The smile as plain data (lists of floats): one canonical form for a hash."""
        w = self.weights
        return {
            "forward": float(self.forward),
            "expiry": float(self.expiry),
            "strikes": self.strikes.tolist(),
            "vols": self.vols.tolist(),
            "weights": w if w is None or isinstance(w, str) else w.tolist(),
        }


def _strikes_and_vols(strikes, vols) -> tuple[np.ndarray, np.ndarray]:
    """A smile's strikes and vols as new 1-D float64 arrays of one length, at least one."""
    strikes = np.atleast_1d(np.array(strikes, np.float64))
    vols = np.atleast_1d(np.array(vols, np.float64))
    if strikes.ndim != 1 or strikes.shape != vols.shape:
        raise ValueError(
            f"strikes and target_vols must be 1-D of equal length, got {strikes.shape} and {vols.shape}"
        )
    if strikes.size == 0:
        raise ValueError("empty smile: no strikes given")
    return strikes, vols


def smiles_of(market_data: Smile | dict | list) -> tuple[Smile, ...]:
    """The smiles of SABR market data, one per expiry in ascending order: a Smile, a list of
    them, or the playbook's dict (``forward``, or an equity surface's ``spot`` with ``rate``
    and ``dividend``; ``strikes``, ``maturities`` and ``target_vols``, scalars or one value per
    option; optional ``weights``, an array or ``"atm"``). Raises ``ValueError`` naming what is
    missing or malformed."""
    if isinstance(market_data, Smile):
        return (market_data,)
    if isinstance(market_data, list | tuple):
        if not all(isinstance(s, Smile) for s in market_data):
            raise ValueError("a list of market data must hold Smiles")
        return tuple(market_data)
    missing = {"forward", "strikes", "maturities", "target_vols"} - set(market_data)
    if missing == {"forward"} and "spot" in market_data:  # an equity surface's data
        missing = set()
    if missing:
        raise ValueError(f"market_data lacks {sorted(missing)}")
    strikes, vols = _strikes_and_vols(market_data["strikes"], market_data["target_vols"])
    n = strikes.size
    maturities = np.broadcast_to(np.asarray(market_data["maturities"], np.float64), (n,))
    if "forward" in market_data:
        forward = np.broadcast_to(np.asarray(market_data["forward"], np.float64), (n,))
    else:  # from spot, rate and dividend, as the Heston calibrators read the same dict
        forward = forward_price(float(market_data["spot"]), market_data.get("rate", 0.0),
                                market_data.get("dividend", 0.0), maturities)  # fmt: skip
    if not np.isfinite(maturities).all():
        bad = np.flatnonzero(~np.isfinite(maturities))[:5].tolist()
        raise ValueError(f"maturities must be finite (options {bad})")
    weights = market_data.get("weights")
    if weights is not None and not isinstance(weights, str):
        weights = np.broadcast_to(np.asarray(weights, np.float64), (n,))
    out = []
    for t in np.unique(maturities):
        rows = np.flatnonzero(maturities == t)
        if np.ptp(forward[rows]) > 0:
            raise ValueError(f"one expiry ({t}) has several forwards")
        w = weights if weights is None or isinstance(weights, str) else weights[rows]
        out.append(Smile.of(forward[rows[0]], t, strikes[rows], vols[rows], w, rows))
    return tuple(out)
