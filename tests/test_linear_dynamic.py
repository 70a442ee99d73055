"""The dynamic Linear's activation schemes (per_token, act_bits): exactly the
documented computation (quantize_dynamic, exact GEMM, float32 epilogue) on
every ISA, state_dict round trips, accuracy against float64."""

import os
import subprocess
import sys

import numpy as np
import pytest

import qgemm
from qgemm.nn import Linear

SCHEMES = [(True, 7), (True, 8), (False, 7), (False, 8), (True, 4)]


def expected(lin, x2, per_token, bits):
    """What the layer computes, step by step in NumPy: parameters and codes from
    quantize_dynamic, the exact int64 product, acc * float32(sx * sw) + bias."""
    q, sx, zx = qgemm.quantize_dynamic(x2, "uint8", per_row=per_token, bits=bits)
    zx = np.asarray(zx, np.int64).reshape(-1, 1) if per_token else zx
    acc = (q.astype(np.int64) - zx) @ lin.weight_q.T.astype(np.int64)
    sw = np.broadcast_to(np.asarray(lin.weight_qparams.scale, np.float32), (lin.out_features,))
    scale = np.float32(sx).reshape(-1, 1) * sw if per_token else np.float32(sx) * sw
    y = acc.astype(np.float32) * scale.astype(np.float32)
    return y if lin.bias is None else y + lin.bias


@pytest.mark.parametrize("per_token,bits", SCHEMES)
@pytest.mark.parametrize("kind", ["normal", "heavy_rows", "heavy_cols", "nan", "one_row", "many_rows"])
def test_dynamic_linear_is_the_documented_computation(rng, per_token, bits, kind):
    w = (rng.standard_normal((45, 70)) * 0.1).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32)
    lin = Linear.from_float(w, b, per_token=per_token, act_bits=bits)
    rows = 1 if kind == "one_row" else 700 if kind == "many_rows" else 13
    x = rng.standard_normal((rows, 70)).astype(np.float32)
    if kind == "heavy_rows":
        x[::5] *= 50
    elif kind == "heavy_cols":
        x[:, :3] *= 50
    elif kind == "nan":
        x[2, 5] = np.nan
        x[4, :5] = np.nan
    np.testing.assert_array_equal(lin(x), expected(lin, x, per_token, bits))


@pytest.mark.parametrize("per_token", [True, False])
def test_dynamic_linear_refuses_a_row_or_batch_of_nan(rng, per_token):
    # The rule of choose_qparams: NaN is ignored in a range, but a range of no
    # number at all is an error (per token: any row; per tensor: the batch).
    lin = Linear.from_float(rng.standard_normal((5, 8)).astype(np.float32), per_token=per_token)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    x[1] = np.nan
    if per_token:
        with pytest.raises(ValueError, match="no finite value"):
            lin(x)
    else:
        assert np.isfinite(lin(x)[[0, 2]]).all()
    with pytest.raises(ValueError, match="no finite value"):
        lin(np.full((3, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="no finite value"):
        qgemm.quantize_dynamic(x, per_row=True)


def test_default_scheme_is_per_token_7_bit(rng):
    w = rng.standard_normal((8, 16)).astype(np.float32)
    for lin in (Linear.from_float(w), Linear(*_quantized(w))):
        assert lin.per_token is True and lin.act_bits == 7
    x = rng.standard_normal((6, 16)).astype(np.float32)
    lin = Linear.from_float(w)
    np.testing.assert_array_equal(lin(x), expected(lin, x, True, 7))


def _quantized(w):
    qp = qgemm.choose_qparams(w, "int8", symmetric=True, axis=0)
    return qgemm.quantize(w, qp.scale, qp.zero_point, "int8", axis=0), qp


def test_bad_scheme_arguments(rng):
    w = rng.standard_normal((4, 6)).astype(np.float32)
    for bits in (1, 9, 7.5, "7", True):
        with pytest.raises(ValueError, match="bits"):
            Linear.from_float(w, act_bits=bits)
    with pytest.raises(TypeError, match="per_token"):
        Linear.from_float(w, per_token="yes")
    lin = Linear.from_float(w)
    x = np.ones((2, 6), np.float32)
    x[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        lin(x)


@pytest.mark.parametrize("per_token,bits", SCHEMES)
def test_state_dict_round_trips_the_scheme(rng, tmp_path, per_token, bits):
    w = (rng.standard_normal((30, 50)) * 0.1).astype(np.float32)
    lin = Linear.from_float(w, rng.standard_normal(30), per_token=per_token, act_bits=bits)
    np.savez(tmp_path / "lin.npz", **lin.state_dict())
    with np.load(tmp_path / "lin.npz", allow_pickle=False) as f:
        lin2 = Linear.from_state_dict(dict(f))
    assert (lin2.per_token, lin2.act_bits) == (per_token, bits)
    x = rng.standard_normal((9, 50)).astype(np.float32)
    x[3] *= 40
    np.testing.assert_array_equal(lin2(x), lin(x))
    other = Linear.from_float(w, per_token=not per_token, act_bits=8)
    other.load_state_dict(lin.state_dict())
    assert (other.per_token, other.act_bits) == (per_token, bits)


def test_state_dict_without_scheme_is_per_tensor_8_bit(rng):
    lin = Linear.from_float(rng.standard_normal((5, 7)).astype(np.float32))
    d = {k: v for k, v in lin.state_dict().items() if k not in ("per_token", "act_bits")}
    old = Linear.from_state_dict(d)
    assert (old.per_token, old.act_bits) == (False, 8)


def test_accuracy_order_on_heavy_tailed_tokens(rng):
    # Outliers in a few tokens: per-token scales keep the other tokens precise.
    w = (rng.standard_normal((256, 512)) * 0.05).astype(np.float32)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    x[::16] *= 60
    ref = x.astype(np.float64) @ w.T.astype(np.float64)

    def err(**scheme):
        y = Linear.from_float(w, **scheme)(x)
        return np.abs(y - ref).max(axis=1).mean()  # mean over tokens of the worst error

    per_tensor_8 = err(per_token=False, act_bits=8)
    per_token_7 = err(per_token=True, act_bits=7)
    per_token_8 = err(per_token=True, act_bits=8)
    assert per_token_8 < per_token_7 < per_tensor_8


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512_vnni"])
def test_identical_on_every_isa(rng, tmp_path, isa):
    if isa not in qgemm.cpu_info()["available"]:
        pytest.skip(f"{isa} is not available here")
    w = (rng.standard_normal((70, 300)) * 0.1).astype(np.float32)
    x = rng.standard_normal((600, 300)).astype(np.float32)  # enough rows for every kernel path
    x[5] *= 30
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import numpy as np, qgemm, sys\n"
        f"w, x = np.load(r'{tmp_path / 'w.npy'}'), np.load(r'{tmp_path / 'x.npy'}')\n"
        "outs = [qgemm.nn.Linear.from_float(w, per_token=p, act_bits=b)(x) for p, b in ((True, 7), (True, 8), (False, 7))]\n"
        f"np.save(r'{tmp_path / 'y.npy'}', np.stack(outs))\n"
    )
    env = dict(os.environ, QGEMM_ISA=isa)
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    got = np.load(tmp_path / "y.npy")
    want = np.stack([Linear.from_float(w, per_token=p, act_bits=b)(x) for p, b in ((True, 7), (True, 8), (False, 7))])
    np.testing.assert_array_equal(got, want)
