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
