"""The ``qgemm::linear_dynamic`` operator: qgemm's dynamic int8 Linear as one
opaque PyTorch op, with a fake (shape-only) implementation so that
``torch.compile`` and ``torch.export`` trace through it without a graph break.

The op takes the layer's buffers (int8 weight, float32 per-channel scales,
float32 bias) and computes with :class:`qgemm.nn.Linear`, which needs the
weights packed. Packing costs far more than a small call, so packed layers are
cached per weight tensor (weakly: the entry goes when the tensor goes) and
rebuilt when any buffer has been written to since (``load_state_dict`` copies
in place, which bumps the tensors' version counters).
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .. import _checks
from .. import nn as qnn
from ..quantization import QParams
from . import _threads

_FLOAT_INPUTS = (torch.float32, torch.float16, torch.bfloat16)


def scheme_kwargs(per_token: Any, act_bits: Any) -> Dict[str, Any]:
    """The activation scheme as keywords for :class:`qgemm.nn.Linear`, checked."""
    if not isinstance(per_token, bool):
        raise TypeError(f"per_token must be a bool, got {per_token!r}")
    if isinstance(act_bits, bool) or not isinstance(act_bits, int):
        raise TypeError(f"act_bits must be an int, got {act_bits!r}")
    if not 2 <= act_bits <= 8:
        raise ValueError(f"act_bits must be in 2..8, got {act_bits}")
    return {"per_token": per_token, "act_bits": act_bits}


def _stamp(weight: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor],
           per_token: bool, act_bits: int) -> Tuple:
    """What the packed layer was built from: storage addresses and write counters."""
    try:
        return (weight.data_ptr(), weight._version, scale.data_ptr(), scale._version,
                None if bias is None else (bias.data_ptr(), bias._version), per_token, act_bits)
    except RuntimeError:  # inference tensors have no write counter (nor writes outside inference mode)
        return (weight.data_ptr(), scale.data_ptr(), None if bias is None else bias.data_ptr(), per_token, act_bits)


# id(weight tensor) -> (weak reference to it, stamp, qgemm.nn.Linear). The layer holds
# NumPy views of the weight's memory that do not keep the tensor object itself alive,
# so an entry goes when its tensor goes.
_layers: Dict[int, Tuple[weakref.ref, Tuple, qnn.Linear]] = {}
pack_count = 0  # layers packed so far (tests check that calls reuse them)


def _cache(weight: torch.Tensor, stamp: Tuple, layer: qnn.Linear) -> None:
    key = id(weight)

    def forget(ref: weakref.ref) -> None:
        if _layers.get(key, (None,))[0] is ref:  # not replaced by a newer entry meanwhile
            _layers.pop(key, None)
    _layers[key] = (weakref.ref(weight, forget), stamp, layer)


def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def remember(weight: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor],
             per_token: bool, act_bits: int, layer: qnn.Linear) -> None:
    """Caches a layer already built from exactly these tensors."""
    _cache(weight, _stamp(weight, scale, bias, per_token, act_bits), layer)


def packed_layer(weight: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor],
                 per_token: bool, act_bits: int) -> qnn.Linear:
    """The packed qgemm.nn.Linear for these buffers: cached, or checked and packed."""
    global pack_count
    hit = _layers.get(id(weight))
    if hit is not None and hit[0]() is weight and hit[1] == _stamp(weight, scale, bias, per_token, act_bits):
        return hit[2]
    _check_params(weight, scale, bias)
    n = weight.shape[0]
    # Buffers loaded from a state_dict are checked as a model's weights are.
    s = _checks.scales(scale.numpy(), n, "weight_scale").copy()
    b = None
    if bias is not None:
        if not finite(bias):
            raise ValueError("bias contains NaN or infinity")
        b = bias.numpy().copy()
    qp = QParams(s, np.zeros(n, np.int32), "int8", 0)
    layer = qnn.Linear(weight.detach().numpy(), qp, b, **scheme_kwargs(per_token, act_bits))
    pack_count += 1
    _cache(weight, _stamp(weight, scale, bias, per_token, act_bits), layer)
    return layer


def _check_params(weight: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
    for name, t in (("weight", weight), ("weight_scale", scale), ("bias", bias)):
        if t is not None and t.device.type != "cpu":
            raise ValueError(f"qgemm runs on the CPU: {name} must be a CPU tensor, got device {t.device}")
    if weight.dtype != torch.int8 or weight.dim() != 2:
        raise TypeError(f"weight must be a 2-D int8 tensor, got {weight.dtype} of shape {tuple(weight.shape)}")
    n = weight.shape[0]
    for name, t in (("weight_scale", scale), ("bias", bias)):
        if t is not None and (t.dtype != torch.float32 or tuple(t.shape) != (n,)):
            raise TypeError(f"{name} must be a float32 tensor of shape ({n},), got {t.dtype} of shape "
                            f"{tuple(t.shape)} (was the model converted to another dtype after quantizing?)")


def _check_input(x: torch.Tensor, k: int) -> None:
    if x.device.type != "cpu":
        raise ValueError(f"qgemm runs on the CPU: input must be a CPU tensor, got device {x.device}")
    if x.dtype not in _FLOAT_INPUTS:
        raise TypeError(f"input must be float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"input must have shape (..., {k}), got {tuple(x.shape)}")


@torch.library.custom_op("qgemm::linear_dynamic", mutates_args=())
def linear_dynamic(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                   bias: Optional[torch.Tensor], per_token: bool, act_bits: int) -> torch.Tensor:
    """``x @ dequantize(weight).T + bias`` through qgemm's dynamic int8 Linear.

    x: CPU float32/float16/bfloat16 of shape (..., in_features); the result has
    x's dtype and shape (..., out_features). float32 x is read in place when
    contiguous, and the result wraps qgemm's output array (no copies).
    """
    layer = packed_layer(weight, weight_scale, bias, per_token, act_bits)  # parameters checked when packed
    _check_input(x, layer.in_features)
    _threads.before_call()
    x32 = x.detach() if x.dtype == torch.float32 else x.detach().to(torch.float32)
    y = torch.from_numpy(layer(x32.numpy()))
    return y if x.dtype == torch.float32 else y.to(x.dtype)


@linear_dynamic.register_fake
def _linear_dynamic_fake(x, weight, weight_scale, bias, per_token, act_bits):
    _check_params(weight, weight_scale, bias)
    _check_input(x, weight.shape[1])
    return x.new_empty((*x.shape[:-1], weight.shape[0]))
