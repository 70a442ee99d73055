"""A quantized Linear layer for NumPy: ``y = x @ W.T + b`` with int8 weights.

Dynamic mode (default): float32 in, float32 out. Each call chooses affine
uint8 parameters from the input's own range, quantizes it, and runs one exact
int8 GEMM whose epilogue dequantizes and adds the bias. The scheme:

* ``per_token=True`` (default): one scale and zero point per row (token) of
  the input, as torchao's int8 dynamic scheme and vLLM's W8A8 have; outliers
  that sit in a few tokens then cost only those tokens their precision.
  ``per_token=False``: one pair for the whole batch.
* ``act_bits=7`` (default): 7-bit codes (0..127). Per-token 7-bit is more
  accurate than per-tensor 8-bit on real transformer activations, and on
  AVX2 CPUs 7-bit codes prove the faster ``vpmaddubsw`` kernel exact.
  ``act_bits=8`` is the most accurate.

The scheme never depends on the CPU: results are identical on every machine.

Static mode: after :meth:`Linear.calibrate` (or :meth:`Linear.set_static`),
quantized int8/uint8 in, quantized out through :func:`qgemm.qlinear_matmul`.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Dict, Iterable, Optional, Union

import numpy as np

from . import _checks, _memory, _qgemm
from .gemm import PackedMatrix, native_operand, pack, read_packed_file, write_packed_file
from .observers import MinMax, Observer
from .quantization import QParams, _check_bits, choose_qparams, quantize
from .requant import Activation, _real_clamp, qlinear_matmul


_LINEAR_STATE = "qgemm.nn.Linear state_dict, npz"  # the extra bytes of a Linear's file
_SAVED = object()  # from_state_dict's default: the activation stored in the state dict


def _saved_activation(d: Dict[str, Any]) -> Activation:
    if "activation" not in d:
        return None
    a = np.asarray(d["activation"])
    return str(a) if a.dtype.kind == "U" else (float(a[0]), float(a[1]))


class Linear:
    """``y = x @ weight.T + bias`` with ``weight`` (out_features, in_features) quantized to int8."""

    def __init__(self, weight_q: Union[np.ndarray, PackedMatrix], weight_qparams: QParams,
                 bias: Optional[np.ndarray] = None, activation: Activation = None, *, per_token: bool = True,
                 act_bits: int = 7):
        """``weight_q``: (out_features, in_features) int8/uint8, or already packed: a
        :class:`PackedMatrix` of its transpose with the weight zero points (as
        :meth:`load` gives; :attr:`weight_q` is then unpacked when asked for).
        ``per_token``/``act_bits``: dynamic mode's activation scheme (see the module doc)."""
        if not isinstance(per_token, (bool, np.bool_)):
            raise TypeError(f"per_token must be a bool, got {per_token!r}")
        self.per_token = bool(per_token)
        self.act_bits = _check_bits(act_bits)
        packed = weight_q if isinstance(weight_q, PackedMatrix) else None
        w = None if packed is not None else _checks.quantized_array(weight_q, "weight_q")
        if w is not None and w.ndim != 2:
            raise ValueError(f"weight_q must be 2-D (out_features, in_features), got shape {w.shape}")
        if weight_qparams.axis not in (None, 0):
            raise ValueError("weight_qparams must be per tensor or per output channel (axis=0)")
        self.in_features, self.out_features = packed.shape if packed is not None else w.shape[::-1]
        if packed is not None:
            zp = np.broadcast_to(np.asarray(weight_qparams.zero_point, np.int32), (self.out_features,))
            if packed.dtype.name != weight_qparams.dtype or not np.array_equal(
                    np.broadcast_to(packed.zero_point, (self.out_features,)), zp):
                raise ValueError(f"weight_q is packed as {packed.dtype} with zero point {packed.zero_point!r}, "
                                 f"weight_qparams say {weight_qparams.dtype} with {weight_qparams.zero_point!r}")
        self._weight_q = w
        self.weight_qparams = weight_qparams
        self._bias = None if bias is None else _checks.float_array(bias, "bias").astype(np.float32)
        if self._bias is not None and self._bias.shape != (self.out_features,):
            raise ValueError(f"bias must have shape ({self.out_features},), got {self._bias.shape}")
        self.activation = activation
        self.input_qparams: Optional[QParams] = None
        self.output_qparams: Optional[QParams] = None
        # B = W.T (in, out), packed once; per-channel weight zero points become per column.
        self._packed: PackedMatrix = packed if packed is not None else pack(w.T, weight_qparams.zero_point)
        self._w_scale = np.broadcast_to(np.asarray(weight_qparams.scale, np.float32),
                                        (self.out_features,)).copy()
        # Dynamic mode's weights, bias and activation clamp, held by the core.
        self._dynamic = _qgemm.DynamicLinear(*native_operand(self._packed), self._w_scale, self._bias,
                                             *_real_clamp(activation))

    @property
    def bias(self) -> Optional[np.ndarray]:
        """The float32 bias (out_features,), or None. Set at construction, like the
        weights (the native layer holds both); ``load_state_dict`` replaces it."""
        return self._bias

    @property
    def weight_q(self) -> np.ndarray:
        """The int8/uint8 weights (out_features, in_features)."""
        return self._weight_q if self._weight_q is not None else self._packed.unpack().T

    # ---- construction ---------------------------------------------------------

    @classmethod
    def from_float(cls, weight: Any, bias: Any = None, per_channel: bool = True, dtype: Any = "int8",
                   symmetric: bool = True, activation: Activation = None, *, per_token: bool = True,
                   act_bits: int = 7) -> "Linear":
        """Quantizes a float weight (out_features, in_features): symmetric per output
        channel by default. ``per_token``/``act_bits``: the activation scheme (see the class).

        A weight with NaN or infinity is refused (ValueError naming the row): a
        broken model is not quietly turned into a plausible one. An empty weight
        (in_features or out_features 0) is represented exactly by any scale: it
        gets scale 1 and zero point 0.
        """
        w = _checks.float_array(weight, "weight")
        if w.ndim != 2:
            raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {w.shape}")
        bad = np.flatnonzero(~np.isfinite(w).all(axis=1))
        if bad.size:
            row = int(bad[0])
            what = "NaN" if np.isnan(w[row]).any() else "infinity"
            raise ValueError(f"weight row {row} (output feature {row}) contains {what}: "
                             "a model with non-finite weights is refused")
        if w.size == 0:
            name = _checks.qdtype_name(dtype)
            qp = (QParams(np.ones(w.shape[0], np.float32), 0, name, 0) if per_channel
                  else QParams(np.float32(1), 0, name, None))
        else:
            qp = choose_qparams(w, dtype=dtype, symmetric=symmetric, axis=0 if per_channel else None)
        wq = quantize(w, qp.scale, qp.zero_point, dtype=qp.dtype, axis=qp.axis)
        return cls(wq, qp, None if bias is None else np.asarray(bias, np.float32), activation,
                   per_token=per_token, act_bits=act_bits)

    @classmethod
    def from_torch(cls, module: Any, **kwargs: Any) -> "Linear":
        """From a ``torch.nn.Linear`` (read through its tensors; qgemm does not import torch).
        Keywords as :meth:`from_float` (``per_token``, ``act_bits``, ...)."""
        weight = module.weight.detach().cpu().numpy()
        bias = None if module.bias is None else module.bias.detach().cpu().numpy()
        return cls.from_float(weight, bias, **kwargs)

    # ---- dynamic mode ----------------------------------------------------------

    def __call__(self, x: Any) -> np.ndarray:
        """Dynamic mode: float in (..., in_features), float32 out (..., out_features).

        The batch's parameters follow :func:`qgemm.choose_qparams`: NaN is ignored
        when choosing the range (and quantizes to code 0, the range's minimum); a
        batch with values but no finite one (all NaN), any infinity, or a range
        too wide for float32 parameters is a ValueError. An empty batch gives an
        empty result.
        """
        xf = _checks.float_array(x, "x")
        if xf.ndim < 1 or xf.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {xf.shape}")
        rows = math.prod(xf.shape[:-1])  # not -1: that fails when in_features is 0
        x2 = np.ascontiguousarray(xf.reshape(rows, self.in_features), dtype=np.float32)
        y = _memory.empty((rows, self.out_features), np.float32)
        # One native call: each row's range (per_token) or the batch's, NaN
        # ignored, gives affine uint8 parameters of act_bits bits exactly as
        # quantize_dynamic(x2, "uint8", per_token, act_bits) would; the input is
        # quantized with them and the GEMM's epilogue computes
        # acc * float32(x_scale[i] * w_scale[j]) + bias[j], then the activation clamp.
        # A range with infinity, too wide for float32, or with no number at all
        # (a row or batch of NaN) is a ValueError raised by the call.
        if y.size:
            self._dynamic.forward(x2, y, self.per_token, self.act_bits)
        return y.reshape(xf.shape[:-1] + (self.out_features,))

    forward = __call__

    # ---- static mode -----------------------------------------------------------

    def calibrate(self, batches: Iterable[Any], observer: Optional[Observer] = None,
                  dtype: Any = "uint8") -> "Linear":
        """Static mode: observes float input batches (default: min-max), sets the input
        and output parameters (affine, ``dtype``)."""
        obs_in = observer if observer is not None else MinMax()
        obs_out = MinMax()
        for batch in batches:
            xb = _checks.float_array(batch, "batch").astype(np.float32, copy=False)
            obs_in.update(xb)
            obs_out.update(self(xb))
        if not obs_in.has_data:
            raise ValueError("calibrate needs at least one batch")
        return self.set_static(obs_in.qparams(dtype), obs_out.qparams(dtype))

    def set_static(self, input_qparams: QParams, output_qparams: QParams) -> "Linear":
        for name, qp in (("input_qparams", input_qparams), ("output_qparams", output_qparams)):
            if not isinstance(qp, QParams) or qp.axis is not None:
                raise ValueError(f"{name} must be per-tensor QParams")
        self.input_qparams, self.output_qparams = input_qparams, output_qparams
        return self

    def quantize_input(self, x: Any) -> np.ndarray:
        qp = self._static()[0]
        return quantize(x, qp.scale, qp.zero_point, dtype=qp.dtype)

    def forward_quantized(self, xq: Any) -> np.ndarray:
        """Static mode: quantized input (input_qparams) -> quantized output (output_qparams)."""
        qi, qo = self._static()
        xv = _checks.quantized_array(xq, "xq")
        if xv.dtype.name != qi.dtype:
            raise TypeError(f"xq must be {qi.dtype} (the input_qparams dtype), got {xv.dtype}")
        if xv.ndim < 1 or xv.shape[-1] != self.in_features:
            raise ValueError(f"xq must have shape (..., {self.in_features}), got {xv.shape}")
        x2 = xv.reshape(math.prod(xv.shape[:-1]), self.in_features)
        y = qlinear_matmul(x2, qi.scale, qi.zero_point, self._packed, self._w_scale, None,
                           qo.scale, qo.zero_point, bias=self.bias, activation=self.activation,
                           out_dtype=qo.dtype)
        return y.reshape(xv.shape[:-1] + (self.out_features,))

    def _static(self):
        if self.input_qparams is None or self.output_qparams is None:
            raise RuntimeError("static mode needs calibrate() or set_static() first")
        return self.input_qparams, self.output_qparams

    # ---- state ---------------------------------------------------------------------

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Plain arrays (savable with ``np.savez``, loadable without pickle): the
        weights, bias, activation, dynamic scheme and static parameters."""
        p = self.weight_qparams
        d = {"weight_q": self.weight_q, "weight_scale": np.asarray(p.scale, np.float32),
             "weight_zero_point": np.asarray(p.zero_point, np.int32),
             "weight_axis": np.int64(-1 if p.axis is None else p.axis),
             "per_token": np.bool_(self.per_token), "act_bits": np.int64(self.act_bits)}
        if self.bias is not None:
            d["bias"] = self.bias
        if self.activation is not None:  # a name, or the (min, max) clamp as two floats
            d["activation"] = (np.array(self.activation) if isinstance(self.activation, str)
                               else np.array(self.activation, np.float64))
        for name, qp in (("input", self.input_qparams), ("output", self.output_qparams)):
            if qp is not None:
                d[f"{name}_scale"] = np.float32(qp.scale)
                d[f"{name}_zero_point"] = np.int32(qp.zero_point)
                d[f"{name}_dtype"] = np.array(qp.dtype)
        return d

    @classmethod
    def from_state_dict(cls, d: Dict[str, Any], activation: Any = _SAVED) -> "Linear":
        """The layer :meth:`state_dict` saved; ``activation``, if given, replaces the
        saved one (older state dicts have none). A dict without the scheme (saved
        before ``per_token``/``act_bits`` existed) gets that era's: per tensor, 8 bits."""
        if activation is _SAVED:
            activation = _saved_activation(d)
        wq = d["weight_q"] if isinstance(d["weight_q"], PackedMatrix) else np.asarray(d["weight_q"])
        axis = int(d["weight_axis"])
        if axis < 0:
            qp = QParams(np.float32(d["weight_scale"]), int(d["weight_zero_point"]), wq.dtype.name, None)
        else:
            qp = QParams(np.asarray(d["weight_scale"], np.float32), np.asarray(d["weight_zero_point"], np.int32),
                         wq.dtype.name, axis)
        lin = cls(wq, qp, d.get("bias"), activation, **_scheme(d))
        return lin._load_static_qparams(d)

    def load_state_dict(self, d: Dict[str, Any]) -> "Linear":
        """Loads static parameters and the dynamic scheme (weights, bias and
        activation are replaced when they differ)."""
        activation = _saved_activation(d) if "activation" in d else self.activation
        w = d["weight_q"]
        same_weights = w is self._packed or (not isinstance(w, PackedMatrix)
                                             and np.array_equal(np.asarray(w), self.weight_q))
        bias = d.get("bias")
        same_bias = (bias is None and self._bias is None) or (
            bias is not None and self._bias is not None and np.array_equal(np.asarray(bias, np.float32), self._bias))
        if not same_weights or not same_bias or activation != self.activation:
            fresh = Linear.from_state_dict({k: v for k, v in d.items() if not k.startswith(("input", "output"))},
                                           activation)
            self.__dict__.update(fresh.__dict__)
        scheme = _scheme(d)
        self.per_token, self.act_bits = scheme["per_token"], _check_bits(scheme["act_bits"])
        return self._load_static_qparams(d)

    def _load_static_qparams(self, d: Dict[str, Any]) -> "Linear":
        for name in ("input", "output"):
            if f"{name}_scale" in d:
                qp = QParams(np.float32(d[f"{name}_scale"]), int(d[f"{name}_zero_point"]),
                             str(np.asarray(d[f"{name}_dtype"])), None)
                setattr(self, f"{name}_qparams", qp)
        return self

    # ---- files ----------------------------------------------------------------------

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the layer to one file: its packed weights as
        :meth:`PackedMatrix.save` writes them, and everything else
        :meth:`state_dict` holds (scales, bias, scheme, activation, static parameters)."""
        state = {k: v for k, v in self.state_dict().items() if k != "weight_q"}
        buf = io.BytesIO()
        np.savez(buf, **state)
        write_packed_file(path, self._packed, extra=buf.getvalue(), extra_kind=_LINEAR_STATE)

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], mmap: bool = True, verify: bool = False) -> "Linear":
        """The layer :meth:`save` wrote. The packed weights are memory-mapped (or
        repacked for another CPU, or read with ``mmap=False``) exactly as
        :func:`qgemm.load_packed` does; the rest goes through :meth:`from_state_dict`."""
        weights, f = read_packed_file(path, mmap=mmap, verify=verify, repack=True)
        if f.extra_kind != _LINEAR_STATE:
            raise ValueError(f"{os.fspath(path)!r} holds a packed matrix, not a Linear layer "
                             "(load it with qgemm.load_packed)")
        try:
            with np.load(io.BytesIO(f.extra), allow_pickle=False) as z:
                state: Dict[str, Any] = {k: z[k] for k in z.files}
        except ValueError as e:  # the header checksum passed, so this is not damage but a foreign writer
            raise ValueError(f"cannot load the Linear state in {os.fspath(path)!r}: {e}") from None
        state["weight_q"] = weights
        return cls.from_state_dict(state)

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"weight={self._packed.dtype}, per_channel={self.weight_qparams.axis is not None}, "
                f"per_token={self.per_token}, act_bits={self.act_bits})")


def _scheme(d: Dict[str, Any]) -> Dict[str, Any]:
    """The dynamic scheme stored in a state dict (per tensor, 8 bits if absent)."""
    return {"per_token": bool(d.get("per_token", False)), "act_bits": int(d.get("act_bits", 8))}
