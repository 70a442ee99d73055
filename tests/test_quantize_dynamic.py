"""quantize_dynamic: parameters from the data's own range per row (per token)
or per tensor, bit-identical to qparams_from_range + quantize (clamped to the
bits' codes), for every dtype, bit width and scheme."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qgemm


def bits_range(dtype, bits):
    return (0, 2**bits - 1) if dtype == "uint8" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def reference(x, dtype, bits, symmetric):
    """qparams_from_range + quantize on x as one tensor, NaN ignored."""
    finite = x[~np.isnan(x)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    qp = qgemm.qparams_from_range(lo, hi, dtype, symmetric, bits=bits)
    q = np.clip(qgemm.quantize(x, qp.scale, qp.zero_point, dtype), *bits_range(dtype, bits))
    return q.astype(dtype), qp.scale, qp.zero_point


def data(rng, shape, kind):
    x = rng.normal(0, 1, shape).astype(np.float32)
    if kind == "heavy":  # a few columns 50x larger
        x[..., : max(1, shape[-1] // 50)] *= 50
    elif kind == "ties":  # exact halves of a scale: the rounding edge
        x = (rng.integers(-300, 300, shape) + 0.5).astype(np.float32) / 64
    elif kind == "nan":  # anywhere but the first column: a row of no number is an error (tested apart)
        x[..., 1:][rng.random(shape[:-1] + (max(shape[-1] - 1, 0),)) < 0.3] = np.nan
    elif kind == "positive":
        x = np.abs(x)
    elif kind == "constant":
        x[...] = 0.75
    return x


@settings(max_examples=80, deadline=None)
@given(shape=st.sampled_from([(1, 1), (3, 0), (7, 33), (2, 3, 65), (40, 257), (300,)]),
       dtype=st.sampled_from(["uint8", "int8"]), bits=st.integers(2, 8), symmetric=st.booleans(),
       kind=st.sampled_from(["normal", "heavy", "ties", "nan", "positive", "constant"]),
       seed=st.integers(0, 2**32 - 1))
def test_property_per_row_equals_row_by_row_reference(shape, dtype, bits, symmetric, kind, seed):
    rng = np.random.default_rng(seed)
    x = data(rng, shape, kind)
    q, scale, zp = qgemm.quantize_dynamic(x, dtype, per_row=True, bits=bits, symmetric=symmetric)
    assert q.shape == x.shape and q.dtype == np.dtype(dtype)
    assert scale.shape == x.shape[:-1] and scale.dtype == np.float32
    assert zp.shape == x.shape[:-1] and zp.dtype == np.int32
    lo, hi = bits_range(dtype, bits)
    assert q.size == 0 or (q.min() >= lo and q.max() <= hi)
    for idx in np.ndindex(x.shape[:-1]):
        rq, rs, rz = reference(x[idx], dtype, bits, symmetric)
        assert scale[idx] == rs and zp[idx] == rz
        np.testing.assert_array_equal(q[idx], rq)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(0,), (5,), (7, 33), (2, 3, 65)]), dtype=st.sampled_from(["uint8", "int8"]),
       bits=st.integers(2, 8), symmetric=st.booleans(), kind=st.sampled_from(["normal", "heavy", "nan"]),
       seed=st.integers(0, 2**32 - 1))
def test_property_per_tensor(shape, dtype, bits, symmetric, kind, seed):
    rng = np.random.default_rng(seed)
    x = data(rng, shape, kind)
    q, scale, zp = qgemm.quantize_dynamic(x, dtype, per_row=False, bits=bits, symmetric=symmetric)
    rq, rs, rz = reference(x, dtype, bits, symmetric)
    assert isinstance(zp, int) and scale == rs and zp == rz
    np.testing.assert_array_equal(q, rq)


def test_8_bit_per_tensor_is_choose_qparams_and_quantize(rng):
    x = rng.normal(size=(64, 300)).astype(np.float32)
    for dtype in ("uint8", "int8"):
        for symmetric in (False, True):
            qp = qgemm.choose_qparams(x, dtype, symmetric)
            q, s, z = qgemm.quantize_dynamic(x, dtype, per_row=False, symmetric=symmetric)
            assert s == qp.scale and z == qp.zero_point
            np.testing.assert_array_equal(q, qgemm.quantize(x, qp.scale, qp.zero_point, dtype))


def test_large_threaded_rows(rng):
    x = rng.normal(size=(333, 4099)).astype(np.float32)
    x[17] *= 1000
    q, s, z = qgemm.quantize_dynamic(x, bits=7)
    for r in (0, 17, 200, 332):
        rq, rs, rz = reference(x[r], "uint8", 7, False)
        assert s[r] == rs and z[r] == rz
        np.testing.assert_array_equal(q[r], rq)


def test_symmetric_bits_zero_point_inside_the_codes():
    qp = qgemm.qparams_from_range(-1.0, 2.0, "uint8", symmetric=True, bits=7)
    assert qp.zero_point == 64 and qp.qmin <= qp.zero_point
    qp = qgemm.qparams_from_range(-1.0, 2.0, "int8", symmetric=True, bits=4)
    assert qp.zero_point == 0 and qp.scale == np.float32(2.0) / np.float32(7.5)


def test_bad_arguments(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    for bits in (1, 9, 7.0, True):
        with pytest.raises(ValueError, match="bits"):
            qgemm.quantize_dynamic(x, bits=bits)
    with pytest.raises(ValueError, match="dtype"):
        qgemm.quantize_dynamic(x, "int16")
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        qgemm.quantize_dynamic(x.astype(np.int32))
    with pytest.raises(ValueError, match="per_row=True needs x with at least 1 dimension"):
        qgemm.quantize_dynamic(np.float32(1.0))
    x[1, 2] = np.inf
    for per_row in (True, False):
        with pytest.raises(ValueError, match="infinity"):
            qgemm.quantize_dynamic(x, per_row=per_row)
    with pytest.raises(ValueError, match="too wide"):
        qgemm.quantize_dynamic(np.array([[-3e38, 3e38]], np.float32))
    with pytest.raises(ValueError, match="bits or reduce_range"):
        qgemm.qparams_from_range(-1, 1, "uint8", reduce_range=True, bits=7)
