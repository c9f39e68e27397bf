"""The bounds map's saturation test: which stops are on a bound, and so no solution."""

import math

import numpy as np

from engine.parameters import on_bound, to_constrained

BOUNDS = [(0.0, math.inf), (-1.0, 1.0), (1e-3, 30.0)]  # alpha-like, rho-like, kappa-like


def test_a_value_at_a_two_sided_bound_is_flagged_and_a_one_sided_bound_never():
    values = np.array(
        [
            [0.1, 0.3, 2.0],  # inside
            [1e-14, 0.3, 2.0],  # tiny, but its bound is one-sided: the exp map never saturates
            [0.1, float(to_constrained(40.0, -1.0, 1.0)), 2.0],  # rho pushed to +1
            [0.1, -0.3, 30.0 - 1e-6],  # kappa within 1e-6 x 30 of its top
            [0.1, -0.3, 30.0 - 1e-3],  # close, but not within 1e-6 of the range
        ]
    )
    np.testing.assert_array_equal(on_bound(values, BOUNDS), [False, False, True, True, False])
    assert on_bound(values.reshape(5, 1, 3), BOUNDS).shape == (5, 1)  # batch axes kept
