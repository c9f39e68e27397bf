"""k-fold cross-validation of a calibration: does the fit predict the quotes it did not see?

Each fold holds out a random ``1/k`` of the options (their weights set to zero) and calibrates
on the rest; all ``k`` fits run as one batch (``calibrator.calibrate_many``). The out-of-fold
error of a fold is the RMS of the calibrator's own residual measure (``calibrator.errors``) on
its held-out options. A spread of fold errors that is large against their mean
(``std / mean``, the playbook's 30% gate) means the fit depends on which quotes it saw:
overfitting, or too few quotes for the model. Any calibrator with those two methods plugs in.

>>> from engine.sabr import SABRCalibrator
>>> data = {"forward": 1.1, "maturities": 0.5, "strikes": [1.0, 1.03, 1.06, 1.1, 1.14, 1.18, 1.2],
...         "target_vols": [0.105, 0.1, 0.097, 0.095, 0.096, 0.099, 0.102]}
>>> cv = cross_validate(SABRCalibrator(), data, k_fold_split(3))
>>> cv.fold_errors.shape, cv.mean_error < 0.005
((3,), True)
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

__all__ = ["CrossValidation", "KFoldSplit", "cross_validate", "k_fold_split", "kfold_masks"]


class Calibrator(Protocol):
    def calibrate_many(self, datasets: list[dict]) -> list[dict]: ...

    def errors(self, params: dict, market_data: dict) -> np.ndarray: ...


class CrossValidation(NamedTuple):
    mean_error: float
    std_error: float
    fold_errors: np.ndarray

    @property
    def dispersion(self) -> float:
        """``std_error / mean_error``: the playbook gates this below 0.3."""
        return self.std_error / self.mean_error


class KFoldSplit(NamedTuple):
    """A random partition of a surface's options into ``folds`` held-out sets."""

    folds: int
    seed: int = 0

    def masks(self, n: int) -> list[np.ndarray]:
        return kfold_masks(n, self.folds, self.seed)


def k_fold_split(folds: int = 5, seed: int = 0) -> KFoldSplit:
    """The playbook's ``k_fold_split(5)``: ``folds`` random held-out sets (reproducible)."""
    return KFoldSplit(folds, seed)


def kfold_masks(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """``folds`` boolean masks of held-out options, a random partition of ``range(n)``."""
    if not 2 <= folds <= n:
        raise ValueError(f"folds must lie in [2, {n}] for {n} options, got {folds}")
    order = np.random.default_rng(seed).permutation(n)
    masks = []
    for part in np.array_split(order, folds):
        mask = np.zeros(n, bool)
        mask[part] = True
        masks.append(mask)
    return masks


def cross_validate(
    calibrator: Calibrator, market_data: dict, split: KFoldSplit | int = 5
) -> CrossValidation:
    """Out-of-fold errors of ``calibrator`` on ``market_data`` (see the module doc); ``split``
    is a :func:`k_fold_split` or a number of folds."""
    if isinstance(split, int):
        split = k_fold_split(split)
    n = np.atleast_1d(market_data["strikes"]).size
    weights = market_data.get("weights", 1.0)
    if isinstance(weights, str):
        raise ValueError("cross_validate needs numeric weights (zero holds an option out)")
    weights = np.broadcast_to(np.asarray(weights, float), (n,))
    masks = split.masks(n)
    fits = calibrator.calibrate_many([market_data | {"weights": weights * ~m} for m in masks])
    errors = []
    for params, mask in zip(fits, masks):
        held_out = calibrator.errors(params, market_data)[mask & (weights > 0)]
        errors.append(float(np.sqrt(np.mean(held_out**2))))
    errors = np.array(errors)
    return CrossValidation(float(errors.mean()), float(errors.std(ddof=1)), errors)
