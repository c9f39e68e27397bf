"""Material changes: when a calibration needs an approver before it counts (the governance
playbook's "approve material changes"). A fit is material when it moves a parameter far from
the parameters last approved for its key, when its RMSE jumps against theirs, or when it fails
a gate. Thresholds are per model (:class:`Materiality`); the first fit of a key is measured
against nothing, so only a failed gate makes it material."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Materiality", "material_changes"]

RMSE = "rmse"  # the approved fit's RMSE, kept beside its parameters


@dataclass(frozen=True)
class Materiality:
    """What makes one model's fit material.

    ``move``: a parameter moved by more than this, relative to its approved value (to
    ``floor`` at least, so a correlation near 0 is not material at every tick); ``rmse_jump``:
    the fit's RMSE more than this many times the approved fit's (and at least ``rmse_floor``,
    so a jump from 0.1 to 0.4 bp does not count); ``failed_gate``: any failed gate."""

    move: float = 0.5
    floor: float = 0.1
    rmse_jump: float = 3.0
    rmse_floor: float = 1e-4  # 1 vol bp
    failed_gate: bool = True


def material_changes(
    parameters: Mapping[str, float | None],
    rmse: float | None,
    failed: list[str],
    approved: Mapping[str, float | None] | None,
    rules: Materiality,
) -> list[str]:
    """Why a fit (``parameters``, its ``rmse`` and the gates it ``failed``) is material against
    ``approved`` (the parameters last approved with their ``rmse``; None: the key's first fit),
    as sentences; empty when it is not."""
    why = []
    if rules.failed_gate and failed:
        why.append(f"failed gate(s) {', '.join(sorted(failed))}")
    if approved is None:
        return why
    for name, now in parameters.items():
        then = approved.get(name)
        if now is None or then is None:
            continue
        move = abs(now - then) / max(abs(then), rules.floor)
        if move > rules.move:
            why.append(f"{name} moved {then:.4g} -> {now:.4g} ({move:.0%} > {rules.move:.0%})")
    then = approved.get(RMSE)
    if rmse is not None and then is not None and rmse > max(rules.rmse_jump * then,
                                                            rules.rmse_floor):  # fmt: skip
        why.append(f"RMSE {1e4 * then:.2f} -> {1e4 * rmse:.2f} bp (> {rules.rmse_jump:g}x)")
    return why
