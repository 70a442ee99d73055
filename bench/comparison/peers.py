"""The peers, where installed: ONNX Runtime (one-node models, built by
tests/reference.py's onnx_node) and PyTorch (fbgemm quantized Linear)."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
from reference import onnx_node

from .config import Config

warnings.filterwarnings("ignore")  # torch's eager-quantization deprecation notices


def optional(name):
    try:
        return importlib.import_module(name)
    except Exception:  # not installed, or broken: skip that peer
        return None


ort = optional("onnxruntime")
onnx = optional("onnx")
torch = optional("torch")
if ort is not None and onnx is None:
    ort = None  # the ORT peers are built as ONNX models
if torch is not None and "fbgemm" in torch.backends.quantized.supported_engines:
    torch.backends.quantized.engine = "fbgemm"


def as_numpy(x) -> np.ndarray:
    """Results of any library as an ndarray (quantized torch tensors: their codes)."""
    if torch is not None and isinstance(x, torch.Tensor):
        return (x.int_repr() if x.is_quantized else x).numpy()
    return np.asarray(x)


def ort_node(cfg: Config, op: str, inputs: dict, inits: dict, out_dtype, domain: str = ""):
    """A callable running one ONNX node on cfg.threads threads: `inputs` are fed per call
    (positionally, in order), `inits` are initializers (constants ORT may prepack)."""
    return onnx_node(op, inputs, inits, out_dtype, domain=domain, threads=cfg.threads)


def ort_dynamic_matmul(cfg: Config, x, wq, w_scale, bias):
    """ONNX Runtime's com.microsoft DynamicQuantizeMatMul: float A (like x) quantized per
    tensor (uint8) inside, int8 B (K, N) with per-column scales, float bias. None if
    unavailable."""
    b = np.ascontiguousarray(wq.T)
    try:
        return ort_node(cfg, "DynamicQuantizeMatMul", {"x": x},
                        {"B": b, "b_scale": w_scale.astype(np.float32), "b_zp": np.zeros(b.shape[1], np.int8),
                         "bias": bias.astype(np.float32)}, np.float32, domain="com.microsoft")
    except Exception:
        return None


def torch_qlinear(a, sa, za, b, sb, ys, zy):
    """fbgemm quantized Linear (prepacked weights, quint8 activations, quint8 output):
    a uint8 (M, K) with (sa, za); b int8 (K, N) with scale sb (scalar or per column, zero
    point 0). Returns the call (its result: a quint8 tensor)."""
    w = torch.from_numpy(np.ascontiguousarray(b.T))
    if np.ndim(sb) == 0:
        wq = torch._make_per_tensor_quantized_tensor(w, float(sb), 0)
    else:
        wq = torch._make_per_channel_quantized_tensor(
            w, torch.from_numpy(np.asarray(sb, np.float64)), torch.zeros(len(sb), dtype=torch.int64), 0)
    packed = torch.ops.quantized.linear_prepack(wq, None)
    x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(a), float(sa), int(za))
    return lambda: torch.ops.quantized.linear(x, packed, float(ys), int(zy))
