"""k-fold cross-validation of a calibration: does the fit predict the quotes it did not see?

Each fold holds out a random ``1/k`` of the options (their weights set to zero) and calibrates
on the rest; all ``k`` fits run as one batch. The out-of-fold error of a fold is the RMS of the
calibrator's own residual measure on its held-out options. A spread of fold errors that is
large against their mean (``std / mean``, the playbook's 30% gate) means the fit depends on
which quotes it saw: overfitting, or too few quotes for the model.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

__all__ = ["CrossValidation", "cross_validate", "kfold_masks"]


class Calibrator(Protocol):
    def calibrate_batch(self, surfaces: list[dict]): ...

    def errors(self, params: dict[str, float], market_data: dict) -> np.ndarray: ...


class CrossValidation(NamedTuple):
    mean_error: float
    std_error: float
    fold_errors: np.ndarray

    @property
    def dispersion(self) -> float:
        """``std_error / mean_error``: the playbook gates this below 0.3."""
        return self.std_error / self.mean_error


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
    calibrator: Calibrator, market_data: dict, folds: int = 5, seed: int = 0
) -> CrossValidation:
    """Out-of-fold errors of ``calibrator`` on ``market_data`` (see the module doc)."""
    n = np.atleast_1d(market_data["strikes"]).size
    weights = np.broadcast_to(np.asarray(market_data.get("weights", 1.0), float), (n,))
    masks = kfold_masks(n, folds, seed)
    result = calibrator.calibrate_batch([market_data | {"weights": weights * ~m} for m in masks])
    errors = []
    for i, mask in enumerate(masks):
        params = {name: float(v[i]) for name, v in result.params.items()}
        held_out = calibrator.errors(params, market_data)[mask & (weights > 0)]
        errors.append(float(np.sqrt(np.mean(held_out**2))))
    errors = np.array(errors)
    return CrossValidation(float(errors.mean()), float(errors.std(ddof=1)), errors)
