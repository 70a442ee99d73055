"""Shared fixtures for the qgemm microbenchmarks (pytest-benchmark).

    pytest bench/ --benchmark-only          # measure
    pytest bench/ --benchmark-disable -q    # smoke: every benchmark runs once and checks its result

Each benchmark also checks its result against a cheap reference (a few rows
against an int64 NumPy computation), so a fast wrong answer fails.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def rand_int(rng):
    def make(shape, dtype):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=np.int32).astype(dtype)
    return make


@pytest.fixture
def check_rows():
    """check_rows(c, a, b, a_zero_point=0, rows=4): the first and last rows of c equal the
    int64 reference (A - za) @ B."""
    def check(c, a, b, a_zero_point=0, rows=4):
        m = a.shape[0]
        idx = sorted({*range(min(rows, m)), *range(max(m - rows, 0), m)})
        ref = (a[idx].astype(np.int64) - a_zero_point) @ b.astype(np.int64)
        np.testing.assert_array_equal(c[idx], ref)
    return check
