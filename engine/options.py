"""Calibrator options as small frozen groups; calibrators varied by copying, never by setting
fields on a live one.

A calibrator's options come in groups, each a frozen dataclass: how a fit is solved
(:class:`Solving`), how calls are batched into compiled shapes (:class:`Batching`), how a model
prices (``engine.heston.HestonPricing``) and its gates' thresholds (``SABRThresholds``,
``HestonThresholds``). A calibrator is built from the groups' fields as keywords (the seed's
door: ``SABRCalibrator(max_steps=500, tol=1e-8)``) and shows each group read-only
(``calibrator.solving``). :meth:`Varied.replace` gives a new calibrator with some options
changed, by field or by whole group (``replace(solving=Solving("lbfgs", 2000))``), and
:meth:`Varied.with_spec` one with a parameter's start, bounds or hold changed; the original,
and its ``parameter_specs``, are never touched. What the failure runbook's steps and the
time-dependent fit's plain start are built with.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from engine.buckets import bucket
from engine.optimize import Solver, resolve_solver

__all__ = ["Batching", "Solving", "Varied"]


@dataclass(frozen=True)
class Solving:
    """How a fit is solved: the solver (a name of :data:`engine.optimize.SOLVERS` or a solver
    callable), its step limit and its convergence tolerance. Checked when built."""

    optimizer: str | Solver = "lm"
    max_steps: int = 200
    tol: float = 1e-8

    def __post_init__(self) -> None:
        if self.max_steps < 1 or not self.tol > 0:
            raise ValueError("max_steps must be >= 1 and tol > 0")
        resolve_solver(self.optimizer)  # an unknown name is refused here, not mid-fit

    @property
    def solver(self) -> Solver:
        return resolve_solver(self.optimizer)


@dataclass(frozen=True)
class Batching:
    """How calls are padded into compiled shapes: batches of ``min_batch * batch_growth**k``
    rows (rounded up to a power of two), at most ``max_batch`` (rounded up the same way); a
    call with more is cut into chunks. Fewer shapes, fewer compiles; more padding."""

    min_batch: int = 1
    max_batch: int = 64
    batch_growth: int = 2

    @property
    def smallest(self) -> int:
        return bucket(self.min_batch)

    @property
    def largest(self) -> int:
        return bucket(self.max_batch, self.smallest, self.batch_growth)

    def rows(self, n: int) -> int:
        """The padded batch of ``n`` rows (``n`` at most :attr:`largest`)."""
        return bucket(n, self.smallest, self.batch_growth)


class Varied:
    """Mixin of a calibrator whose ``__init__`` takes keyword options: it keeps them (call
    :meth:`_keep` with the options as given) and is varied through :meth:`replace`."""

    GROUPS: ClassVar[dict[str, type]] = {}  # attribute -> its option group's dataclass
    _options: dict[str, Any]
    parameter_specs: dict

    def _keep(self, frame_locals: dict[str, Any]) -> None:
        """Keep the options as given and build each group of :attr:`GROUPS` from its fields
        (checking them), read-only on the calibrator."""
        names = inspect.signature(type(self).__init__).parameters
        self._options = {n: frame_locals[n] for n in names if n != "self"}
        for attribute, group in self.GROUPS.items():
            fields = {f.name: self._options[f.name] for f in dataclasses.fields(group)}
            setattr(self, attribute, group(**fields))

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options this calibrator was built with (a copy)."""
        return dict(self._options)

    def replace(self, **changes: Any) -> Self:
        """A new calibrator with ``changes`` to the options it was built with, by field or by
        whole group (``solving=Solving(...)``), and a copy of this one's ``parameter_specs``
        (starts and holds set on it carry over)."""
        for attribute in set(changes) & set(self.GROUPS):
            group = changes.pop(attribute)
            changes |= {f.name: getattr(group, f.name) for f in dataclasses.fields(group)}
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
