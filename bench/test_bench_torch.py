"""qgemm.torch.Linear against PyTorch's dynamic quantized Linear (torch.ao, fbgemm),
one 768 x 768 layer (a BERT-base projection) at M = 1, 16, 128 tokens."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import qgemm.nn  # noqa: E402
import qgemm.torch  # noqa: E402

K = N = 768


def float_linear():
    torch.manual_seed(0)
    return torch.nn.Linear(K, N)


def torch_ao_linear(lin):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        return torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear},
                                                      dtype=torch.qint8)


def run_inference(layer, x):
    with torch.inference_mode():
        return layer(x)


@pytest.mark.parametrize("m", [1, 16, 128])
def test_qgemm_torch_linear(benchmark, m):
    lin = float_linear()
    layer = qgemm.torch.Linear.from_float(lin)
    x = torch.randn(m, K)
    benchmark.group = f"torch Linear {m}x{K}x{N}"
    y = benchmark(run_inference, layer, x)
    ref = qgemm.nn.Linear.from_float(lin.weight.detach().numpy(), lin.bias.detach().numpy())
    assert torch.equal(y, torch.from_numpy(ref(x.numpy())))


@pytest.mark.parametrize("m", [1, 16, 128])
def test_torch_ao_dynamic_linear(benchmark, m):
    lin = float_linear()
    layer = torch_ao_linear(lin)
    x = torch.randn(m, K)
    benchmark.group = f"torch Linear {m}x{K}x{N}"
    y = benchmark(run_inference, layer, x)
    with torch.no_grad():
        ref = lin(x)
    assert ((y - ref).abs().max() / ref.abs().max()).item() < 0.05
