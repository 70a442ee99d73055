"""Observers, QTensor and the int8 Linear layer."""

import numpy as np
import pytest

import qgemm
from qgemm import observers as ob
from qgemm.nn import Linear


def torch_or_skip():
    return pytest.importorskip("torch")


# ---- observers ---------------------------------------------------------------------

@pytest.mark.parametrize("axis", [None, 0, 1])
def test_minmax_and_moving_average_match_torch(rng, axis):
    torch = torch_or_skip()
    from torch.ao.quantization.observer import (MinMaxObserver, MovingAverageMinMaxObserver,
                                                MovingAveragePerChannelMinMaxObserver,
                                                PerChannelMinMaxObserver)
    batches = [(rng.standard_normal((8, 12)) * (i + 1) + i).astype(np.float32) for i in range(5)]
    for ours, theirs in [
        (ob.MinMax(axis=axis),
         MinMaxObserver(dtype=torch.quint8) if axis is None else PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.quint8)),
        (ob.MovingAverageMinMax(0.01, axis=axis),
         MovingAverageMinMaxObserver(averaging_constant=0.01, dtype=torch.quint8) if axis is None
         else MovingAveragePerChannelMinMaxObserver(averaging_constant=0.01, ch_axis=axis, dtype=torch.quint8)),
    ]:
        for b in batches:
            ours.update(b)
            theirs(torch.from_numpy(b))
        lo, hi = ours.range()
        np.testing.assert_array_equal(lo.reshape(-1), theirs.min_val.numpy().reshape(-1))
        np.testing.assert_array_equal(hi.reshape(-1), theirs.max_val.numpy().reshape(-1))
        qp = ours.qparams("uint8")
        s, z = theirs.calculate_qparams()
        np.testing.assert_array_equal(np.asarray(qp.scale).reshape(-1), s.numpy().reshape(-1))
        np.testing.assert_array_equal(np.asarray(qp.zero_point).reshape(-1), z.numpy().reshape(-1))


def heavy_tailed(rng, n=200_000):
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.choice(n, 20, replace=False)] = rng.choice([-1, 1], 20) * rng.uniform(200, 1000, 20)
    return x


# Entropy is not in this test: on this data TensorRT's criterion keeps part of the
# tail (piling 20 outliers into the last bin diverges more than merging the
# bulk's bins); test_observers.py checks it against an independent version.
@pytest.mark.parametrize("cls", [ob.Percentile])
def test_clipping_observers_clip_outliers(rng, cls):
    x = heavy_tailed(rng)
    mm = ob.MinMax()
    clip = cls()
    for part in np.array_split(x, 7):  # streaming, the range grows batch by batch
        mm.update(part)
        clip.update(part)
    lo, hi = clip.range()
    mlo, mhi = mm.range()
    assert hi[0] < 0.1 * mhi[0] and lo[0] > 0.1 * mlo[0], (lo, hi, mlo, mhi)
    assert hi[0] > 2.0 and lo[0] < -2.0  # but keeps the bulk of N(0, 1)
    bulk = x[np.abs(x) < 5]

    def mse(o):
        qp = o.qparams("int8", symmetric=True)
        q = qgemm.quantize(bulk, qp.scale, qp.zero_point)
        return np.mean((qgemm.dequantize(q, qp.scale, qp.zero_point) - bulk) ** 2)

    assert mse(clip) < 0.05 * mse(mm)


def test_mse_observer_clips_a_heavy_tail_to_lower_error(rng):
    x = rng.laplace(size=200_000).astype(np.float32)
    mm, mse = ob.MinMax(), ob.MSE()
    for part in np.array_split(x, 5):
        mm.update(part)
        mse.update(part)
    assert mse.range()[1][0] < 0.9 * mm.range()[1][0]

    def err(o):
        qp = o.qparams("int8")
        return np.mean((qgemm.dequantize(qgemm.quantize(x, qp.scale, qp.zero_point), qp.scale, qp.zero_point) - x) ** 2)

    assert err(mse) < 0.9 * err(mm)


def test_observer_per_channel_and_errors(rng):
    x = rng.standard_normal((4, 100)).astype(np.float32) * np.arange(1, 5, dtype=np.float32)[:, None]
    o = ob.Percentile(99.0, axis=0).update(x)
    qp = o.qparams("int8", symmetric=True)
    assert qp.axis == 0 and np.asarray(qp.scale).shape == (4,)
    assert np.all(np.diff(qp.scale) > 0)  # wider channels get wider ranges
    with pytest.raises(ValueError, match="channels"):
        o.update(np.zeros((3, 10), np.float32))
    with pytest.raises(RuntimeError, match="no data"):
        ob.MinMax().qparams()
    with pytest.raises(TypeError, match="x"):
        ob.MinMax().update(np.zeros(3, np.int8))


# ---- QTensor ---------------------------------------------------------------------------

def test_qtensor_roundtrip_and_npz(tmp_path, rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    for qp in [qgemm.choose_qparams(x), qgemm.choose_qparams(x, axis=1, symmetric=True)]:
        t = qgemm.QTensor.quantize(x, qp)
        np.testing.assert_allclose(t.dequantize(), x, atol=float(np.max(qp.scale)))
        path = tmp_path / "t.npz"
        t.save(path)
        u = qgemm.QTensor.load(path)
        np.testing.assert_array_equal(u.data, t.data)
        assert u.qparams == t.qparams
    with pytest.raises(ValueError, match="uint8"):
        qgemm.QTensor(np.zeros(3, np.int8), qgemm.QParams(np.float32(1), 0, "uint8"))


# ---- Linear ------------------------------------------------------------------------------

def reference_linear(x, w, b):
    return x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)


def test_dynamic_linear_is_the_dequantized_exact_product(rng):
    w = (rng.standard_normal((40, 70)) * 0.1).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    lin = Linear.from_float(w, b, per_token=False, act_bits=8)
    x = rng.standard_normal((3, 5, 70)).astype(np.float32)
    y = lin(x)
    assert y.shape == (3, 5, 40) and y.dtype == np.float32
    # Recompute what the layer does in NumPy: batch parameters, exact int GEMM, epilogue.
    x2 = x.reshape(-1, 70)
    qp = qgemm.choose_qparams(x2, dtype="uint8")
    xq = qgemm.quantize(x2, qp.scale, qp.zero_point, dtype="uint8")
    acc = (xq.astype(np.int64) - qp.zero_point) @ lin.weight_q.T.astype(np.int64)
    scale = (np.float32(qp.scale) * np.asarray(lin.weight_qparams.scale, np.float32)).astype(np.float32)
    want = (acc.astype(np.float32) * scale).astype(np.float32) + b
    np.testing.assert_array_equal(y.reshape(-1, 40), want)
    err = np.linalg.norm(y - reference_linear(x, w, b)) / np.linalg.norm(reference_linear(x, w, b))
    assert err < 0.02


@pytest.mark.parametrize("kind", ["positive", "negative", "constant", "zeros", "nan", "one_row", "wide"])
def test_dynamic_linear_parameters_match_choose_qparams(rng, kind):
    # Per tensor, 8 bits: the layer chooses the batch's parameters natively; they
    # must be exactly choose_qparams(x, "uint8"): same scale, zero point, codes and output.
    w = (rng.standard_normal((33, 50)) * 0.2).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    lin = Linear.from_float(w, b, per_token=False, act_bits=8)
    rows = 1 if kind == "one_row" else 300 if kind == "wide" else 7
    x = rng.standard_normal((rows, 50)).astype(np.float32) * 3
    if kind == "positive":
        x = np.abs(x) + 0.5
    elif kind == "negative":
        x = -np.abs(x) - 0.25
    elif kind == "constant":
        x[:] = 1.75
    elif kind == "zeros":
        x[:] = 0
    elif kind == "nan":
        x[1, 3] = x[4, 0] = np.nan
    qp = qgemm.choose_qparams(x, dtype="uint8")
    xq = qgemm.quantize(x, qp.scale, qp.zero_point, dtype="uint8")
    acc = (xq.astype(np.int64) - qp.zero_point) @ lin.weight_q.T.astype(np.int64)
    scale = (np.float32(qp.scale) * np.asarray(lin.weight_qparams.scale, np.float32)).astype(np.float32)
    want = (acc.astype(np.float32) * scale).astype(np.float32) + b
    np.testing.assert_array_equal(lin(x), want)


def test_dynamic_linear_refuses_infinity(rng):
    lin = Linear.from_float(rng.standard_normal((4, 6)).astype(np.float32))
    x = np.ones((2, 6), np.float32)
    x[1, 2] = -np.inf
    with pytest.raises(ValueError, match="infinity"):
        lin(x)


def test_dynamic_linear_more_accurate_than_torch(rng):
    torch = torch_or_skip()
    torch.backends.quantized.engine = "fbgemm"
    tl = torch.nn.Linear(256, 128)
    lin = Linear.from_torch(tl)
    tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(tl), {torch.nn.Linear}, dtype=torch.qint8)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    w, b = tl.weight.detach().numpy(), tl.bias.detach().numpy()
    ref = reference_linear(x, w, b)
    with torch.no_grad():
        yt = tq(torch.from_numpy(x)).numpy()
    ours = np.linalg.norm(lin(x) - ref)
    theirs = np.linalg.norm(yt - ref)
    assert ours < 0.8 * theirs, (ours, theirs)


def test_activation_and_empty_batches(rng):
    w = rng.standard_normal((8, 16)).astype(np.float32)
    lin = Linear.from_float(w, activation="relu")
    x = rng.standard_normal((10, 16)).astype(np.float32)
    assert (lin(x) >= 0).all()
    assert lin(np.zeros((0, 16), np.float32)).shape == (0, 8)
    with pytest.raises(ValueError, match="x"):
        lin(np.zeros((2, 15), np.float32))


def test_static_mode_and_state_dict(rng, tmp_path):
    w = (rng.standard_normal((30, 50)) * 0.1).astype(np.float32)
    b = rng.standard_normal(30).astype(np.float32) * 0.1
    lin = Linear.from_float(w, b)
    batches = [rng.standard_normal((16, 50)).astype(np.float32) for _ in range(4)]
    with pytest.raises(RuntimeError, match="static"):
        lin.forward_quantized(np.zeros((1, 50), np.uint8))
    lin.calibrate(batches)
    x = batches[0]
    yq = lin.forward_quantized(lin.quantize_input(x))
    qo = lin.output_qparams
    assert yq.dtype == np.uint8
    ref = reference_linear(x, w, b)
    err = np.linalg.norm(qgemm.dequantize(yq, qo.scale, qo.zero_point) - ref) / np.linalg.norm(ref)
    assert err < 0.05
    d = lin.state_dict()
    np.savez(tmp_path / "lin.npz", **d)
    with np.load(tmp_path / "lin.npz", allow_pickle=False) as f:
        lin2 = Linear.from_state_dict(dict(f))
    np.testing.assert_array_equal(lin2.forward_quantized(lin2.quantize_input(x)), yq)
    np.testing.assert_array_equal(lin2(x), lin(x))
