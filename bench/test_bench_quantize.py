"""quantize / dequantize of 16M float32, per tensor, int8 and uint8."""

from __future__ import annotations

import numpy as np
import pytest

import qgemm

N = 1 << 24
SCALE = 0.05
ZERO_POINT = {"int8": 3, "uint8": 128}


@pytest.fixture(scope="module")
def x():
    return (np.random.default_rng(0).standard_normal(N) * 3).astype(np.float32)


def numpy_quantize(x, dtype):
    info = np.iinfo(dtype)
    z = np.float32(ZERO_POINT[dtype])
    return np.clip(np.rint(x / np.float32(SCALE)) + z, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantize_16m(benchmark, x, dtype):
    benchmark.group = "quantize 16M"
    q = benchmark(qgemm.quantize, x, SCALE, ZERO_POINT[dtype], dtype=dtype)
    assert q.dtype == np.dtype(dtype) and q.shape == x.shape
    for part in (slice(0, 4096), slice(N - 4096, N)):
        np.testing.assert_array_equal(q[part], numpy_quantize(x[part], dtype))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dequantize_16m(benchmark, x, dtype):
    benchmark.group = "dequantize 16M"
    q = qgemm.quantize(x, SCALE, ZERO_POINT[dtype], dtype=dtype)
    r = benchmark(qgemm.dequantize, q, SCALE, ZERO_POINT[dtype])
    assert r.dtype == np.float32 and r.shape == x.shape
    for part in (slice(0, 4096), slice(N - 4096, N)):
        ref = (q[part].astype(np.float32) - np.float32(ZERO_POINT[dtype])) * np.float32(SCALE)
        np.testing.assert_array_equal(r[part], ref)
