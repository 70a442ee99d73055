"""Quantization parameters, quantize and dequantize (ONNX QuantizeLinear /
DequantizeLinear semantics, bit-exact with ONNX Runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from . import _checks, _out, _qgemm

ArrayLike = Any
Scale = Union[float, np.ndarray]
ZeroPoint = Union[int, np.ndarray]

_EPS = np.float32(np.finfo(np.float32).eps)  # smallest scale, as PyTorch's observers


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization parameters: ``q = clamp(round(x / scale) + zero_point)``.

    ``scale`` is a float32 and ``zero_point`` an int for per-tensor parameters
    (``axis is None``), or 1-D float32 / int32 arrays with one value per slice
    along ``axis``.
    """

    scale: Scale
    zero_point: ZeroPoint
    dtype: str = "int8"
    axis: Optional[int] = None

    @property
    def qmin(self) -> int:
        return _checks.QRANGE[self.dtype][0]

    @property
    def qmax(self) -> int:
        return _checks.QRANGE[self.dtype][1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QParams):
            return NotImplemented
        return (self.dtype == other.dtype and self.axis == other.axis
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def __hash__(self) -> int:
        return hash((self.dtype, self.axis, np.asarray(self.scale).tobytes(),
                     np.asarray(self.zero_point).tobytes()))


def _qrange(dtype: str, reduce_range: bool) -> tuple:
    lo, hi = _checks.QRANGE[dtype]
    if reduce_range:  # 7 bits, for fbgemm / ONNX Runtime u8s8 paths on pre-VNNI CPUs
        return (0, 127) if dtype == "uint8" else (-64, 63)
    return lo, hi


def qparams_from_range(min_val: ArrayLike, max_val: ArrayLike, dtype: Any = "int8",
                       symmetric: bool = False, reduce_range: bool = False,
                       axis: Optional[int] = None) -> QParams:
    """Parameters for data observed in [min_val, max_val] (scalars, or 1-D per channel).

    The range is first widened to contain 0, so 0.0 is exactly representable and
    the zero point always lies inside the dtype's range. The arithmetic is that
    of PyTorch's observers (float32, round half to even), so the results equal
    ``MinMaxObserver`` / ``PerChannelMinMaxObserver`` for the same scheme:

    * affine: ``scale = (max - min) / (qmax - qmin)``,
      ``zero_point = qmin - round(min / scale)``;
    * symmetric: ``scale = max(|min|, |max|) / ((qmax - qmin) / 2)``, zero point 0
      for int8 and 128 for uint8.

    ``scale`` is at least float32 eps, so an all-zero or constant tensor still
    gives usable parameters.
    """
    dtype = _checks.qdtype_name(dtype)
    lo_v = np.minimum(np.asarray(min_val, dtype=np.float32), np.float32(0))
    hi_v = np.maximum(np.asarray(max_val, dtype=np.float32), np.float32(0))
    if not (np.all(np.isfinite(lo_v)) and np.all(np.isfinite(hi_v))):
        raise ValueError("cannot choose parameters for a range with NaN or infinity")
    qmin, qmax = _qrange(dtype, reduce_range)
    if symmetric:
        amax = np.maximum(-lo_v, hi_v)
        scale = np.maximum(amax / np.float32((qmax - qmin) / 2), _EPS).astype(np.float32)
        zp = np.full(scale.shape, 128 if dtype == "uint8" else 0, dtype=np.int32)
    else:
        scale = np.maximum((hi_v - lo_v) / np.float32(qmax - qmin), _EPS).astype(np.float32)
        zp = np.clip(qmin - np.rint(lo_v / scale).astype(np.int32), qmin, qmax).astype(np.int32)
    if axis is None:
        return QParams(np.float32(scale), int(zp), dtype, None)
    return QParams(scale.reshape(-1), zp.reshape(-1), dtype, axis)


def choose_qparams(x: ArrayLike, dtype: Any = "int8", symmetric: bool = False,
                   axis: Optional[int] = None, reduce_range: bool = False) -> QParams:
    """Min-max calibration of ``x``: per tensor, or per slice along ``axis``.

    NaN values are ignored; infinities are an error (no finite scale covers them).
    See :func:`qparams_from_range` for the formulas.
    """
    a = _checks.float_array(x, "x")
    ax = _checks.normalize_axis(axis, a.ndim)
    if ax is None:
        if a.size == 0 or np.all(np.isnan(a)):
            lo = hi = np.float32(0)
        else:
            lo, hi = np.nanmin(a), np.nanmax(a)
    else:
        moved = np.moveaxis(a, ax, 0).reshape(a.shape[ax], -1)
        if moved.shape[1] == 0:
            lo = hi = np.zeros(a.shape[ax], np.float32)
        else:
            with np.errstate(all="ignore"):
                lo = np.nan_to_num(np.fmin.reduce(moved, axis=1), nan=0.0)
                hi = np.nan_to_num(np.fmax.reduce(moved, axis=1), nan=0.0)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("x contains infinity: no finite scale represents it")
    return qparams_from_range(lo, hi, dtype, symmetric, reduce_range, ax)


def _as_float32_c(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def quantize(x: ArrayLike, scale: Scale, zero_point: ZeroPoint = 0, dtype: Any = None,
             axis: Optional[int] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``q = clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)``.

    ONNX QuantizeLinear, bit-exact with ONNX Runtime: float32 division (not a
    multiplication by 1/scale, which is what PyTorch does and why it can land
    one step away on exact ties). float16/float64 inputs are first converted to
    float32. NaN becomes qmin (as in ONNX Runtime), +inf qmax, -inf qmin.

    ``dtype`` defaults to the dtype of ``zero_point`` if it is an int8/uint8
    numpy value, else int8. ``axis`` selects per-channel parameters: ``scale``
    and ``zero_point`` are then 1-D with ``x.shape[axis]`` values.
    """
    a = _checks.float_array(x, "x")
    if dtype is None:
        zdt = getattr(zero_point, "dtype", None)
        dtype = zdt if zdt in (np.int8, np.uint8) else "int8"
    name = _checks.qdtype_name(dtype)
    ax = _checks.normalize_axis(axis, a.ndim)
    count = None if ax is None else a.shape[ax]
    s = _checks.scales(scale, count)
    z = _checks.zero_points(zero_point, count, name)
    channels, inner = _checks.channel_layout(a.shape, ax)
    x32 = _as_float32_c(a)
    target = _out.buffer(out, a.shape, _checks.QDTYPES[name], x32)
    if a.size:
        _qgemm.quantize(x32, target, channels, inner, s, z)
    return _out.result(out, target)


def dequantize(q: ArrayLike, scale: Scale, zero_point: ZeroPoint = 0, axis: Optional[int] = None,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """``x = (q - zero_point) * scale`` in float32 (ONNX DequantizeLinear).

    ``q`` must be int8 or uint8; per-channel along ``axis`` as in :func:`quantize`.
    """
    qa = _checks.quantized_array(q, "q")
    name = qa.dtype.name
    ax = _checks.normalize_axis(axis, qa.ndim)
    count = None if ax is None else qa.shape[ax]
    s = _checks.scales(scale, count)
    z = _checks.zero_points(zero_point, count, name)
    channels, inner = _checks.channel_layout(qa.shape, ax)
    qc = np.ascontiguousarray(qa)
    target = _out.buffer(out, qa.shape, np.dtype(np.float32), qc)
    if qa.size:
        _qgemm.dequantize(qc, target, channels, inner, s, z)
    return _out.result(out, target)
