"""The int8 Linear layer: dynamic (float in and out) and static modes, state_dict."""

import numpy as np
import pytest

import qgemm
from qgemm.nn import Linear
from reference import exact_matmul


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
    acc = exact_matmul(xq, lin.weight_q.T, qp.zero_point)
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
    acc = exact_matmul(xq, lin.weight_q.T, qp.zero_point)
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
    torch = pytest.importorskip("torch")
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
