"""GEMM, GEMV, qlinear_matmul and the dynamic Linear layer."""

from __future__ import annotations

import numpy as np
import pytest

import qgemm
from reference import exact_matmul, requantize_float

SHAPES = {"64^3": (64, 64, 64), "256^3": (256, 256, 256), "1024^3": (1024, 1024, 1024),
          "gemv 1x4096x4096": (1, 4096, 4096)}


@pytest.mark.parametrize("name", list(SHAPES))
def test_matmul_s8s8_packed(benchmark, rand_int, check_rows, name):
    m, k, n = SHAPES[name]
    a, b = rand_int((m, k), np.int8), rand_int((k, n), np.int8)
    packed = qgemm.pack(b)
    benchmark.group = "matmul s8s8 packed"
    benchmark.extra_info["GOP"] = 2 * m * k * n / 1e9
    c = benchmark(qgemm.matmul, a, packed)
    assert c.dtype == np.int32 and c.shape == (m, n)
    check_rows(c, a, b)


def test_matmul_u8s8_packed_1024(benchmark, rand_int, check_rows):
    a, b = rand_int((1024, 1024), np.uint8), rand_int((1024, 1024), np.int8)
    packed = qgemm.pack(b)
    benchmark.group = "matmul s8s8 packed"
    c = benchmark(qgemm.matmul, a, packed, a_zero_point=128)
    check_rows(c, a, b, a_zero_point=128)


def test_matmul_unpacked_256(benchmark, rand_int, check_rows):
    a, b = rand_int((256, 256), np.int8), rand_int((256, 256), np.int8)
    benchmark.group = "matmul unpacked"
    c = benchmark(qgemm.matmul, a, b)
    check_rows(c, a, b)


def test_qlinear_matmul_1024(benchmark, rand_int):
    n = 1024
    a, b = rand_int((n, n), np.int8), rand_int((n, n), np.int8)
    packed = qgemm.pack(b)
    sa, sb = 0.02, 0.01
    ys = sa * sb * np.sqrt(n) * 74.0 * 74.0 / 40.0  # spreads the results over the int8 range
    benchmark.group = "qlinear_matmul"
    y = benchmark(qgemm.qlinear_matmul, a, sa, 0, packed, sb, None, ys, 0)
    assert y.dtype == np.int8 and y.shape == (n, n)
    rows = [0, 1, n - 1]
    m = np.float32(np.float32(sa) * np.float32(sb)) / np.float32(ys)
    ref = requantize_float(exact_matmul(a[rows], b), m, 0, -128, 127)
    np.testing.assert_array_equal(y[rows], ref)
    codes = y[rows].astype(np.int32)
    assert codes.std() > 10 and np.mean(np.abs(codes) >= 127) < 0.05  # a real, unsaturated requantization


@pytest.mark.parametrize("shape", [(128, 4096, 4096)], ids=["128x4096x4096"])
def test_dynamic_linear(benchmark, rng, shape):
    m, kin, kout = shape
    w = (rng.standard_normal((kout, kin)) / np.sqrt(kin)).astype(np.float32)
    bias = rng.standard_normal(kout).astype(np.float32) * 0.1
    x = rng.standard_normal((m, kin)).astype(np.float32)
    lin = qgemm.nn.Linear.from_float(w, bias)
    benchmark.group = "dynamic Linear"
    y = benchmark(lin, x)
    assert y.dtype == np.float32 and y.shape == (m, kout)
    ref = x[:4] @ w.T + bias
    assert np.abs(y[:4] - ref).max() <= 0.03 * np.abs(ref).max()
