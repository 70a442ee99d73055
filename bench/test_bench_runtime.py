"""Both operands at run time: a plain B packed inside the call, and the
batched products of attention (12 heads), against NumPy float32 on the same
shapes."""

from __future__ import annotations

import numpy as np
import pytest

import qgemm
from reference import exact_matmul

RUNTIME_B = {"16x4096x4096": (16, 4096, 4096), "128x4096x4096": (128, 4096, 4096), "256^3": (256, 256, 256),
             "512x64x512": (512, 64, 512), "1024^3": (1024, 1024, 1024)}
ATTENTION = {"QK^T (12,128,64)@(12,64,128)": ((12, 128, 64), (12, 64, 128)),
             "PV (12,128,128)@(12,128,64)": ((12, 128, 128), (12, 128, 64))}


@pytest.mark.parametrize("name", list(RUNTIME_B))
def test_matmul_runtime_b(benchmark, rand_int, check_rows, name):
    m, k, n = RUNTIME_B[name]
    a, b = rand_int((m, k), np.uint8), rand_int((k, n), np.int8)
    benchmark.group = "matmul, plain B packed in the call"
    benchmark.extra_info["GOP"] = 2 * m * k * n / 1e9
    c = benchmark(qgemm.matmul, a, b, 128)
    check_rows(c, a, b, a_zero_point=128)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("name", list(ATTENTION))
def test_attention_batched(benchmark, rand_int, name, dtype):
    ashape, bshape = ATTENTION[name]
    a, b = rand_int(ashape, dtype), rand_int(bshape, np.int8)
    benchmark.group = f"attention {name}"
    benchmark.extra_info["GOP"] = 2 * np.prod(ashape) * bshape[-1] / 1e9
    c = benchmark(qgemm.matmul, a, b)
    np.testing.assert_array_equal(c[-1], exact_matmul(a[-1], b[-1]))


@pytest.mark.parametrize("name", list(ATTENTION))
def test_attention_numpy_float32(benchmark, rng, name):
    ashape, bshape = ATTENTION[name]
    a, b = rng.standard_normal(ashape).astype(np.float32), rng.standard_normal(bshape).astype(np.float32)
    benchmark.group = f"attention {name}"
    benchmark(np.matmul, a, b)
