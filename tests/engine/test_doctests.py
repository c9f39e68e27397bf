"""The examples in the engine's docstrings run and print what they say."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "engine.blackscholes",
        "engine.sabr.calibrator",
        "engine.heston.calibrator",
        "engine.heston.time_dependent",
    ],
)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
