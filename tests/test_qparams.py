"""choose_qparams: parity with PyTorch's observers, the invariants (0.0 exact,
zero point inside the dtype) and tutorial examples done right."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import qgemm
from reference import QR


def torch_observer_qparams(x, dtype, symmetric, axis, reduce_range):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

    tdtype = torch.qint8 if dtype == "int8" else torch.quint8
    if axis is None:
        scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = MinMaxObserver(dtype=tdtype, qscheme=scheme, reduce_range=reduce_range)
    else:
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = PerChannelMinMaxObserver(ch_axis=axis, dtype=tdtype, qscheme=scheme, reduce_range=reduce_range)
    obs(torch.from_numpy(x))
    s, z = obs.calculate_qparams()
    return s.numpy().astype(np.float32), z.numpy().astype(np.int64)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("reduce_range", [False, True])
@pytest.mark.parametrize("kind", ["normal", "positive", "negative", "zeros"])
def test_parity_with_torch_observers(rng, dtype, symmetric, axis, reduce_range, kind):
    if dtype == "uint8" and symmetric and reduce_range:
        pytest.skip("PyTorch refuses symmetric reduce_range for quint8: nothing to compare")
    x = (rng.standard_normal((7, 19)) * 3 + 0.5).astype(np.float32)
    if kind == "positive":
        x = np.abs(x) + 0.25
    elif kind == "negative":
        x = -np.abs(x) - 0.25
    elif kind == "zeros":
        x = np.zeros_like(x)
    qp = qgemm.choose_qparams(x, dtype=dtype, symmetric=symmetric, axis=axis, reduce_range=reduce_range)
    ts, tz = torch_observer_qparams(x, dtype, symmetric, axis, reduce_range)
    np.testing.assert_array_equal(np.asarray(qp.scale, np.float32).reshape(-1), ts.reshape(-1))
    np.testing.assert_array_equal(np.asarray(qp.zero_point).reshape(-1), tz.reshape(-1))


@settings(max_examples=100, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=10),
                    elements=st.floats(-1e6, 1e6, width=32)),
       dtype=st.sampled_from(["int8", "uint8"]), symmetric=st.booleans(), reduce_range=st.booleans())
def test_invariants_zero_exact_and_zero_point_in_range(x, dtype, symmetric, reduce_range):
    qp = qgemm.choose_qparams(x, dtype=dtype, symmetric=symmetric, reduce_range=reduce_range)
    lo, hi = QR[dtype]
    assert lo <= qp.zero_point <= hi
    assert np.float32(qp.scale) > 0 and np.isfinite(qp.scale)
    zero = qgemm.quantize(np.zeros(1, np.float32), qp.scale, qp.zero_point, dtype=dtype)
    assert zero[0] == qp.zero_point
    assert qgemm.dequantize(zero, qp.scale, qp.zero_point)[0] == 0.0
    # Every observed value lands within half a step (plus float slack) unless clipped by design.
    q = qgemm.quantize(x, qp.scale, qp.zero_point, dtype=dtype)
    err = np.abs(qgemm.dequantize(q, qp.scale, qp.zero_point) - x)
    if not symmetric and not reduce_range and x.size:
        assert err.max() <= np.float32(qp.scale) * 0.5001 + 1e-6 * np.abs(x).max()


def test_constant_tensors_give_usable_parameters():
    for x in [np.zeros(10, np.float32), np.full(10, 3.0, np.float32)]:
        for sym in (False, True):
            qp = qgemm.choose_qparams(x, symmetric=sym)
            assert qp.scale > 0
            assert -128 <= qp.zero_point <= 127
    qp = qgemm.choose_qparams(np.full(10, 3.0, np.float32))
    back = qgemm.dequantize(qgemm.quantize(np.full(10, 3.0, np.float32), qp.scale, qp.zero_point),
                            qp.scale, qp.zero_point)
    np.testing.assert_allclose(back, 3.0, rtol=0.01)


def test_qparams_is_frozen():
    qp = qgemm.choose_qparams(np.arange(4, dtype=np.float32))
    with pytest.raises(AttributeError):
        qp.scale = 1.0


# ---- worked examples from popular tutorials, done right -----------------------

def test_tutorial_affine_int8_per_tensor():
    # A widely read tutorial quantizes [[1,2,3],[4,5,6]] into int8 with zero
    # point -180 and codes like 383 (outside int8). The range must include 0:
    # [0, 6] -> scale 6/255, zero point -128, codes in [-128, 127].
    x = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    qp = qgemm.choose_qparams(x, dtype="int8")
    assert qp.scale == np.float32(6.0) / np.float32(255.0)
    assert qp.zero_point == -128
    q = qgemm.quantize(x, qp.scale, qp.zero_point)
    # 1/scale = 42.5 and 5/scale = 212.5 are exact ties: half to even.
    np.testing.assert_array_equal(q, [[-86, -43, 0], [42, 84, 127]])
    np.testing.assert_allclose(qgemm.dequantize(q, qp.scale, qp.zero_point), x, atol=qp.scale / 2)


def test_tutorial_affine_int8_per_channel():
    # Same data per row (axis=0): rows [0, 3] and [0, 6]; both zero points -128
    # (the tutorial's -255 and -638 cannot be int8 zero points).
    x = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    qp = qgemm.choose_qparams(x, dtype="int8", axis=0)
    np.testing.assert_array_equal(qp.scale, np.float32([3.0, 6.0]) / np.float32(255.0))
    np.testing.assert_array_equal(qp.zero_point, [-128, -128])
    q = qgemm.quantize(x, qp.scale, qp.zero_point, axis=0)
    np.testing.assert_array_equal(q, [[-43, 42, 127], [42, 84, 127]])
    assert q.min() >= -128 and q.max() <= 127


def test_tutorial_symmetric_example():
    # [-2.3, -1.1, 0.0, 1.5, 2.8, 4.0] with the tutorial's scale 127/4.0 written
    # as a multiplier: here scale is a step size, 4.0/127.
    x = np.array([-2.3, -1.1, 0.0, 1.5, 2.8, 4.0], np.float32)
    q = qgemm.quantize(x, np.float32(4.0) / np.float32(127.0), 0)
    np.testing.assert_array_equal(q, [-73, -35, 0, 48, 89, 127])
    # choose_qparams(symmetric) follows PyTorch: scale = max|x| / 127.5.
    qp = qgemm.choose_qparams(x, symmetric=True)
    assert qp.zero_point == 0 and qp.scale == np.float32(4.0) / np.float32(127.5)
    np.testing.assert_array_equal(qgemm.quantize(x, qp.scale, 0), [-73, -35, 0, 48, 89, 127])
