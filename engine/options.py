"""Calibrators are varied by copying, never by setting fields on a live one.

A calibrator is built from keyword options (solver, tolerance, quadrature, batching, gates'
thresholds, liquidity filter). :meth:`Varied.replace` gives a new calibrator with some of them
changed and :meth:`Varied.with_spec` one with a parameter's start, bounds or hold changed; the
original, and its ``parameter_specs``, are never touched. What the failure runbook's steps and
the time-dependent fit's plain start are built with.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Self

__all__ = ["Varied"]


class Varied:
    """Mixin of a calibrator whose ``__init__`` takes keyword options: it keeps them (call
    :meth:`_keep` with the options as given) and is varied through :meth:`replace`."""

    _options: dict[str, Any]
    parameter_specs: dict

    def _keep(self, frame_locals: dict[str, Any]) -> None:
        names = inspect.signature(type(self).__init__).parameters
        self._options = {n: frame_locals[n] for n in names if n != "self"}

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options this calibrator was built with (a copy)."""
        return dict(self._options)

    def replace(self, **changes: Any) -> Self:
        """A new calibrator with ``changes`` to the options it was built with, and a copy of
        this one's ``parameter_specs`` (starts and holds set on it carry over)."""
        unknown = set(changes) - set(self._options)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no option {sorted(unknown)}; its options: "
                f"{sorted(self._options)}"
            )
        out = type(self)(**(self._options | changes))
        built = type(self)(**self._options).parameter_specs  # what the options alone give
        for name, spec in self.parameter_specs.items():  # a start or hold set since: kept
            if spec != built[name]:
                out.parameter_specs[name] = dataclasses.replace(spec)
        return out

    def with_spec(self, name: str, **fields: Any) -> Self:
        """A copy with parameter ``name``'s spec changed (``init``, ``lower``, ``upper``,
        ``fixed``, ``scale``): e.g. ``with_spec("kappa", init=1.5, fixed=True)``."""
        if name not in self.parameter_specs:
            raise ValueError(f"no parameter {name!r}; the parameters: {list(self.parameter_specs)}")
        out = self.replace()
        out.parameter_specs[name] = dataclasses.replace(out.parameter_specs[name], **fields)
        return out
