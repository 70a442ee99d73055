"""Quantization parameters, quantize and dequantize (ONNX QuantizeLinear /
DequantizeLinear semantics, bit-exact with ONNX Runtime)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _checks, _memory, _out, _qgemm

ArrayLike = Any
Scale = Union[float, np.ndarray]
ZeroPoint = Union[int, np.ndarray]

_EPS = np.float32(np.finfo(np.float32).eps)  # smallest scale, as PyTorch's observers


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization parameters: ``q = clamp(round(x / scale) + zero_point)``.

    ``scale`` is a float32 and ``zero_point`` an int for per-tensor parameters
    (``axis is None``), or 1-D float32 / int32 arrays with one value per slice
    along ``axis`` (a scalar zero point is used for every slice).

    Checked on construction: ``dtype`` is int8 or uint8, every scale is finite
    and > 0 as a float32, every zero point lies inside the dtype, and per-axis
    scales and zero points have the same length. Anything else is a
    ValueError/TypeError naming the field.
    """

    scale: Scale
    zero_point: ZeroPoint
    dtype: str = "int8"
    axis: Optional[int] = None

    def __post_init__(self) -> None:
        dtype = _checks.qdtype_name(self.dtype, "dtype")
        if self.axis is None:
            scale: Scale = _checks.scales(self.scale, None, "scale")[0]
            zp: ZeroPoint = _checks.zero_point_scalar(self.zero_point, dtype, "zero_point")
            axis = None
        else:
            if isinstance(self.axis, bool) or not isinstance(self.axis, numbers.Integral):
                raise TypeError(f"axis must be an int or None, got {self.axis!r}")
            axis = int(self.axis)
            if np.ndim(self.scale) != 1:
                raise ValueError(f"scale must be 1-D (one per slice along axis {axis}), "
                                 f"got shape {np.shape(self.scale)}")
            count = int(np.shape(self.scale)[0])
            scale = _checks.scales(self.scale, count, "scale")
            zp = _checks.zero_points(self.zero_point, count, dtype, "zero_point")
        for name, value in (("scale", scale), ("zero_point", zp), ("dtype", dtype), ("axis", axis)):
            object.__setattr__(self, name, value)

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


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in 2..8, got {bits!r}")
    return int(bits)


def _bits_range(dtype: str, bits: int) -> tuple:
    """The codes of ``bits`` bits: uint8 [0, 2**bits - 1], int8 [-2**(bits-1), 2**(bits-1) - 1]."""
    return (0, 2**bits - 1) if dtype == "uint8" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def qparams_from_range(min_val: ArrayLike, max_val: ArrayLike, dtype: Any = "int8",
                       symmetric: bool = False, reduce_range: bool = False,
                       axis: Optional[int] = None, bits: Optional[int] = None) -> QParams:
    """Parameters for data observed in [min_val, max_val]: scalars, or 1-D (one
    range per channel) with ``axis``.

    The range is first widened to contain 0, so 0.0 is exactly representable and
    the zero point always lies inside the dtype's range. The arithmetic is that
    of PyTorch's observers (float32, round half to even), so the results equal
    ``MinMaxObserver`` / ``PerChannelMinMaxObserver`` for the same scheme:

    * affine: ``scale = (max - min) / (qmax - qmin)``,
      ``zero_point = qmin - round(min / scale)``;
    * symmetric: ``scale = max(|min|, |max|) / ((qmax - qmin) / 2)``, zero point
      the middle code ``(qmin + qmax + 1) // 2``: 0 for int8, 128 for uint8,
      64 for uint8 with ``reduce_range`` or ``bits=7`` (PyTorch refuses that
      last case; 128 would lie outside the 7-bit range).

    ``bits`` (2..8) keeps that many bits of the dtype: qmin, qmax = 0, 2**bits - 1
    for uint8 and -2**(bits-1), 2**(bits-1) - 1 for int8 (``reduce_range`` is
    the 7-bit case, kept as PyTorch defines it; give one or the other).
    ``scale`` is at least float32 eps, so an all-zero or constant tensor still
    gives usable parameters. ValueError for NaN or infinite bounds,
    ``min_val > max_val``, and a range so wide (beyond about +-1.7e38 in all)
    that its scale, or a code dequantized with it, would overflow float32.
    """
    dtype = _checks.qdtype_name(dtype)
    if bits is not None:
        bits = _check_bits(bits)
        if reduce_range:
            raise ValueError("give bits or reduce_range, not both")
    try:
        with np.errstate(over="ignore"):  # beyond float32: infinity, refused below
            lo_v = np.asarray(min_val, dtype=np.float32)
            hi_v = np.asarray(max_val, dtype=np.float32)
    except OverflowError:
        raise ValueError(f"min_val and max_val must be finite floats, got {min_val!r}, {max_val!r}") from None
    if axis is None:
        if lo_v.ndim or hi_v.ndim:
            raise ValueError(f"min_val and max_val must be scalars when axis is None (pass axis= for one "
                             f"range per channel), got shapes {lo_v.shape} and {hi_v.shape}")
    elif lo_v.ndim != 1 or lo_v.shape != hi_v.shape:
        raise ValueError(f"min_val and max_val must be 1-D of equal length (one per channel) when axis is "
                         f"given, got shapes {lo_v.shape} and {hi_v.shape}")
    if not (np.all(np.isfinite(lo_v)) and np.all(np.isfinite(hi_v))):
        raise ValueError("cannot choose parameters for a range with NaN or infinity "
                         f"(min_val={min_val}, max_val={max_val})")
    if np.any(lo_v > hi_v):
        raise ValueError(f"min_val must be <= max_val, got min_val={min_val}, max_val={max_val}")
    lo_v = np.minimum(lo_v, np.float32(0))
    hi_v = np.maximum(hi_v, np.float32(0))
    qmin, qmax = _qrange(dtype, reduce_range) if bits is None else _bits_range(dtype, bits)
    with np.errstate(over="ignore"):  # a too-wide range is reported below
        if symmetric:
            amax = np.maximum(-lo_v, hi_v)
            scale = np.maximum(amax / np.float32((qmax - qmin) / 2), _EPS).astype(np.float32)
            # The middle code: 0 (int8), 128 (uint8), 64 (uint8 in 7 bits), always inside [qmin, qmax].
            zp = np.full(scale.shape, (qmin + qmax + 1) // 2, dtype=np.int32)
        else:
            scale = np.maximum((hi_v - lo_v) / np.float32(qmax - qmin), _EPS).astype(np.float32)
            zp = np.clip(qmin - np.rint(lo_v / scale), qmin, qmax).astype(np.int32)
    if not dequantizes_finitely(scale, zp, dtype):
        raise ValueError(f"the range [{min_val}, {max_val}] is too wide for float32 parameters: its "
                         f"scale or a code dequantized with it would be infinite")
    if axis is None:
        return QParams(np.float32(scale), int(zp), dtype, None)
    return QParams(scale.reshape(-1), zp.reshape(-1), dtype, axis)


_F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103  # float32 rounds this magnitude and beyond to infinity


def dequantizes_finitely(scale: Any, zero_point: Any, dtype: str) -> bool:
    """Whether every code of the dtype (not only of a reduced range: quantize
    clamps to the whole dtype), dequantized with these parameters, is a finite
    float32 (the scale itself included)."""
    qmin, qmax = _checks.QRANGE[dtype]
    s = np.asarray(scale, np.float64)
    z = np.asarray(zero_point, np.float64)
    steps = np.maximum(np.abs(qmin - z), np.abs(qmax - z))  # exact in float64: 24 + 8 bits
    return bool(np.all(np.isfinite(s)) and np.all(s * steps < _F32_OVERFLOW))


def choose_qparams(x: ArrayLike, dtype: Any = "int8", symmetric: bool = False,
                   axis: Optional[int] = None, reduce_range: bool = False) -> QParams:
    """Min-max calibration of ``x``: per tensor, or per slice along ``axis``.

    NaN and infinity: NaN values are ignored (the range comes from the finite
    values); a tensor, or a slice along ``axis``, with no finite value at all
    (empty, or all NaN) is a ValueError, and so is any infinity (no finite scale
    represents it). With ``axis``, zero slices give empty per-axis parameters.
    See :func:`qparams_from_range` for the formulas.
    """
    a = _checks.float_array(x, "x")
    ax = _checks.normalize_axis(axis, a.ndim)
    if np.isinf(a).any():
        raise ValueError("x contains infinity: no finite scale represents it")
    if ax is None:
        if a.size == 0:
            raise ValueError("x is empty: there are no values to choose parameters from")
        if np.isnan(a).all():
            raise ValueError("x has no finite value (all NaN): there is no range to choose parameters from")
        lo, hi = np.nanmin(a), np.nanmax(a)
    else:
        channels = a.shape[ax]
        moved = np.moveaxis(a, ax, 0).reshape(channels, a.size // channels if channels else 0)
        if channels and moved.shape[1] == 0:
            raise ValueError(f"x has no values along axis {ax} (shape {a.shape}): there is nothing to "
                             f"choose parameters from")
        with np.errstate(all="ignore"):
            lo = np.fmin.reduce(moved, axis=1) if channels else np.zeros(0, a.dtype)
            hi = np.fmax.reduce(moved, axis=1) if channels else np.zeros(0, a.dtype)
        empty = np.flatnonzero(np.isnan(lo))
        if empty.size:
            raise ValueError(f"x has no finite value (all NaN) in slice {int(empty[0])} along axis {ax}")
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


def quantize_dynamic(x: ArrayLike, dtype: Any = "uint8", per_row: bool = True, bits: int = 8,
                     symmetric: bool = False) -> Tuple[np.ndarray, Any, Any]:
    """Quantizes ``x`` with parameters chosen from its own range: ``(q, scale, zero_point)``.

    ``per_row=True`` (per token): one scale and zero point per row, i.e. per
    index of ``x.shape[:-1]`` (``scale`` float32 and ``zero_point`` int32 arrays
    of that shape); ``per_row=False``: one pair for the whole tensor (a float32
    and an int). Each range ignores NaN and is widened to contain 0, and the
    parameters follow :func:`qparams_from_range` with ``bits`` (2..8) setting
    qmin/qmax; then ``q = clamp(round(x / scale) + zero_point, qmin, qmax)``.
    That is :func:`qparams_from_range` + :func:`quantize` row by row, bit for
    bit, except that codes are also clamped to the ``bits`` range (a value on
    the range's edge can round one code past qmax with fewer than 8 bits).
    One native pass per row (threaded over rows). NaN follows the rule of
    :func:`choose_qparams`: ignored in a range (its code is qmin, as in
    :func:`quantize`); a row (per_row) or tensor of values that are all NaN, an
    infinity, or a range too wide for float32 is a ValueError. A row of K = 0
    values gets the parameters of the range [0, 0].
    """
    a = _checks.float_array(x, "x")
    name = _checks.qdtype_name(dtype)
    bits = _check_bits(bits)
    if not isinstance(per_row, (bool, np.bool_)):
        raise TypeError(f"per_row must be a bool, got {per_row!r}")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be a bool, got {symmetric!r}")
    if per_row and a.ndim < 1:
        raise ValueError("per_row=True needs x with at least 1 dimension (rows along x.shape[:-1])")
    k = a.shape[-1] if a.ndim else 1
    rows = math.prod(a.shape[:-1]) if a.ndim else 1
    x2 = np.ascontiguousarray(a, dtype=np.float32).reshape(rows, k)
    q = _memory.empty(a.shape, _checks.QDTYPES[name])
    n_params = rows if per_row else 1
    scale = np.empty(n_params, np.float32)
    zp = np.empty(n_params, np.int32)
    _qgemm.quantize_dynamic(x2, q.reshape(rows, k), scale, zp, bits, bool(symmetric), bool(per_row))
    if per_row:
        return q, scale.reshape(a.shape[:-1]), zp.reshape(a.shape[:-1])
    return q, np.float32(scale[0]), int(zp[0])
