"""quantize / dequantize: ONNX QuantizeLinear / DequantizeLinear semantics,
bit-exact with ONNX Runtime; the documented differences from PyTorch."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import qgemm
from reference import QR, ort_dequantize, ort_quantize


def reference_quantize(x, scale, zp, dtype, axis=None):
    """ONNX QuantizeLinear in NumPy: float32 division, round half to even."""
    x = np.asarray(x, np.float32)
    s = np.asarray(scale, np.float32)
    z = np.asarray(zp, np.int64)
    if axis is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    lo, hi = QR[dtype]
    with np.errstate(all="ignore"):
        v = np.rint(x / s)
        v = np.where(np.isnan(v), -np.inf, v)  # NaN -> qmin
        v = np.clip(v + z, lo, hi)
    return v.astype(dtype)


def edge_values(scale):
    ties = (np.arange(-300, 300) + 0.5).astype(np.float32) * np.float32(scale)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e-45, -1e-45], np.float32)
    return np.concatenate([ties, specials])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 1000, 100_003])
def test_matches_reference_per_tensor(rng, dtype, n):
    scale = np.float32(0.0371)
    zp = 3 if dtype == "int8" else 131
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[: min(n, 609)] = edge_values(scale)[: min(n, 609)]
    q = qgemm.quantize(x, scale, zp, dtype=dtype)
    assert q.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(q, reference_quantize(x, scale, zp, dtype))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_bit_exact_with_onnxruntime_per_tensor(rng, dtype):
    scale = np.float32(0.0213)
    zp = np.array(-7 if dtype == "int8" else 140, dtype=dtype)
    x = np.concatenate([(rng.standard_normal(100_000) * 4).astype(np.float32), edge_values(scale)])
    x = x[np.isfinite(x) | np.isinf(x)]  # keep NaN too: both map it to qmin
    ours = qgemm.quantize(x, scale, zp)
    theirs = ort_quantize(x, scale, zp)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_bit_exact_with_onnxruntime_per_axis(rng, dtype, axis):
    shape = (5, 6, 67)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    c = shape[axis]
    scale = (rng.random(c) * 0.05 + 0.005).astype(np.float32)
    lo, hi = QR[dtype]
    zp = rng.integers(lo, hi + 1, c).astype(dtype)
    # exact ties in channel 0 of the axis
    idx = [slice(None)] * 3
    idx[axis] = 0
    x[tuple(idx)] = (np.round(x[tuple(idx)] * 10) + 0.5) * scale[0]
    ours = qgemm.quantize(x, scale, zp, axis=axis)
    np.testing.assert_array_equal(ours, ort_quantize(x, scale, zp, axis=axis))
    np.testing.assert_array_equal(ours, reference_quantize(x, scale, zp, dtype, axis))
    deq = qgemm.dequantize(ours, scale, zp, axis=axis)
    np.testing.assert_array_equal(deq, ort_dequantize(ours, scale, zp, axis=axis))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dequantize_bit_exact_with_onnxruntime(rng, dtype):
    lo, hi = QR[dtype]
    q = rng.integers(lo, hi + 1, 100_001).astype(dtype)
    zp = np.array(lo + 77, dtype=dtype)
    scale = np.float32(0.173)
    ours = qgemm.dequantize(q, scale, zp)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ort_dequantize(q, scale, zp))
    np.testing.assert_array_equal(ours, (q.astype(np.float32) - np.float32(zp)) * scale)


def test_nan_and_infinities_documented_behaviour():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32)
    np.testing.assert_array_equal(qgemm.quantize(x, 0.1, 5, dtype="int8"), [-128, 127, -128, 5, 5])
    np.testing.assert_array_equal(qgemm.quantize(x, 0.1, 5, dtype="uint8"), [0, 255, 0, 5, 5])


def test_exact_ties_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)
    np.testing.assert_array_equal(qgemm.quantize(x, 1.0, 0), [0, 2, 2, 0, -2, -2])


def test_wider_and_narrower_floats_go_through_float32(rng):
    x64 = rng.standard_normal(1000) * 3
    q = qgemm.quantize(x64, 0.05, 0)
    np.testing.assert_array_equal(q, qgemm.quantize(x64.astype(np.float32), 0.05, 0))
    x16 = x64.astype(np.float16)
    np.testing.assert_array_equal(qgemm.quantize(x16, 0.05, 0), qgemm.quantize(x16.astype(np.float32), 0.05, 0))


def test_any_strides_and_out(rng):
    x = rng.standard_normal((64, 50)).astype(np.float32)
    view = x[::-2, 3::3].T  # negative, non-unit, transposed
    want = reference_quantize(np.ascontiguousarray(view), 0.02, 1, "int8")
    np.testing.assert_array_equal(qgemm.quantize(view, 0.02, 1), want)
    out = np.empty((view.shape[1], view.shape[0]), np.int8).T  # non-contiguous out
    res = qgemm.quantize(view, 0.02, 1, out=out)
    assert res is out
    np.testing.assert_array_equal(out, want)
    deq_out = np.empty(view.shape, np.float32)
    assert qgemm.dequantize(want, 0.02, 1, out=deq_out) is deq_out


def test_dtype_inferred_from_zero_point():
    x = np.array([-1.0, 1.0], np.float32)
    assert qgemm.quantize(x, 0.1, np.uint8(128)).dtype == np.uint8
    assert qgemm.quantize(x, 0.1, np.int8(0)).dtype == np.int8
    assert qgemm.quantize(x, 0.1, 0).dtype == np.int8


def test_empty_arrays():
    assert qgemm.quantize(np.zeros((0, 3), np.float32), 0.1, 0).shape == (0, 3)
    assert qgemm.quantize(np.zeros((0, 3), np.float32), [0.1] * 3, [0] * 3, axis=1).shape == (0, 3)
    assert qgemm.dequantize(np.zeros((2, 0), np.int8), 0.1, 0).shape == (2, 0)


def test_threaded_large_per_channel_matches_reference(rng):
    x = (rng.standard_normal((3, 1000, 700)) * 2).astype(np.float32)
    scale = (rng.random(1000) * 0.1 + 0.01).astype(np.float32)
    zp = rng.integers(-128, 128, 1000)
    q = qgemm.quantize(x, scale, zp, axis=1)
    np.testing.assert_array_equal(q, reference_quantize(x, scale, zp, "int8", axis=1))


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=40),
                 elements=st.one_of(st.floats(-1e4, 1e4, width=32),
                                    st.sampled_from([np.nan, np.inf, -np.inf, -0.0]))),
    dtype=st.sampled_from(["int8", "uint8"]),
    scale=st.floats(2.0**-10, 2.0**10, width=32),
    data=st.data(),
)
def test_property_per_tensor_and_roundtrip(x, dtype, scale, data):
    lo, hi = QR[dtype]
    zp = data.draw(st.integers(lo, hi))
    q = qgemm.quantize(x, scale, zp, dtype=dtype)
    np.testing.assert_array_equal(q, reference_quantize(x, scale, zp, dtype))
    deq = qgemm.dequantize(q, scale, zp)
    np.testing.assert_array_equal(deq, (q.astype(np.float32) - np.float32(zp)) * np.float32(scale))


# ---- PyTorch: it multiplies by 1/scale, so exact ties can land one step away ----

def test_torch_differs_by_at_most_one_step_and_only_near_ties(rng):
    torch = pytest.importorskip("torch")
    scale = 0.3  # not a power of two: 1/scale is inexact
    x = np.concatenate([(np.arange(-1000, 1000) + 0.5) * np.float32(scale),
                        rng.standard_normal(100_000) * 5]).astype(np.float32)
    ours = qgemm.quantize(x, scale, 0).astype(np.int32)
    theirs = torch.quantize_per_tensor(torch.from_numpy(x), scale, 0, torch.qint8).int_repr().numpy().astype(np.int32)
    diff = ours != theirs
    assert np.abs(ours - theirs).max() <= 1
    assert diff.any(), "expected PyTorch to differ on some exact ties (it multiplies by a reciprocal)"
    # Every difference sits on (or within float rounding of) a .5 boundary.
    frac = np.abs(np.abs(x[diff] / np.float32(scale)) % 1 - 0.5)
    assert frac.max() < 1e-3
    # And PyTorch's results are exactly the "multiply by reciprocal" rule.
    inv = np.float32(1.0) / np.float32(scale)
    np.testing.assert_array_equal(theirs, np.clip(np.rint(x * inv), -128, 127).astype(np.int32))


def test_torch_per_channel_agrees_off_ties(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((16, 33)).astype(np.float32)
    scale = np.full(16, 0.125, np.float32)  # power of two: 1/scale exact, so no tie differences
    zp = rng.integers(-20, 20, 16)
    ours = qgemm.quantize(x, scale, zp, axis=0)
    theirs = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scale.astype(np.float64)),
                                        torch.from_numpy(zp), 0, torch.qint8).int_repr().numpy()
    np.testing.assert_array_equal(ours, theirs)
