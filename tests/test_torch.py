"""qgemm.torch: converting PyTorch models, the Linear module, its custom op under
torch.compile / torch.export, and bit-for-bit agreement with qgemm.nn.Linear."""

import gc
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import qgemm  # noqa: E402
import qgemm.nn  # noqa: E402
import qgemm.torch as qt  # noqa: E402
from qgemm.torch import _op  # noqa: E402

SCHEMES = [dict(per_token=True, act_bits=7), dict(per_token=True, act_bits=8), dict(per_token=False, act_bits=8),
           dict(per_token=False, act_bits=7), dict(per_token=True, act_bits=4)]


@pytest.fixture(autouse=True)
def inference():
    """Seeded, and with grad mode off, as inference runs (the layers refuse autograd)."""
    torch.manual_seed(0)
    with torch.no_grad():
        yield


def float_linear(k, n, bias=True):
    lin = torch.nn.Linear(k, n, bias=bias)
    with torch.no_grad():  # a few larger weights, so that channels get different scales
        lin.weight[::3] *= 4
    return lin


def reference(lin, x, **scheme):
    """qgemm.nn.Linear on NumPy arrays: what qgemm.torch.Linear must return, bit for bit."""
    b = None if lin.bias is None else lin.bias.detach().numpy()
    ref = qgemm.nn.Linear.from_float(lin.weight.detach().numpy(), b, **scheme)
    return torch.from_numpy(ref(x.float().numpy()))


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(24, 40)
        self.act = torch.nn.GELU()
        self.down = torch.nn.Linear(40, 16, bias=False)
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(16), torch.nn.Linear(16, 5))

    def forward(self, x):
        return self.head(self.down(self.act(self.up(x))))


# ---- numerics ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: f"per_token={s['per_token']},bits={s['act_bits']}")
@pytest.mark.parametrize("bias", [True, False])
def test_equals_qgemm_nn_linear_bit_for_bit(scheme, bias):
    lin = float_linear(37, 29, bias)
    x = torch.randn(5, 3, 37) * torch.linspace(0.1, 8, 5)[:, None, None]  # tokens of different ranges
    y = qt.Linear.from_float(lin, **scheme)(x)
    assert y.dtype == torch.float32 and y.shape == (5, 3, 29)
    assert torch.equal(y, reference(lin, x, **scheme).reshape(5, 3, 29))


def test_default_scheme_is_per_token_7_bit():
    lin = float_linear(16, 8)
    layer = qt.Linear.from_float(lin)
    assert (layer.per_token, layer.act_bits) == (True, 7)
    x = torch.randn(4, 16) * torch.tensor([[0.01], [1], [100], [3]])
    assert torch.equal(layer(x), reference(lin, x, per_token=True, act_bits=7))
    assert "7-bit" in repr(layer) and "per token" in repr(layer)


def test_close_to_float():
    lin = float_linear(64, 32)
    x = torch.randn(10, 64)
    with torch.no_grad():
        ref = lin(x)
    for scheme in SCHEMES[:4]:  # 7 and 8 bits
        err = (qt.Linear.from_float(lin, **scheme)(x) - ref).abs().max() / ref.abs().max()
        assert err < 0.03, (scheme, err)


@settings(max_examples=40, deadline=None)
@given(lead=st.lists(st.integers(0, 5), max_size=3), k=st.integers(1, 40), n=st.integers(1, 40),
       bias=st.booleans(), per_token=st.booleans(), act_bits=st.integers(2, 8),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), spread=st.floats(1e-3, 1e3),
       seed=st.integers(0, 2**31 - 1))
def test_property_equals_qgemm_nn_linear(lead, k, n, bias, per_token, act_bits, dtype, spread, seed):
    torch.manual_seed(seed)
    lin = float_linear(k, n, bias)
    x = (torch.randn(*lead, k) * spread).to(dtype)
    scheme = dict(per_token=per_token, act_bits=act_bits)
    y = qt.Linear.from_float(lin, **scheme)(x)
    assert y.dtype == dtype and y.shape == (*lead, n)
    assert torch.equal(y, reference(lin, x, **scheme).reshape(*lead, n).to(dtype))


@pytest.mark.parametrize("shape", [(37,), (0, 37), (2, 0, 37), (4, 37), (2, 3, 4, 37)])
def test_any_leading_shape(shape):
    lin = float_linear(37, 11)
    x = torch.randn(shape)
    y = qt.Linear.from_float(lin)(x)
    assert y.shape == shape[:-1] + (11,)
    assert torch.equal(y, reference(lin, x, per_token=True, act_bits=7).reshape(y.shape))


def test_non_contiguous_input():
    lin = float_linear(20, 7)
    base = torch.randn(20, 6)
    x = base.T  # (6, 20), column-major
    assert not x.is_contiguous()
    layer = qt.Linear.from_float(lin)
    assert torch.equal(layer(x), layer(x.contiguous()))


def test_float32_result_is_qgemm_output_without_copy(monkeypatch):
    lin = float_linear(16, 8)
    layer = qt.Linear.from_float(lin)
    seen = {}
    packed = _op.packed_layer(layer.weight, layer.weight_scale, layer.bias, True, 7)
    real_call = type(packed).__call__

    def spy(self, x):
        seen["x"] = x
        seen["y"] = real_call(self, x)
        return seen["y"]
    monkeypatch.setattr(type(packed), "__call__", spy)
    x = torch.randn(3, 16)
    y = layer(x)
    assert seen["x"].__array_interface__["data"][0] == x.data_ptr()  # the input, read in place
    assert seen["y"].__array_interface__["data"][0] == y.data_ptr()  # the output, wrapped


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_come_back_in_their_dtype(dtype):
    lin = float_linear(33, 9)
    layer = qt.Linear.from_float(lin)
    x = torch.randn(4, 33).to(dtype)
    y = layer(x)
    assert y.dtype == dtype
    assert torch.equal(y, reference(lin, x, per_token=True, act_bits=7).to(dtype))


def test_from_half_model():
    lin = float_linear(24, 8).to(torch.bfloat16)
    layer = qt.Linear.from_float(lin)
    ref = float_linear(24, 8)
    ref.load_state_dict({k: v.float() for k, v in lin.state_dict().items()})
    x = torch.randn(3, 24)
    assert torch.equal(layer(x), reference(ref, x, per_token=True, act_bits=7))


# ---- bad input -----------------------------------------------------------------------------------

def test_errors():
    layer = qt.Linear.from_float(float_linear(8, 4))
    with pytest.raises(TypeError, match="input must be float32, float16 or bfloat16"):
        layer(torch.randn(2, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="input must be float32"):
        layer(torch.ones(2, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        layer(np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match=r"input must have shape \(\.\.\., 8\)"):
        layer(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"input must have shape"):
        layer(torch.tensor(1.0))
    with pytest.raises(ValueError, match="must be a CPU tensor, got device meta"):
        layer(torch.randn(2, 8, device="meta"))
    with pytest.raises(ValueError, match="x contains infinity|infinity"):
        layer(torch.tensor([[float("inf")] + [0.0] * 7]))


def test_autograd_is_refused_not_silently_dropped():
    layer = qt.Linear.from_float(float_linear(8, 4))
    x = torch.randn(2, 8, requires_grad=True)
    with torch.enable_grad():
        with pytest.raises(RuntimeError, match="inference only"):
            layer(x)
        assert layer(x.detach()).shape == (2, 4)
    assert layer(x).requires_grad is False  # grad mode off


def test_from_float_errors():
    with pytest.raises(TypeError, match="linear must be a torch.nn.Linear"):
        qt.Linear.from_float(torch.nn.Conv1d(2, 2, 1))
    lin = float_linear(4, 3)
    with torch.no_grad():
        lin.weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="linear.weight contains NaN or infinity"):
        qt.Linear.from_float(lin)
    lin = float_linear(4, 3)
    with torch.no_grad():
        lin.bias[0] = float("inf")
    with pytest.raises(ValueError, match="linear.bias contains NaN or infinity"):
        qt.Linear.from_float(lin)
    with pytest.raises(ValueError, match="move the model to the CPU"):
        qt.Linear.from_float(torch.nn.Linear(4, 3, device="meta"))
    with pytest.raises(TypeError, match="per_token must be a bool"):
        qt.Linear.from_float(float_linear(4, 3), per_token=1)
    with pytest.raises(TypeError, match="act_bits must be an int"):
        qt.Linear.from_float(float_linear(4, 3), act_bits=7.0)
    with pytest.raises(ValueError, match="act_bits must be in 2..8"):
        qt.quantize_dynamic(Mlp(), act_bits=9)
    with pytest.raises(ValueError, match="in_features must be an int >= 0"):
        qt.Linear(-1, 3)


def test_converted_then_cast_to_half_is_refused():
    layer = qt.Linear.from_float(float_linear(8, 4)).half()
    with pytest.raises(TypeError, match="weight_scale must be a float32 tensor.*another dtype"):
        layer(torch.randn(2, 8, dtype=torch.float16))


# ---- quantize_dynamic ----------------------------------------------------------------------------

def test_quantize_dynamic_converts_every_linear_and_copies():
    model = Mlp()
    q = qt.quantize_dynamic(model)
    assert q is not model
    assert [type(m) for m in (q.up, q.down, q.head[1])] == [qt.Linear] * 3
    assert isinstance(q.head[0], torch.nn.LayerNorm)
    assert [type(m) for m in (model.up, model.down, model.head[1])] == [torch.nn.Linear] * 3
    assert q.down.bias is None
    x = torch.randn(6, 24)
    with torch.no_grad():
        h = reference(model.up, x, per_token=True, act_bits=7)
        h = reference(model.down, model.act(h), per_token=True, act_bits=7)
        expected = reference(model.head[1], model.head[0](h), per_token=True, act_bits=7)
    assert torch.equal(q(x), expected)


def test_quantize_dynamic_inplace():
    model = Mlp()
    assert qt.quantize_dynamic(model, inplace=True) is model
    assert type(model.up) is qt.Linear


@pytest.mark.parametrize("include, exclude, converted", [
    (None, None, {"up", "down", "head.1"}),
    ("up", None, {"up"}),
    (["up", "head"], None, {"up", "head.1"}),  # a module name includes everything inside it
    ("*.1", None, {"head.1"}),
    (None, "head", {"up", "down"}),
    (None, ["up", "do*"], {"head.1"}),
    ("*", "down", {"up", "head.1"}),
])
def test_include_exclude(include, exclude, converted):
    q = qt.quantize_dynamic(Mlp(), include=include, exclude=exclude)
    got = {name for name, m in q.named_modules() if isinstance(m, qt.Linear)}
    assert got == converted
    assert all(type(m) is torch.nn.Linear for name, m in q.named_modules() if name in {"up", "down", "head.1"} - got)


def test_include_exclude_errors():
    with pytest.raises(ValueError, match="include pattern 'upp' matches no torch.nn.Linear"):
        qt.quantize_dynamic(Mlp(), include="upp")
    with pytest.raises(ValueError, match="exclude pattern 'act' matches no torch.nn.Linear"):
        qt.quantize_dynamic(Mlp(), exclude=["act"])
    with pytest.raises(TypeError, match="include must be a string or an iterable of strings"):
        qt.quantize_dynamic(Mlp(), include=[torch.nn.Linear])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        qt.quantize_dynamic(lambda x: x)


def test_failed_conversion_leaves_the_model_unchanged():
    model = Mlp()
    with torch.no_grad():
        model.down.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        qt.quantize_dynamic(model, inplace=True)
    assert type(model.up) is torch.nn.Linear


def test_multihead_attention_out_proj_is_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(16, 16))
    model.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    q = qt.quantize_dynamic(model)
    assert type(q[0]) is qt.Linear
    assert type(q.attn.out_proj) is not qt.Linear
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        out, _ = q.attn(q[0](x), x, x)
    assert out.shape == (2, 5, 16)


def test_shared_layer_is_converted_once():
    shared = torch.nn.Linear(8, 8)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    q = qt.quantize_dynamic(model)
    assert type(q[0]) is qt.Linear and q[0] is q[2]


def test_model_that_is_a_linear():
    lin = float_linear(8, 3)
    q = qt.quantize_dynamic(lin)
    assert type(q) is qt.Linear and type(lin) is torch.nn.Linear


def test_conversion_in_inference_mode():
    with torch.inference_mode():
        q = qt.quantize_dynamic(Mlp())
        y = q(torch.randn(2, 24))
    assert y.shape == (2, 5)


# ---- state ---------------------------------------------------------------------------------------

def test_buffers_and_state_dict():
    q = qt.quantize_dynamic(Mlp())
    sd = q.state_dict()
    assert sd["up.weight"].dtype == torch.int8 and sd["up.weight"].shape == (40, 24)
    assert sd["up.weight_scale"].dtype == torch.float32 and sd["up.weight_scale"].shape == (40,)
    assert sd["up.bias"].dtype == torch.float32
    assert "down.bias" not in sd
    assert list(q.parameters()) == [p for n, p in q.named_parameters() if n.startswith("head.0")]


def test_state_dict_round_trips_through_torch_save():
    source = qt.quantize_dynamic(Mlp())
    target = qt.quantize_dynamic(Mlp())  # other random weights, converted the same way
    x = torch.randn(7, 24)
    y_source = source(x)
    assert not torch.equal(target(x), y_source)
    packs = _op.pack_count
    buf = io.BytesIO()
    torch.save(source.state_dict(), buf)
    buf.seek(0)
    target.load_state_dict(torch.load(buf))
    assert torch.equal(target(x), y_source)
    assert _op.pack_count == packs + 3  # the loaded layers were packed again, once each
    target(x)
    assert _op.pack_count == packs + 3
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_state_dict_into_empty_layer():
    lin = float_linear(12, 6)
    layer = qt.Linear.from_float(lin, per_token=False, act_bits=8)
    shell = qt.Linear(12, 6, per_token=False, act_bits=8)
    shell.load_state_dict(layer.state_dict())
    x = torch.randn(3, 12)
    assert torch.equal(shell(x), layer(x))
    with pytest.raises(RuntimeError, match="size mismatch"):
        qt.Linear(12, 5).load_state_dict(layer.state_dict())


def test_loaded_buffers_are_checked():
    layer = qt.Linear.from_float(float_linear(6, 3))
    sd = layer.state_dict()
    sd["weight_scale"] = torch.tensor([0.1, 0.0, 0.2])
    layer.load_state_dict(sd)
    with pytest.raises(ValueError, match="weight_scale must be finite and > 0"):
        layer(torch.randn(2, 6))
    sd["weight_scale"] = torch.tensor([0.1, 0.1, 0.2])
    sd["bias"] = torch.tensor([0.0, float("nan"), 0.0])
    layer.load_state_dict(sd)
    with pytest.raises(ValueError, match="bias contains NaN"):
        layer(torch.randn(2, 6))


def test_in_place_buffer_writes_are_seen():
    layer = qt.Linear.from_float(float_linear(10, 4))
    other = qt.Linear.from_float(float_linear(10, 4))
    x = torch.randn(2, 10)
    outputs = [layer(x)]
    for name in ("weight", "weight_scale", "bias"):  # each write alone changes the result
        getattr(layer, name).copy_(getattr(other, name))
        outputs.append(layer(x))
        assert not torch.equal(outputs[-1], outputs[-2]), name
    assert torch.equal(outputs[-1], other(x))


def test_packed_layers_go_with_their_model():
    gc.collect()
    n = len(_op._layers)
    q = qt.quantize_dynamic(Mlp())
    q(torch.randn(2, 24))
    assert len(_op._layers) == n + 3
    del q
    gc.collect()
    assert len(_op._layers) == n


# ---- torch.compile and torch.export --------------------------------------------------------------

def test_torch_compile_fullgraph_equals_eager():
    # Inductor computes ReLU exactly as eager does, so the whole model must agree bit for bit.
    q = qt.quantize_dynamic(torch.nn.Sequential(
        torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 16, bias=False), torch.nn.Linear(16, 5)))
    compiled = torch.compile(q, fullgraph=True)  # fullgraph: a graph break is an error
    packs = _op.pack_count
    with torch.inference_mode():
        for shape in [(6, 24), (3, 5, 24), (6, 24), (1, 24)]:
            x = torch.randn(shape)
            assert torch.equal(compiled(x), q(x))
        x16 = torch.randn(4, 24, dtype=torch.bfloat16)
        assert torch.equal(compiled(x16), q(x16))
    assert _op.pack_count == packs  # the compiled graph reuses the packed layers


def test_torch_compile_fullgraph_with_other_layers():
    # LayerNorm and GELU are fused by Inductor (float rounding may differ from eager);
    # the aot_eager backend runs the same traced graph op by op and must agree exactly.
    q = qt.quantize_dynamic(Mlp())
    x = torch.randn(3, 7, 24)
    for backend in ("aot_eager", "inductor"):
        y = torch.compile(q, fullgraph=True, backend=backend)(x)
        if backend == "aot_eager":
            assert torch.equal(y, q(x))
        else:
            torch.testing.assert_close(y, q(x), rtol=1e-5, atol=1e-5)


def test_torch_export_is_one_op_per_layer_and_equals_eager():
    q = qt.quantize_dynamic(Mlp())
    x = torch.randn(6, 24)
    batch = torch.export.Dim("batch")
    ep = torch.export.export(q, (x,), dynamic_shapes=({0: batch},))
    ops = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert ops.count(torch.ops.qgemm.linear_dynamic.default) == 3
    packs = _op.pack_count
    for rows in (6, 9):
        xi = torch.randn(rows, 24)
        assert torch.equal(ep.module()(xi), q(xi))
    assert _op.pack_count == packs
    buf = io.BytesIO()  # saved and loaded: new buffer tensors, packed again on first use
    torch.export.save(ep, buf)
    buf.seek(0)
    assert torch.equal(torch.export.load(buf).module()(x), q(x))
    assert _op.pack_count == packs + 3


def test_fake_implementation_checks_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    layer = qt.Linear.from_float(float_linear(8, 4))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        w, s, b = (mode.from_tensor(t) for t in (layer.weight, layer.weight_scale, layer.bias))
        y = torch.ops.qgemm.linear_dynamic(torch.empty(2, 3, 8, dtype=torch.bfloat16), w, s, b, True, 7)
        assert y.shape == (2, 3, 4) and y.dtype == torch.bfloat16
        with pytest.raises(ValueError, match="input must have shape"):
            torch.ops.qgemm.linear_dynamic(torch.empty(2, 7), w, s, b, True, 7)


# ---- threads -------------------------------------------------------------------------------------

def test_threads_follow_torch_unless_fixed():
    layer = qt.Linear.from_float(float_linear(8, 4))
    x = torch.randn(2, 8)
    torch_threads, qgemm_threads = torch.get_num_threads(), qgemm.get_num_threads()
    try:
        torch.set_num_threads(1)
        layer(x)
        assert qgemm.get_num_threads() == 1
        qt.set_num_threads(3)
        layer(x)
        assert qgemm.get_num_threads() == 3
        qt.set_num_threads(None)
        torch.set_num_threads(2)
        layer(x)
        assert qgemm.get_num_threads() == 2
        with pytest.raises(ValueError, match="n must be None or an int >= 1"):
            qt.set_num_threads(0)
    finally:
        qt.set_num_threads(None)
        torch.set_num_threads(torch_threads)
        qgemm.set_num_threads(qgemm_threads)
