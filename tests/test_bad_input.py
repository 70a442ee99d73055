"""Every bad input is a clear TypeError/ValueError naming the argument; never
a crash. The battery runs in a subprocess so that a crash fails the test
instead of killing the run."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import qgemm

f32 = np.ones((4, 3), np.float32)
i8 = np.ones((4, 3), np.int8)

# (call, expected exception, text the message must contain)
CASES = [
    (lambda: qgemm.quantize(f32, 0.0, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, -1.0, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, np.nan, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, np.inf, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, 1e-50, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, "a", 0), TypeError, "scale"),
    (lambda: qgemm.quantize(f32, 0.1, 128), ValueError, "zero_point"),
    (lambda: qgemm.quantize(f32, 0.1, -1, dtype="uint8"), ValueError, "zero_point"),
    (lambda: qgemm.quantize(f32, 0.1, 0.5), TypeError, "zero_point"),
    (lambda: qgemm.quantize(f32, 0.1, 0, dtype="int16"), ValueError, "dtype"),
    (lambda: qgemm.quantize(f32, 0.1, 0, dtype="nonsense"), ValueError, "dtype"),
    (lambda: qgemm.quantize(f32, 0.1, 0, axis=2), ValueError, "axis"),
    (lambda: qgemm.quantize(f32, 0.1, 0, axis=1.0), TypeError, "axis"),
    (lambda: qgemm.quantize(f32, [0.1, 0.2], [0, 0], axis=1), ValueError, "scale"),
    (lambda: qgemm.quantize(f32, [0.1] * 3, [0, 0], axis=1), ValueError, "zero_point"),
    (lambda: qgemm.quantize(f32, [0.1] * 3, 0), ValueError, "scale"),
    (lambda: qgemm.quantize(i8, 0.1, 0), TypeError, "x"),
    (lambda: qgemm.quantize(np.array(["a"]), 0.1, 0), TypeError, "x"),
    (lambda: qgemm.quantize(np.array([object()]), 0.1, 0), TypeError, "x"),
    (lambda: qgemm.quantize(f32, 0.1, 0, out=np.empty((4, 3), np.uint8)), TypeError, "out"),
    (lambda: qgemm.quantize(f32, 0.1, 0, out=np.empty((3, 4), np.int8)), ValueError, "out"),
    (lambda: qgemm.quantize(f32, 0.1, 0, out=[0]), TypeError, "out"),
    (lambda: qgemm.dequantize(f32, 0.1, 0), TypeError, "q"),
    (lambda: qgemm.dequantize(i8, 0.1, 300), ValueError, "zero_point"),
    (lambda: qgemm.dequantize(i8, 0.0, 0), ValueError, "scale"),
    (lambda: qgemm.dequantize(i8, [0.1], [0], axis=0), ValueError, "scale"),
    (lambda: qgemm.choose_qparams(i8), TypeError, "x"),
    (lambda: qgemm.choose_qparams(f32, dtype="int4"), ValueError, "dtype"),
    (lambda: qgemm.choose_qparams(f32, axis=5), ValueError, "axis"),
    (lambda: qgemm.choose_qparams(np.array([1.0, np.inf], np.float32)), ValueError, "infinity"),
    (lambda: qgemm.matmul(f32, i8.T), TypeError, "a"),
    (lambda: qgemm.matmul(i8, f32.T), TypeError, "b"),
    (lambda: qgemm.matmul([[1, 2]], i8), TypeError, "a"),
    (lambda: qgemm.matmul(i8, i8), ValueError, "K"),
    (lambda: qgemm.matmul(np.int8(3), i8), ValueError, "a"),
    (lambda: qgemm.matmul(i8, np.ones((3, 2, 2), np.int8)), ValueError, "b"),
    (lambda: qgemm.matmul(i8, i8.T, a_zero_point=200), ValueError, "a_zero_point"),
    (lambda: qgemm.matmul(i8, i8.T, b_zero_point=[1, 2]), ValueError, "zero_point"),
    (lambda: qgemm.matmul(i8, i8.T, b_zero_point=1.5), TypeError, "zero_point"),
    (lambda: qgemm.matmul(i8, qgemm.pack(i8.T), b_zero_point=1), ValueError, "b_zero_point"),
    (lambda: qgemm.matmul(i8, i8.T, out=np.empty((4, 4), np.int64)), TypeError, "out"),
    (lambda: qgemm.matmul(i8, i8.T, out=np.empty((4, 5), np.int32)), ValueError, "out"),
    (lambda: qgemm.pack(f32), TypeError, "b"),
    (lambda: qgemm.pack(np.ones(3, np.int8)), ValueError, "b"),
    (lambda: qgemm.pack(i8, zero_point=[0, 0]), ValueError, "zero_point"),
    (lambda: qgemm.set_num_threads(0), ValueError, "n"),
    (lambda: qgemm.qlinear_matmul(f32, 0.1, 0, i8.T, 0.1, 0, 0.1, 0), TypeError, "a"),
    (lambda: qgemm.qlinear_matmul(i8, 0.0, 0, i8.T, 0.1, 0, 0.1, 0), ValueError, "a_scale"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, [0.1, 0.2], 0, 0.1, 0), ValueError, "b_scale"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, -1.0, 0), ValueError, "y_scale"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 300), ValueError, "y_zero_point"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 0, requant="magic"), ValueError, "requant"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 0, activation="gelu"), ValueError, "activation"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 0, out_dtype="int16"), ValueError, "out_dtype"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 0, bias=np.zeros(3, np.int32)), ValueError, "bias"),
    (lambda: qgemm.qlinear_matmul(i8, 0.1, 0, i8.T, 0.1, 0, 0.1, 0, bias=np.zeros(4, np.float32),
                                  requant="fixed_point"), TypeError, "bias"),
    (lambda: qgemm.qlinear_matmul(i8[0], 0.1, 0, i8.T, 0.1, 0, 0.1, 0), ValueError, "a"),
    (lambda: qgemm.requantize(np.zeros((2, 3), np.int64), 0.5), TypeError, "acc"),
    (lambda: qgemm.requantize(np.zeros((2, 3), np.int32), 0.0), ValueError, "multiplier"),
    (lambda: qgemm.requantize(np.zeros((2, 3), np.int32), [0.5, 0.5]), ValueError, "multiplier"),
    (lambda: qgemm.requantize(np.zeros((2, 3), np.int32), 0.5, clamp=(10, 0)), ValueError, "clamp"),
    (lambda: qgemm.requantize(np.zeros((2, 3), np.int32), 0.5, bias=np.zeros(3, np.float32)), TypeError, "bias"),
    (lambda: qgemm.quantize_multiplier(float("nan")), ValueError, "multiplier"),
    (lambda: qgemm.nn.Linear.from_float(np.ones(3, np.float32)), ValueError, "weight"),
    (lambda: qgemm.nn.Linear.from_float(np.ones((2, 3), np.float32))(np.ones((1, 4), np.float32)), ValueError, "x"),
    (lambda: qgemm.nn.Linear.from_float(np.ones((2, 3), np.float32), bias=np.ones(3, np.float32)), ValueError, "bias"),
    (lambda: qgemm.observers.MovingAverageMinMax(averaging_constant=2.0), ValueError, "averaging_constant"),
    (lambda: qgemm.observers.Percentile(percentile=20), ValueError, "percentile"),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_bad_input_raises_clear_error(i):
    call, exc, text = CASES[i]
    with pytest.raises(exc, match=text):
        call()


def test_battery_does_not_crash_the_interpreter():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import test_bad_input as t
        for call, exc, text in t.CASES:
            try:
                call()
            except (TypeError, ValueError):
                pass
        print("survived")
    """) % (str(__import__("pathlib").Path(__file__).parent),)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "survived" in r.stdout


def test_odd_valid_inputs_work():
    # lists, negative strides, zero-size, float64
    np.testing.assert_array_equal(qgemm.quantize([0.5, 1.5], 1.0, 0), [0, 2])
    np.testing.assert_array_equal(qgemm.dequantize(np.array([3, 5], np.int8)[::-1], 2.0, 1), [8.0, 4.0])
    assert qgemm.matmul(np.zeros((0, 4), np.int8), np.zeros((4, 0), np.int8)).shape == (0, 0)


# ---- NaN, infinity, empty: one rule for choosing parameters --------------------------
# NaN is ignored (the range comes from the finite values); no finite value at
# all (empty or all NaN) and any infinity are ValueErrors.

def test_choose_qparams_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="x is empty"):
        qgemm.choose_qparams(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="all NaN"):
        qgemm.choose_qparams(np.full(4, np.nan, np.float32))
    with pytest.raises(ValueError, match="slice 1 along axis 0"):
        qgemm.choose_qparams(np.array([[1, np.nan], [np.nan, np.nan]], np.float32), axis=0)
    with pytest.raises(ValueError, match="no values along axis 1"):
        qgemm.choose_qparams(np.zeros((0, 3), np.float32), axis=1)


def test_choose_qparams_ignores_nan_per_tensor_and_per_axis(rng):
    x = rng.standard_normal((5, 9)).astype(np.float32)
    holes = x.copy()
    holes[rng.random(x.shape) < 0.3] = np.nan
    holes[:, 0] = x[:, 0]                                  # every row keeps a finite value
    for axis in (None, 0):
        got = qgemm.choose_qparams(holes, axis=axis)
        if axis is None:
            want = qgemm.qparams_from_range(np.nanmin(holes), np.nanmax(holes))
        else:
            want = qgemm.qparams_from_range(np.nanmin(holes, axis=1), np.nanmax(holes, axis=1), axis=0)
        assert got == want


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_choose_qparams_refuses_infinity_on_every_path(axis):
    # Per axis used to turn inf into 3.4e38 (np.nan_to_num) and accept it.
    for bad in (np.inf, -np.inf):
        x = np.ones((3, 4), np.float32)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="infinity"):
            qgemm.choose_qparams(x, axis=axis)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_a_range_wider_than_float32_never_gives_an_infinite_scale(symmetric, dtype, reduce_range):
    # Either parameters whose every code dequantizes to a finite float32, or a ValueError.
    big = np.finfo(np.float32).max
    refused = 0
    for lo, hi in [(-big, big), (-3e38, 3e38), (-1.7e38, 1.7e38), (0, big), (-big, 0), (-1e38, 1e38)]:
        x = np.array([lo, hi], np.float32)
        try:
            qp = qgemm.choose_qparams(x, dtype=dtype, symmetric=symmetric, reduce_range=reduce_range)
        except ValueError as e:
            assert "too wide" in str(e)
            refused += 1
            with pytest.raises(ValueError, match="too wide"):
                qgemm.qparams_from_range(lo, hi, dtype, symmetric, reduce_range)
            continue
        assert np.isfinite(qp.scale)
        lo_q, hi_q = qgemm._checks.QRANGE[dtype]
        codes = np.arange(lo_q, hi_q + 1).astype(dtype)
        with np.errstate(over="raise"):
            assert np.isfinite(qgemm.dequantize(codes, qp.scale, qp.zero_point)).all()
    if not symmetric:
        assert refused >= 2  # (-big, big) and (-3e38, 3e38) overflow max - min
    with pytest.raises(ValueError, match="too wide"):
        qgemm.observers.MinMax().update(np.array([3e38, -3e38], np.float32)).qparams()


# ---- parameters validated where they are made -----------------------------------

@pytest.mark.parametrize("call, exc, text", [
    (lambda: qgemm.QParams(0.1, 0, "int16"), ValueError, "dtype"),
    (lambda: qgemm.QParams(-0.1, 0), ValueError, "scale"),
    (lambda: qgemm.QParams(np.inf, 0), ValueError, "scale"),
    (lambda: qgemm.QParams(0.1, 128), ValueError, "zero_point"),
    (lambda: qgemm.QParams(0.1, 255, "uint8", None) and qgemm.QParams(0.1, -1, "uint8"), ValueError, "zero_point"),
    (lambda: qgemm.QParams(0.1, 0.5), TypeError, "zero_point"),
    (lambda: qgemm.QParams([0.1, 0.2], 0), ValueError, "scale"),
    (lambda: qgemm.QParams([0.1, 0.2], [0, 0, 0], axis=0), ValueError, "zero_point"),
    (lambda: qgemm.QParams(0.1, 0, axis=0), ValueError, "scale"),
    (lambda: qgemm.QParams([0.1, 0.2], 0, axis=1.5), TypeError, "axis"),
    (lambda: qgemm.quantize(f32, 10**400), ValueError, "scale"),
    (lambda: qgemm.qparams_from_range([1, 2], [3, 4]), ValueError, "axis"),
    (lambda: qgemm.qparams_from_range([1, 2], [3, 4, 5], axis=0), ValueError, "max_val"),
    (lambda: qgemm.qparams_from_range(5, -5), ValueError, "min_val must be <= max_val"),
    (lambda: qgemm.qparams_from_range([0, 5], [1, -5], axis=0), ValueError, "min_val must be <= max_val"),
])
def test_parameters_are_checked_on_construction(call, exc, text):
    with pytest.raises(exc, match=text):
        call()


def test_qparams_normalises_its_fields():
    qp = qgemm.QParams(0.5, np.int64(3), np.uint8)
    assert qp.scale == np.float32(0.5) and type(qp.zero_point) is int and qp.dtype == "uint8"
    pc = qgemm.QParams([0.5, 0.25], 7, "uint8", axis=1)   # a scalar zero point serves every channel
    np.testing.assert_array_equal(pc.zero_point, [7, 7])
    assert pc.scale.dtype == np.float32 and pc.zero_point.dtype == np.int32


def test_scalar_zero_point_broadcasts_over_channels(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    s = [0.1, 0.2, 0.3]
    np.testing.assert_array_equal(qgemm.quantize(x, s, axis=0), qgemm.quantize(x, s, [0, 0, 0], axis=0))
    np.testing.assert_array_equal(qgemm.quantize(x, s, 5, axis=0), qgemm.quantize(x, s, [5, 5, 5], axis=0))
    q = qgemm.quantize(x, s, axis=0)
    np.testing.assert_array_equal(qgemm.dequantize(q, s, axis=0), qgemm.dequantize(q, s, [0, 0, 0], axis=0))
    np.testing.assert_array_equal(qgemm.dequantize(q, s, np.int8(2), axis=0),
                                  qgemm.dequantize(q, s, [2, 2, 2], axis=0))
    with pytest.raises(ValueError, match="zero_point"):
        qgemm.quantize(x, s, 300, axis=0)


# ---- the Linear layer: the same rules -----------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("per_channel", [True, False])
def test_linear_refuses_non_finite_weights_naming_the_row(bad, per_channel):
    w = np.ones((4, 5), np.float32)
    w[2, 3] = bad
    with pytest.raises(ValueError, match="weight row 2"):
        qgemm.nn.Linear.from_float(w, per_channel=per_channel)


def test_dynamic_linear_nan_rule(rng):
    lin = qgemm.nn.Linear.from_float(rng.standard_normal((3, 4)).astype(np.float32))
    with pytest.raises(ValueError, match="all NaN"):
        lin(np.full((2, 4), np.nan, np.float32))
    x = rng.standard_normal((2, 4)).astype(np.float32)
    x[0, 1] = np.nan                                   # ignored for the range, like choose_qparams
    assert np.isfinite(lin(x)).all()
    assert np.all(lin(np.zeros((2, 4), np.float32)) == 0)   # all zeros is not all NaN


def test_dynamic_linear_refuses_a_range_too_wide_for_float32(rng):
    lin = qgemm.nn.Linear.from_float(np.array([[0.25, 0.25], [0.25, -0.25], [0.0, 0.5]], np.float32))
    with pytest.raises(ValueError, match="too wide"):
        lin(np.array([[3e38, -3e38]], np.float32))     # used to return -inf
    y = lin(np.array([[1.6e38, -1.6e38]], np.float32))  # the widest range that still has parameters
    np.testing.assert_allclose(y, [[0, 0.8e38, -0.8e38]], rtol=0.02, atol=1e36)


# ---- zero-size shapes: an empty result of the right shape --------------------------

def test_qlinear_matmul_zero_size_shapes():
    b = np.ones((4, 3), np.int8)
    y = qgemm.qlinear_matmul(np.ones((2, 0, 4), np.int8), 1.0, 0, b, 1.0, 0, 1.0, 0)
    assert y.shape == (2, 0, 3) and y.dtype == np.int8
    y = qgemm.qlinear_matmul(np.ones((0, 5, 4), np.int8), 1.0, 0, b, 1.0, 0, 1.0, 0)
    assert y.shape == (0, 5, 3)
    # K = 0 with a batch dimension: every output is the bias, requantized
    bias = np.array([1, 2, 3], np.int32)
    y = qgemm.qlinear_matmul(np.ones((2, 3, 0), np.int8), 1.0, 0, np.ones((0, 3), np.int8), 1.0, 0, 1.0, 5,
                             bias=bias)
    np.testing.assert_array_equal(y, np.broadcast_to([6, 7, 8], (2, 3, 3)))
    y = qgemm.qlinear_matmul(np.ones((2, 3, 0), np.int8), 0.5, 0, np.ones((0, 3), np.int8), 0.5, 0, None, None,
                             bias=np.array([1, 2, 3], np.float32), out_dtype="float32")
    np.testing.assert_array_equal(y, np.broadcast_to(np.float32([1, 2, 3]), (2, 3, 3)))


def test_linear_with_no_inputs_or_no_outputs(rng):
    b = np.arange(4, dtype=np.float32)
    lin = qgemm.nn.Linear.from_float(np.zeros((4, 0), np.float32), b)   # in_features = 0: y = bias
    np.testing.assert_array_equal(lin(np.zeros((2, 5, 0), np.float32)), np.broadcast_to(b, (2, 5, 4)))
    lin.set_static(qgemm.QParams(0.1, 0, "uint8"), qgemm.QParams(0.1, 0, "uint8"))
    np.testing.assert_array_equal(lin.forward_quantized(np.zeros((2, 0), np.uint8)), [[0, 10, 20, 30]] * 2)
    for per_channel in (True, False):
        none_out = qgemm.nn.Linear.from_float(np.zeros((0, 3), np.float32), per_channel=per_channel)
        assert none_out(rng.standard_normal((2, 3)).astype(np.float32)).shape == (2, 0)


def test_zero_channels_give_empty_per_axis_parameters():
    x = np.zeros((3, 0), np.float32)
    qp = qgemm.choose_qparams(x, axis=1)
    assert qp.axis == 1 and qp.scale.shape == (0,) and qp.zero_point.shape == (0,)
    q = qgemm.quantize(x, qp.scale, qp.zero_point, axis=1)
    assert q.shape == (3, 0)
    assert qgemm.dequantize(q, qp.scale, qp.zero_point, axis=1).shape == (3, 0)
    assert qgemm.requantize(np.zeros((2, 0, 3), np.int32), 0.5).shape == (2, 0, 3)
