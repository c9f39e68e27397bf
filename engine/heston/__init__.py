"""The Heston (1993) stochastic-volatility model: prices now; calibration comes next."""

from engine.heston.pricer import characteristic_function, heston_price, mean_variance

__all__ = ["characteristic_function", "heston_price", "mean_variance"]
