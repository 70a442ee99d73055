"""qlinear_matmul / requantize / quantize_multiplier: bit-exact with ONNX
Runtime's QLinearMatMul and with NumPy references of both schemes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qgemm
from reference import QR, exact_matmul, rand_q, requantize_float, run_onnx_node


def srdhm(a, b):
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = ab + nudge
    res = np.where(q >= 0, q >> 31, -((-q) >> 31))  # C division truncates toward zero
    return np.where((a == -2**31) & (b == -2**31), 2**31 - 1, res)


def rdbpot(x, e):
    x, e = np.asarray(x, np.int64), np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def ref_fixed(acc, mult, shift, zp, lo, hi):
    acc = np.asarray(acc, np.int64)
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = ((acc << left) + 2**31) % 2**32 - 2**31  # the int32 left shift wraps
    return np.clip(rdbpot(srdhm(x, mult), right) + zp, lo, hi)


# ---- quantize_multiplier ------------------------------------------------------

@pytest.mark.parametrize("real", [1e-9, 0.000123, 0.25, 0.5, 0.75, 0.999999999, 1.0, 1.5, 3.0, 1234.5])
def test_quantize_multiplier_represents_the_real_value(real):
    m, s = qgemm.quantize_multiplier(real)
    assert 2**30 <= m < 2**31
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2**-30


def test_quantize_multiplier_edge_cases():
    assert qgemm.quantize_multiplier(0.0) == (0, 0)
    assert qgemm.quantize_multiplier(1.0) == (2**30, 1)
    # q rounds up to exactly 2**31: renormalized
    assert qgemm.quantize_multiplier(1.0 - 2**-40) == (2**30, 1)
    assert qgemm.quantize_multiplier(1e-20) == (0, 0)
    with pytest.raises(ValueError, match="multiplier"):
        qgemm.quantize_multiplier(-1.0)


# ---- parity with ONNX Runtime ------------------------------------------------------

def ort_qlinear_matmul(a, sa, za, b, sb, zb, sy, zy):
    return run_onnx_node("QLinearMatMul", {"a": a},
                         {"sa": np.asarray(sa, np.float32), "za": za, "b": b,
                          "sb": np.asarray(sb, np.float32), "zb": zb,
                          "sy": np.asarray(sy, np.float32), "zy": zy}, a.dtype)


CASES = [  # (a dtype, b dtype, 7-bit a)
    ("int8", "int8", False),
    ("uint8", "int8", True),   # ONNX Runtime's u8s8 path is exact on 7-bit activations
    ("uint8", "uint8", False),
]


@pytest.mark.parametrize("adt,bdt,seven", CASES)
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_bit_exact_with_onnxruntime_qlinear_matmul(rng, adt, bdt, seven, per_column, ties):
    m, k, n = 37, 300, 45
    a = rand_q(rng, (m, k), adt, hi=127 if seven else None)
    b = rand_q(rng, (k, n), bdt)
    za = np.array(rng.integers(*QR[adt]) if not seven else 60, adt)
    zb = np.array(rng.integers(*QR[bdt]) if bdt == "uint8" else 0, bdt)
    sa = np.float32(0.0173)
    sb = (rng.random(n) * 0.02 + 0.001).astype(np.float32) if per_column else np.float32(0.0121)
    if ties:  # acc * M lands on .5 often: multipliers 1/2 and 1/4
        sa, sb, sy = np.float32(1.0), (np.full(n, 1.0, np.float32) if per_column else np.float32(1.0)), np.float32(2.0)
    else:
        sy = np.float32(rng.random() * 3 + 0.5)
    zy = np.array(rng.integers(*QR[adt]), adt)
    ours = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, zy)
    assert ours.dtype == np.dtype(adt)
    theirs = ort_qlinear_matmul(a, sa, za, b, sb, zb, sy, zy)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("adt,bdt,seven", CASES)
def test_matches_numpy_reference_float_scheme(rng, adt, bdt, seven):
    a = rand_q(rng, (3, 20, 150), adt)
    b = rand_q(rng, (150, 33), bdt)
    za, zb = int(rng.integers(*QR[adt])), rand_q(rng, 33, bdt).astype(np.int32)
    sa, sb, sy = np.float32(0.05), (rng.random(33) * 0.1 + 0.01).astype(np.float32), np.float32(3.3)
    zy = int(rng.integers(*QR[adt]))
    y = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, zy)
    mult = (np.float32(sa) * sb).astype(np.float32) / sy
    lo, hi = QR[adt]
    np.testing.assert_array_equal(y, requantize_float(exact_matmul(a, b, za, zb), mult, zy, lo, hi))


def test_full_range_u8s8_exact_where_onnxruntime_saturates(rng):
    a = rand_q(rng, (64, 512), "uint8")
    b = rand_q(rng, (512, 64), "int8")
    za, zb = np.array(0, np.uint8), np.array(0, np.int8)
    sa, sb, sy = np.float32(1.0), np.float32(1.0), np.float32(64.0)
    ours = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, np.array(128, np.uint8))
    want = requantize_float(exact_matmul(a, b, 0, 0), np.float32(1 / 64), 128, 0, 255)
    np.testing.assert_array_equal(ours, want)
    theirs = ort_qlinear_matmul(a, sa, za, b, sb, zb, sy, np.array(128, np.uint8))
    if np.array_equal(theirs, want):
        # With AVX-512 VNNI / AVX-VNNI (vpdpbusd accumulates in int32) ONNX
        # Runtime is exact too; its saturating vpmaddubsw path is AVX2-only.
        pytest.skip("this ONNX Runtime build computed u8 x s8 exactly on this CPU (no saturating path)")
    assert not np.array_equal(theirs, want)


# ---- fixed point ---------------------------------------------------------------

@pytest.mark.parametrize("adt,bdt", [("int8", "int8"), ("uint8", "int8"), ("uint8", "uint8"), ("int8", "uint8")])
def test_fixed_point_scheme_matches_gemmlowp_reference(rng, adt, bdt):
    a, b = rand_q(rng, (40, 257), adt), rand_q(rng, (257, 50), bdt)
    za, zb = int(rng.integers(*QR[adt])), int(rng.integers(*QR[bdt]))
    sa, sb, sy = np.float32(0.031), (rng.random(50) * 0.05 + 0.001).astype(np.float32), np.float32(1.7)
    bias = rng.integers(-20000, 20000, 50).astype(np.int32)
    zy = int(rng.integers(*QR[adt]))
    y = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, zy, bias=bias, requant="fixed_point")
    real = (np.float32(sa) * sb).astype(np.float32).astype(np.float64) / np.float64(sy)
    mult, shift = zip(*(qgemm.quantize_multiplier(r) for r in real))
    acc = exact_matmul(a, b, za, zb) + bias
    lo, hi = QR[adt]
    np.testing.assert_array_equal(y, ref_fixed(acc, np.array(mult), np.array(shift), zy, lo, hi))


def test_fixed_point_extremes_through_requantize():
    acc = np.array([[-2**31, 2**31 - 1, 0, -1, 1, 12345, -12345, 2**30]], np.int32)
    for real in [2**-31 * 1.5, 0.3, 0.5, 0.999, 1.0, 7.5]:
        y = qgemm.requantize(acc, real, 3, dtype="int8", requant="fixed_point")
        m, s = qgemm.quantize_multiplier(real)
        np.testing.assert_array_equal(y, ref_fixed(acc, m, s, 3, -128, 127))


# ---- float32 output, bias, activations ------------------------------------------------

def test_float32_output_is_the_dequantized_accumulator(rng):
    a, b = rand_q(rng, (30, 100), "uint8"), rand_q(rng, (100, 20), "int8")
    sa, sb = np.float32(0.02), (rng.random(20) * 0.01 + 0.001).astype(np.float32)
    bias = rng.standard_normal(20).astype(np.float32)
    y = qgemm.qlinear_matmul(a, sa, 128, b, sb, None, None, None, bias=bias, out_dtype="float32")
    assert y.dtype == np.float32
    scale = (sa * sb).astype(np.float32)
    want = (exact_matmul(a, b, 128, 0).astype(np.float32) * scale).astype(np.float32) + bias
    np.testing.assert_array_equal(y, want)
    relu = qgemm.qlinear_matmul(a, sa, 128, b, sb, None, None, None, bias=bias, out_dtype="float32",
                                activation="relu")
    np.testing.assert_array_equal(relu, np.maximum(want, 0))


@pytest.mark.parametrize("activation", ["relu", "relu6", (-0.5, 0.25)])
def test_activations_clamp_in_output_codes(rng, activation):
    a, b = rand_q(rng, (25, 64), "int8"), rand_q(rng, (64, 30), "int8")
    sa, sb, sy, zy = np.float32(0.05), np.float32(0.04), np.float32(0.02), -10
    plain = qgemm.qlinear_matmul(a, sa, 0, b, sb, 0, sy, zy).astype(int)
    act = qgemm.qlinear_matmul(a, sa, 0, b, sb, 0, sy, zy, activation=activation).astype(int)
    lo, hi = {"relu": (0.0, math.inf), "relu6": (0.0, 6.0)}.get(activation, activation) if isinstance(activation, str) else activation
    qlo = max(-128, int(np.rint(np.float32(lo) / sy)) + zy)
    qhi = 127 if math.isinf(hi) else min(127, int(np.rint(np.float32(hi) / sy)) + zy)
    np.testing.assert_array_equal(act, np.clip(plain, qlo, qhi))


def test_int_and_float_bias(rng):
    a, b = rand_q(rng, (10, 40), "int8"), rand_q(rng, (40, 12), "int8")
    sa, sb, sy = np.float32(0.1), np.float32(0.05), np.float32(0.3)
    ib = rng.integers(-500, 500, 12).astype(np.int32)
    y = qgemm.qlinear_matmul(a, sa, 0, b, sb, 0, sy, 0, bias=ib)
    mult = np.float32(np.float32(sa * sb) / sy)
    np.testing.assert_array_equal(y, requantize_float(exact_matmul(a, b, 0, 0) + ib, mult, 0, -128, 127))
    fb = rng.standard_normal(12).astype(np.float32)
    y = qgemm.qlinear_matmul(a, sa, 0, b, sb, 0, sy, 0, bias=fb)
    offset = (fb / np.float32(sa * sb)).astype(np.float32)
    np.testing.assert_array_equal(y, requantize_float(exact_matmul(a, b, 0, 0), mult, 0, -128, 127, offset))


def test_packed_b_batches_and_out(rng):
    a, b = rand_q(rng, (2, 3, 17, 50), "uint8"), rand_q(rng, (50, 19), "int8")
    zb = rand_q(rng, 19, "int8")
    sb = (rng.random(19) * 0.01 + 0.001).astype(np.float32)
    p = qgemm.pack(b, zb)
    y1 = qgemm.qlinear_matmul(a, 0.02, 7, p, sb, None, 0.5, 100)
    y2 = qgemm.qlinear_matmul(a, 0.02, 7, b, sb, zb, 0.5, 100)
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == (2, 3, 17, 19) and y1.dtype == np.uint8
    out = np.empty((2, 3, 19, 17), np.uint8).transpose(0, 1, 3, 2)
    assert qgemm.qlinear_matmul(a, 0.02, 7, p, sb, None, 0.5, 100, out=out) is out
    np.testing.assert_array_equal(out, y1)


def test_requantize_equals_the_fused_epilogue(rng):
    a, b = rand_q(rng, (33, 70), "int8"), rand_q(rng, (70, 21), "int8")
    sa, sb, sy = np.float32(0.05), (rng.random(21) * 0.05 + 0.01).astype(np.float32), np.float32(0.7)
    bias = rng.integers(-1000, 1000, 21).astype(np.int32)
    mult = (np.float32(sa) * sb).astype(np.float32) / sy
    acc = qgemm.matmul(a, b)
    for scheme in ("float", "fixed_point"):
        fused = qgemm.qlinear_matmul(a, sa, 0, b, sb, 0, sy, 4, bias=bias, requant=scheme, activation="relu")
        real = mult if scheme == "float" else (np.float32(sa) * sb).astype(np.float32).astype(np.float64) / np.float64(sy)
        alone = qgemm.requantize(acc, real, 4, bias=bias, clamp=(4, 127), requant=scheme)
        np.testing.assert_array_equal(fused, alone)


def test_large_k_single_pass_epilogue(rng):
    a, b = rand_q(rng, (7, 5000), "int8"), rand_q(rng, (5000, 9), "int8")
    y = qgemm.qlinear_matmul(a, 0.01, 0, b, 0.01, 0, 2.0, 0)
    np.testing.assert_array_equal(y, requantize_float(exact_matmul(a, b, 0, 0), np.float32(np.float32(1e-4) / 2), 0, -128, 127))


@settings(max_examples=80, deadline=None)
@given(m=st.integers(0, 60), n=st.integers(0, 60), k=st.integers(0, 120),
       adt=st.sampled_from(["int8", "uint8"]), bdt=st.sampled_from(["int8", "uint8"]),
       scheme=st.sampled_from(["float", "fixed_point"]), seed=st.integers(0, 2**32 - 1))
def test_property_both_schemes(m, n, k, adt, bdt, scheme, seed):
    rng = np.random.default_rng(seed)
    a, b = rand_q(rng, (m, k), adt), rand_q(rng, (k, n), bdt)
    za, zb = int(rng.integers(*QR[adt])), int(rng.integers(*QR[bdt]))
    sa, sb, sy = np.float32(rng.random() + 0.01), np.float32(rng.random() * 0.01 + 1e-4), np.float32(rng.random() * 10 + 0.1)
    zy = int(rng.integers(*QR[adt]))
    y = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, zy, requant=scheme)
    acc = exact_matmul(a, b, za, zb)
    lo, hi = QR[adt]
    if scheme == "float":
        want = requantize_float(acc, np.float32(np.float32(sa * sb) / sy), zy, lo, hi)
    else:
        mm, ss = qgemm.quantize_multiplier(np.float64(np.float32(sa * sb)) / np.float64(sy))
        want = ref_fixed(acc, mm, ss, zy, lo, hi)
    np.testing.assert_array_equal(y, want.reshape(m, n))
