"""Saving and loading: QTensor files and Linear state dicts round-trip everything."""

import numpy as np
import pytest

import qgemm
from qgemm.nn import Linear


@pytest.mark.parametrize("axis", [-1, -2, 0, 1, None])
def test_qtensor_with_any_axis_saves_and_loads(tmp_path, rng, axis):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    qp = qgemm.choose_qparams(x, axis=axis)
    if axis is not None:  # QParams made with a negative axis, as a user may
        qp = qgemm.QParams(qp.scale, qp.zero_point, qp.dtype, axis)
    t = qgemm.QTensor.quantize(x, qp)
    assert t.qparams.axis is None or t.qparams.axis >= 0
    t.save(tmp_path / "t.npz")
    u = qgemm.QTensor.load(tmp_path / "t.npz")
    assert u.qparams == t.qparams
    np.testing.assert_array_equal(u.dequantize(), t.dequantize())


def test_qtensor_files_written_with_axis_minus_one_still_load(tmp_path, rng):
    # The earlier format: per-axis parameters along the last axis saved as axis=-1.
    x = rng.standard_normal((4, 6)).astype(np.float32)
    qp = qgemm.choose_qparams(x, axis=1)
    data = qgemm.quantize(x, qp.scale, qp.zero_point, axis=1)
    np.savez(tmp_path / "old.npz", data=data, scale=qp.scale, zero_point=qp.zero_point, axis=np.int64(-1))
    u = qgemm.QTensor.load(tmp_path / "old.npz")
    assert u.qparams == qp
    ptq = qgemm.choose_qparams(x)
    np.savez(tmp_path / "old_pt.npz", data=qgemm.quantize(x, ptq.scale, ptq.zero_point),
             scale=np.asarray(ptq.scale), zero_point=np.asarray(ptq.zero_point, np.int32), axis=np.int64(-1))
    assert qgemm.QTensor.load(tmp_path / "old_pt.npz").qparams == ptq


def test_qtensor_refuses_parameters_of_the_wrong_length():
    with pytest.raises(ValueError, match="scales"):
        qgemm.QTensor(np.zeros((2, 3), np.int8), qgemm.QParams([0.1, 0.2], 0, axis=1))


@pytest.mark.parametrize("activation", [None, "relu", "relu6", (-0.5, 0.25)])
def test_readme_save_load_recipe_round_trips_everything(tmp_path, rng, activation):
    w = rng.standard_normal((6, 10)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    lin = Linear.from_float(w, b, activation=activation)
    x = (rng.standard_normal((5, 10)) * 4).astype(np.float32)
    lin.calibrate([x])
    np.savez(tmp_path / "lin.npz", **lin.state_dict())                 # the README's recipe
    lin2 = Linear.from_state_dict(dict(np.load(tmp_path / "lin.npz")))
    assert lin2.activation == lin.activation
    np.testing.assert_array_equal(lin2(x), lin(x))
    np.testing.assert_array_equal(lin2.forward_quantized(lin2.quantize_input(x)),
                                  lin.forward_quantized(lin.quantize_input(x)))
    assert lin2.input_qparams == lin.input_qparams and lin2.output_qparams == lin.output_qparams
    # load_state_dict into a plain layer takes the activation too
    lin3 = Linear.from_float(w, b).load_state_dict(lin.state_dict())
    np.testing.assert_array_equal(lin3(x), lin(x))


def test_relu6_layer_state_dict_keeps_its_outputs(rng):
    lin = Linear.from_float(rng.standard_normal((4, 8)).astype(np.float32), activation="relu6")
    x = (rng.standard_normal((16, 8)) * 10).astype(np.float32)
    again = Linear.from_state_dict(lin.state_dict())
    np.testing.assert_array_equal(again(x), lin(x))
    assert again(x).max() <= 6.0
    # An explicit activation still overrides the saved one.
    assert Linear.from_state_dict(lin.state_dict(), activation=None).activation is None


def test_load_state_dict_replaces_a_different_bias(rng):
    w = rng.standard_normal((6, 10)).astype(np.float32)
    x = rng.standard_normal((5, 10)).astype(np.float32)
    lin = Linear.from_float(w, np.zeros(6, np.float32))
    other = Linear.from_float(w, np.full(6, 3.0, np.float32))
    lin.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(lin.bias, other.bias)
    np.testing.assert_array_equal(lin(x), other(x))  # dynamic mode computes with the loaded bias


def test_bias_is_set_at_construction(rng):
    lin = Linear.from_float(rng.standard_normal((4, 8)).astype(np.float32), np.ones(4, np.float32))
    with pytest.raises(AttributeError):
        lin.bias = np.zeros(4, np.float32)  # would leave dynamic and static mode disagreeing
