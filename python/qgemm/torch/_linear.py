"""``qgemm.torch.Linear``: a ``torch.nn.Module`` holding int8 weights as buffers
and computing through the ``qgemm::linear_dynamic`` op."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import nn as qnn
from . import _op


class Linear(torch.nn.Module):
    """Dynamic int8 ``y = x @ W.T + b`` for inference on the CPU.

    Weights are int8, symmetric per output channel (buffers ``weight`` (out, in)
    int8 and ``weight_scale`` (out,) float32; ``bias`` (out,) float32 or None).
    Each call quantizes the input to uint8 (affine; one scale and zero point per
    token, i.e. per row of the flattened leading dimensions, with ``per_token``;
    ``act_bits`` bits) and runs qgemm's exact int8 GEMM, whose epilogue
    dequantizes and adds the bias: the numerics of :class:`qgemm.nn.Linear`.

    Inputs: CPU tensors of shape (..., in_features), float32 (read in place when
    contiguous), float16 or bfloat16 (computed in float32, returned in the
    input's dtype). Inference only: an input that requires grad while grad mode
    is on is refused.

    ``Linear(in_features, out_features, bias=True, ...)`` makes a zero layer to
    load a ``state_dict`` into; :meth:`from_float` converts a ``torch.nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 per_token: bool = True, act_bits: int = 7):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        _op.scheme_kwargs(per_token, act_bits)
        self.in_features, self.out_features = in_features, out_features
        self.per_token, self.act_bits = per_token, act_bits
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32) if bias else None)

    @classmethod
    def from_float(cls, linear: torch.nn.Linear, *, per_token: bool = True, act_bits: int = 7) -> "Linear":
        """Quantizes a ``torch.nn.Linear`` (weights on the CPU, any float dtype)."""
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        scheme = _op.scheme_kwargs(per_token, act_bits)
        w, b = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
        for name, t in (("weight", w), ("bias", b)):
            if t is None:
                continue
            if t.device.type != "cpu":
                raise ValueError(f"linear.{name} is on {t.device}: move the model to the CPU first")
            if not t.dtype.is_floating_point:
                raise TypeError(f"linear.{name} must be floating point, got {t.dtype}")
            if not _op.finite(t):
                raise ValueError(f"linear.{name} contains NaN or infinity")
        layer = qnn.Linear.from_float(_float32(w), None if b is None else _float32(b), **scheme)
        mod = cls(linear.in_features, linear.out_features, b is not None, per_token=per_token, act_bits=act_bits)
        # The buffers share memory with the packed layer's arrays (no second copy of the weights).
        mod.weight = torch.from_numpy(layer.weight_q)
        mod.weight_scale = torch.from_numpy(np.asarray(layer.weight_qparams.scale, np.float32))
        mod.bias = None if layer.bias is None else torch.from_numpy(layer.bias)
        _op.remember(mod.weight, mod.weight_scale, mod.bias, per_token, act_bits, layer)
        return mod

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
        if input.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("qgemm.torch.Linear is inference only and has no gradient: call it under "
                               "torch.no_grad() or torch.inference_mode(), or pass input.detach()")
        return torch.ops.qgemm.linear_dynamic(input, self.weight, self.weight_scale, self.bias,
                                              self.per_token, self.act_bits)

    def extra_repr(self) -> str:
        tokens = "per token" if self.per_token else "per tensor"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, weight=int8 symmetric per channel, "
                f"activations=uint8 {self.act_bits}-bit affine {tokens} (dynamic)")


def _float32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy()
