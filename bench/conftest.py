"""Shared fixtures for the qgemm microbenchmarks (pytest-benchmark).

    pytest bench/ --benchmark-only          # measure
    pytest bench/ --benchmark-disable -q    # smoke: every benchmark runs once and checks its result

Each benchmark also checks its result against a cheap reference (a few rows
against an int64 NumPy computation), so a fast wrong answer fails.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# The exact references live with the tests (tests/reference.py): one copy for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference import exact_matmul, rand_q  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def rand_int(rng):
    return lambda shape, dtype: rand_q(rng, shape, dtype)


@pytest.fixture
def check_rows():
    """check_rows(c, a, b, a_zero_point=0, rows=4): the first and last rows of c equal the
    int64 reference (A - za) @ B."""
    def check(c, a, b, a_zero_point=0, rows=4):
        m = a.shape[0]
        idx = sorted({*range(min(rows, m)), *range(max(m - rows, 0), m)})
        np.testing.assert_array_equal(c[idx], exact_matmul(a[idx], b, a_zero_point))
    return check
