"""What the health rules remember: each key's rolling history of fits, the alerts firing, and
how many each key sent lately. Immutable values; the rules return new ones.

An alert fires once when its condition starts and resolves once when it clears
(:func:`settle`); a key sends at most ``per_minute`` alerts a minute, and those held back are
counted and reported on its next alert (a firing held back is tried again while its
condition lasts, so nothing firing goes unsaid for long).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from alerts.config import AlertConfig
from schemas import Alert, clip

__all__ = ["Condition", "Draft", "Health", "KeyHistory", "forget", "settle"]

Quotes = tuple[Sequence[float], Sequence[float]]  # a fit's (strikes, vols)


@dataclass(frozen=True)
class KeyHistory:
    """One smile's or surface's recent fits: each parameter's and the RMSE's values over its
    last ``window`` good fits, whether each of its last ``outcomes`` fits failed, the event
    time of its last fit, its last good parameters (and, in memory only, their quotes: the
    drift diagnosis, and the largest |z| of the last good fit: a metric), and the rules firing
    on it."""

    model: str
    params: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    rmse: tuple[float, ...] = ()
    failed: tuple[bool, ...] = ()
    last_fit: float = -math.inf
    prior: Mapping[str, float] = field(default_factory=dict)
    quotes: Quotes | None = None
    firing: frozenset[str] = frozenset()
    last_z: float = math.nan  # the last good fit's largest |z| (NaN: too little history)

    def stats(self, name: str) -> tuple[int, float, float]:
        """Count, mean and sample standard deviation of parameter ``name``'s window."""
        values = np.asarray(self.params.get(name, ()), np.float64)
        if values.size < 2:
            return values.size, float(values.mean()) if values.size else math.nan, 0.0
        return values.size, float(values.mean()), float(values.std(ddof=1))


class Condition(NamedTuple):
    """A rule's verdict on one key now: whether its condition ``holds``, and what to say."""

    rule: str
    severity: str
    holds: bool
    message: str = ""
    figures: Mapping[str, float | None] = {}
    runbook: str = ""


@dataclass(frozen=True)
class Health:
    """Every key's history (smiles and surfaces by their key; models, partitions by theirs),
    the times of each key's recent alerts and how many it held back."""

    keys: Mapping[str, KeyHistory] = field(default_factory=dict)
    sent: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    held: Mapping[str, int] = field(default_factory=dict)
    held_total: int = 0


class Draft:
    """A :class:`Health`'s maps copied once, to settle many keys on and then seal: a batch of
    fits, or a lag check over every partition, copies them once, not once a key."""

    def __init__(self, health: Health) -> None:
        self.keys = dict(health.keys)
        self.sent = dict(health.sent)
        self.held = dict(health.held)
        self.held_total = health.held_total

    def history(self, key: str, model: str) -> KeyHistory:
        return self.keys.get(key) or KeyHistory(model)

    def settle(
        self,
        key: str,
        subject: str,
        model: str,
        conditions: Sequence[Condition],
        now: float,
        config: AlertConfig,
    ) -> list[Alert]:
        """:func:`settle` on this draft, in place."""
        history = self.history(key, model)
        recent = tuple(t for t in self.sent.get(key, ()) if t > now - 60.0)
        held = self.held.get(key, 0)
        firing, alerts = set(history.firing), []
        for c in conditions:
            if c.holds == (c.rule in firing):  # no change: nothing to say
                continue
            if len(recent) >= config.per_minute:
                held, self.held_total = held + 1, self.held_total + 1
                continue
            figures = dict(c.figures) | ({"suppressed": float(held)} if held else {})
            state = "firing" if c.holds else "resolved"
            message = c.message if c.holds else f"{c.rule} cleared"
            alerts.append(Alert(now, c.severity, c.rule, subject, clip(message), figures, key,
                                state, clip(c.runbook)))  # fmt: skip
            recent, held = (*recent, now), 0
            firing.symmetric_difference_update({c.rule})
        if held:
            self.held[key] = held
        else:
            self.held.pop(key, None)
        self.keys[key] = replace(history, firing=frozenset(firing))
        self.sent[key] = recent
        return alerts

    def sealed(self) -> Health:
        return Health(self.keys, self.sent, self.held, self.held_total)


def settle(
    health: Health,
    key: str,
    subject: str,
    model: str,
    conditions: Sequence[Condition],
    now: float,
    config: AlertConfig,
) -> tuple[list[Alert], Health]:
    """The alerts ``conditions`` call for on ``key``: ``firing`` for each that holds and was
    not firing, ``resolved`` for each that was firing and no longer holds (rules not among
    ``conditions`` were not judged now and stay as they are), within the key's alert budget."""
    draft = Draft(health)
    alerts = draft.settle(key, subject, model, conditions, now, config)
    return alerts, draft.sealed()


def forget(health: Health, keys: Sequence[str], now: float, why: str) -> tuple[list[Alert], Health]:
    """Drop ``keys``' histories (smiles and surfaces no longer held: their memory is bounded
    by what is quoted); each rule still firing on one resolves, saying ``why`` (outside the
    key's alert budget: the key says nothing more)."""
    draft, alerts = Draft(health), []
    for key in keys:
        history = draft.keys.pop(key, None)
        draft.sent.pop(key, None)
        draft.held.pop(key, None)
        for rule in sorted(history.firing if history else ()):
            alerts.append(Alert(now, "info", rule, key.replace("|", " "),
                                clip(f"{rule} cleared: {why}"), {}, key, "resolved"))  # fmt: skip
    return alerts, draft.sealed()
