"""Typed market data: a Surface is read and checked once, every Heston-family calibrator takes
it (or the seed's dict, read through it), and an option with no time value is dropped from
the fit with its index in the diagnostics, not a refusal of the surface."""

import dataclasses

import numpy as np
import pytest

from audit import digest
from engine.blackscholes import discount_factor, forward_price
from engine.heston import HestonCalibrator, TimeDependentCalibrator, TimeSegment
from engine.market import Surface
from tests.engine.test_heston_calibrator import TRUE, surface

SHORT = 0.1  # the first expiry of tests.engine.test_heston_calibrator.surface


def _with_intrinsic(data: dict, at: int) -> dict:
    """``data`` with option ``at`` quoted at its intrinsic value, as the call it is said to be
    (deep in the money: it has a put on the other side of parity)."""
    t, k = data["maturities"][at], data["strikes"][at]
    forward = forward_price(data["spot"], data["rate"], data["dividend"], t)
    intrinsic = discount_factor(data["rate"], t) * (forward - k)
    assert intrinsic > 0
    call = np.asarray(data["strikes"] >= forward_price(data["spot"], data["rate"],
                                                      data["dividend"], data["maturities"]))  # fmt: skip
    call[at] = True
    prices = data["target_prices"].copy()
    prices[at] = intrinsic
    return data | {"target_prices": prices, "call": call}


def test_a_dict_is_read_once_into_frozen_arrays_and_back():
    data = surface()
    s = Surface.of(data)
    assert Surface.of(s) is s and len(s) == data["strikes"].size
    assert s.target == "prices" and s.no_time_value == ()
    np.testing.assert_array_equal(s.rates, np.full(len(s), data["rate"]))
    assert np.isnan(s.open_interest).all()
    np.testing.assert_array_equal(s.calls, data["call"])
    unflagged = Surface.of({k: v for k, v in data.items() if k != "call"})
    assert unflagged.calls.all()  # a price is a call unless told: puts read as calls
    assert unflagged.no_time_value  # deep puts are worth less than the call's intrinsic value
    assert set(unflagged.no_time_value) <= set(np.flatnonzero(~data["call"]).tolist())
    with pytest.raises(ValueError, match="read-only"):
        s.strikes[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.spot = 1.0  # type: ignore[misc]
    again = Surface.of(s.market_data())
    assert digest(again.plain()) == digest(s.plain())  # the door back is the same data


def test_the_hash_covers_every_field_and_ignores_how_the_dict_spelled_them():
    data = surface()
    base = digest(Surface.of(data).plain())
    spelled = data | {"rate": np.full(data["strikes"].size, data["rate"]), "weights": 1.0}
    assert digest(Surface.of(spelled).plain()) == base  # scalars broadcast: one canonical form
    for changed in ({"spot": 100.0 + 1e-12}, {"weights": 0.5}, {"call": False},
                    {"open_interest": 500.0}, {"dividend": 0.011}):  # fmt: skip
        try:
            other = Surface.of(data | changed)
        except ValueError:  # puts above their bound: the flag is refused, as it should be
            assert "call" in changed
            continue
        assert digest(other.plain()) != base, changed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spot": -1.0}, r"market_data\['spot'\] must be positive"),
        ({"strikes": "x"}, "could not convert"),
        ({"maturities": [1.0, 2.0]}, r"market_data\['maturities'\] must be a scalar or one value"),
        ({"weights": -1.0}, r"market_data\['weights'\] must be non-negative at option \[0"),
        ({"target_vols": 0.2}, "exactly one of 'target_prices' or 'target_vols'"),
        ({"rate": np.nan}, r"market_data\['rate'\] is not finite at option \[0"),
    ],
)
def test_bad_data_is_refused_naming_the_key_and_options(change, message):
    with pytest.raises(ValueError, match=message):
        Surface.of(surface() | change)


def test_a_price_above_its_bound_is_refused_and_one_at_intrinsic_is_dropped():
    data = surface()
    high = data["target_prices"].copy()
    high[3] = 1e6
    with pytest.raises(ValueError, match=r"above the no-arbitrage bound .* at option \[3\]"):
        Surface.of(data | {"target_prices": high})
    assert Surface.of(_with_intrinsic(data, 0)).no_time_value == (0,)
    nothing = data | {"target_prices": np.zeros(data["strikes"].size), "call": False}
    assert len(Surface.of(nothing).no_time_value) == len(nothing["strikes"])
    with pytest.raises(ValueError, match=r"no option left to fit .*no time value"):
        HestonCalibrator().calibrate(nothing)


def test_an_option_with_no_time_value_is_dropped_from_the_fit_not_the_surface():
    data = surface()
    assert data["maturities"][0] == SHORT and data["strikes"][0] < data["spot"]
    dropped = _with_intrinsic(data, 0)
    cal = HestonCalibrator()
    fit = cal.calibrate(dropped)
    assert bool(fit.converged)  # and its gates as the full surface's (Feller fails at TRUE)
    assert fit.gate_verdicts() == cal.calibrate(data).gate_verdicts()
    np.testing.assert_array_equal(fit.diagnostics["no_time_value"], [0])
    for name, value in TRUE.items():  # the other 44 options still pin the parameters
        assert float(fit.params[name]) == pytest.approx(value, rel=1e-6)
    errors = cal.vol_errors(fit.params, dropped)
    assert np.isnan(errors[0]) and np.all(np.abs(errors[1:]) < 1e-8)
    batch = cal.calibrate_batch([data, Surface.of(dropped)])  # a Surface is taken as the dict
    assert [list(d) for d in batch.diagnostics["no_time_value"]] == [[], [0]]


def test_the_time_dependent_fit_takes_a_surface_as_its_dict():
    data = surface()
    cal = TimeDependentCalibrator([TimeSegment(0.0, 0.5), TimeSegment(0.5, 2.0)])
    from_dict = cal.calibrate(data)
    from_surface = cal.calibrate(Surface.of(data))
    for name in TRUE:
        np.testing.assert_array_equal(from_dict.params[name], from_surface.params[name])


def test_a_smiles_dict_is_read_once_per_expiry_and_fits_as_its_smiles():
    from engine.market import Smile, smiles_of
    from engine.sabr import SABRCalibrator

    k = np.array([1.0, 1.05, 1.1, 1.15, 1.2])
    data = {
        "forward": 1.1,
        "maturities": np.repeat([1.0, 0.5], 5),  # given long expiry first
        "strikes": np.tile(k, 2),
        "target_vols": [0.11, 0.104, 0.1, 0.102, 0.107, 0.105, 0.098, 0.095, 0.097, 0.102],
    }
    short, long = smiles_of(data)
    assert (short.expiry, long.expiry) == (0.5, 1.0)
    np.testing.assert_array_equal(short.rows, np.arange(5, 10))
    with pytest.raises(ValueError, match="read-only"):
        short.vols[0] = 0.2
    cal = SABRCalibrator()
    from_dict = cal.calibrate(data)
    by_hand = [Smile.of(1.1, 0.5, k, data["target_vols"][5:]),
               Smile.of(1.1, 1.0, k, data["target_vols"][:5])]  # fmt: skip
    from_smiles = cal.calibrate(by_hand)
    for name in ("alpha", "rho", "nu"):
        np.testing.assert_array_equal(from_dict.params[name], from_smiles.params[name])
    errors = cal.errors(from_dict.params, data)  # in the dict's order
    np.testing.assert_allclose(errors[5:], from_dict.rows(0).residuals, atol=1e-15)
    assert digest(short.plain()) != digest(long.plain())
    with pytest.raises(ValueError, match="several forwards"):
        smiles_of(data | {"forward": np.r_[np.full(5, 1.1), 1.2, np.full(4, 1.1)]})


def test_readers_build_a_surface_or_smile_from_values_through_the_same_checks():
    """Surface.quoted and Smile.of: what the book and the file reader build from their own
    values, without a dict; the same data as the dict's door, the same refusals."""
    from engine.market import Smile

    data = surface()
    quoted = Surface.quoted(
        data["spot"], data["strikes"], data["maturities"], prices=data["target_prices"],
        rates=data["rate"], dividends=data["dividend"], calls=data["call"],
    )  # fmt: skip
    assert digest(quoted.plain()) == digest(Surface.of(data).plain())
    with pytest.raises(
        ValueError, match=r"market_data\['maturities'\] must be positive at option \[2\]"
    ):
        Surface.quoted(100.0, [90.0, 100.0, 110.0], [0.5, 0.5, 0.0], vols=0.2)
    with pytest.raises(ValueError, match="exactly one of vols or prices"):
        Surface.quoted(100.0, [100.0], 0.5)
    smile = Smile.of(1.1, 0.5, [1.0, 1.1], [0.11, 0.1], [1.0, 2.0])
    assert smile.weights.tolist() == [1.0, 2.0] and not smile.strikes.flags.writeable
    with pytest.raises(ValueError, match="positive forward and expiry"):
        Smile.of(0.0, 0.5, [1.0], [0.1])
    with pytest.raises(ValueError, match="equal length"):
        Smile.of(1.1, 0.5, [1.0, 1.1], [0.1])
