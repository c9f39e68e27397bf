"""The playbook jobs' names, in one table: what the CLI offers, the worker's schedule accepts
(``VOLSTREAM_JOBS``) and each report is called."""

from __future__ import annotations

__all__ = [
    "DAILY_SABR",
    "JOB_NAMES",
    "JOINT",
    "MODEL_SELECTION",
    "OUT_OF_SAMPLE",
    "TERM_STRUCTURE",
    "WEEKLY_HESTON",
]

DAILY_SABR = "daily-sabr"
WEEKLY_HESTON = "weekly-heston"
JOINT = "joint"
TERM_STRUCTURE = "term-structure"
MODEL_SELECTION = "model-selection"
JOB_NAMES = (DAILY_SABR, WEEKLY_HESTON, JOINT, TERM_STRUCTURE, MODEL_SELECTION)
OUT_OF_SAMPLE = (MODEL_SELECTION, TERM_STRUCTURE)  # the jobs that test on prior dates
