"""quantize_dynamic on 16M float32 (4096 rows of 4096): per row (one pass per
row: range, parameters, codes) against the per-tensor pair it replaces
(choose_qparams + quantize: two passes over the data)."""

from __future__ import annotations

import numpy as np
import pytest

import qgemm

ROWS, K = 4096, 4096


@pytest.fixture(scope="module")
def x():
    x = np.random.default_rng(0).standard_normal((ROWS, K)).astype(np.float32)
    x[:, :8] *= 50  # a few heavy columns, as transformer activations have
    return x


def check_rows(q, scale, zp, x, bits):
    for r in (0, ROWS - 1):
        qp = qgemm.qparams_from_range(x[r].min(), x[r].max(), "uint8", bits=bits)
        assert scale[r] == qp.scale and zp[r] == qp.zero_point
        want = np.clip(qgemm.quantize(x[r], qp.scale, qp.zero_point, "uint8"), 0, 2**bits - 1)
        np.testing.assert_array_equal(q[r], want)


@pytest.mark.parametrize("bits", [7, 8])
def test_quantize_dynamic_per_row_16m(benchmark, x, bits):
    benchmark.group = "dynamic quantization 16M"
    q, scale, zp = benchmark(qgemm.quantize_dynamic, x, "uint8", True, bits)
    check_rows(q, scale, zp, x, bits)


def test_quantize_dynamic_per_tensor_16m(benchmark, x):
    benchmark.group = "dynamic quantization 16M"
    q, scale, zp = benchmark(qgemm.quantize_dynamic, x, "uint8", False, 8)
    qp = qgemm.choose_qparams(x, "uint8")
    assert scale == qp.scale and zp == qp.zero_point
    np.testing.assert_array_equal(q[:2], qgemm.quantize(x[:2], qp.scale, qp.zero_point, "uint8"))


def test_choose_qparams_and_quantize_16m(benchmark, x):
    benchmark.group = "dynamic quantization 16M"

    def pair():
        qp = qgemm.choose_qparams(x, "uint8")
        return qgemm.quantize(x, qp.scale, qp.zero_point, "uint8"), qp

    q, qp = benchmark(pair)
    np.testing.assert_array_equal(q[-2:], qgemm.quantize(x[-2:], qp.scale, qp.zero_point, "uint8"))
