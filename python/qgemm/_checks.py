"""Argument checking shared by the public functions: one place for the rules
and the wording of the errors (each names the argument and what was expected)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np

QDTYPES = {"int8": np.dtype(np.int8), "uint8": np.dtype(np.uint8)}
QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
_NAME_OF_CHAR = {"b": "int8", "B": "uint8"}


def qname(a: np.ndarray) -> str:
    """'int8' or 'uint8' for an array already checked by quantized_array (fast)."""
    return _NAME_OF_CHAR[a.dtype.char]


def qdtype_name(dtype: Any, arg: str = "dtype") -> str:
    """'int8' or 'uint8' from a name, numpy dtype or type; ValueError for anything else."""
    if isinstance(dtype, str) and dtype in QDTYPES:  # the common case, without np.dtype()
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in QDTYPES:
        raise ValueError(f"{arg} must be 'int8' or 'uint8', got {dtype!r}")
    return name


def quantized_array(x: Any, arg: str) -> np.ndarray:
    """An int8 or uint8 ndarray; anything else is a TypeError (no silent casts)."""
    a = x if type(x) is np.ndarray else np.asarray(x)
    if a.dtype.char not in "bB":  # int8, uint8
        raise TypeError(f"{arg} must be an int8 or uint8 array, got dtype {a.dtype}")
    return a


def float_array(x: Any, arg: str) -> np.ndarray:
    """A float16/32/64 ndarray; integers, bools, objects, strings are TypeErrors."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise TypeError(f"{arg} must be a floating-point array (float16/32/64), got dtype {a.dtype}")
    return a


def normalize_axis(axis: Any, ndim: int, arg: str = "axis") -> Optional[int]:
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{arg} must be an int or None, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{arg}={axis} is out of range for an array of {ndim} dimension(s)")
    return axis % ndim


def scales(scale: Any, count: Optional[int], arg: str = "scale") -> np.ndarray:
    """Positive finite float32 scales: a scalar if count is None, else `count` of them."""
    if count is None and isinstance(scale, (float, int, np.floating)) and not isinstance(scale, bool):
        try:
            s32 = np.float32(scale)  # fast path for a plain number (small calls are microseconds)
        except OverflowError:  # an int beyond float's range, e.g. 10**400
            raise ValueError(f"{arg} must be finite and > 0 (as float32), got an int of "
                             f"{len(str(abs(scale)))} digits") from None
        if not (math.isfinite(s32) and s32 > 0):
            raise ValueError(f"{arg} must be finite and > 0 (as float32), got {scale!r}")
        return np.array([s32], np.float32)
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
        raise TypeError(f"{arg} must be a positive float, got dtype {s.dtype}")
    s32 = s.astype(np.float32)
    _check_count(s32, count, arg)
    # Checked after the cast: 1e-50 is positive in float64 but 0 in float32.
    # min and max: two reductions, no temporaries (NaN fails both comparisons).
    if s32.size and not (s32.min() > 0 and s32.max() < math.inf):
        raise ValueError(f"{arg} must be finite and > 0 (as float32), got {scale!r}")
    return s32.reshape(-1)


def zero_point_scalar(zp: Any, dtype: str, arg: str = "zero_point") -> int:
    """One integer zero point inside the dtype's range (fast path for ints)."""
    if type(zp) is int or (isinstance(zp, (int, np.integer)) and not isinstance(zp, (bool, np.bool_))):
        lo, hi = QRANGE[dtype]
        if not lo <= zp <= hi:
            raise ValueError(f"{arg} must lie in [{lo}, {hi}] for {dtype}, got {zp!r}")
        return int(zp)
    return int(zero_points(zp, None, dtype, arg)[0])


def zero_points(zp: Any, count: Optional[int], dtype: str, arg: str = "zero_point") -> np.ndarray:
    """Integer zero points inside the dtype's range, as int32: one, or `count` of
    them (a scalar is the same zero point for every channel)."""
    if isinstance(zp, (int, np.integer)) and not isinstance(zp, (bool, np.bool_)):
        return np.full(1 if count is None else count, zero_point_scalar(zp, dtype, arg), np.int32)
    z = np.asarray(zp)
    if z.dtype.kind not in "iu":
        raise TypeError(f"{arg} must be an integer (or integer array), got dtype {z.dtype}")
    if z.ndim == 0 and count is not None:
        return np.full(count, zero_point_scalar(z[()], dtype, arg), np.int32)
    _check_count(z, count, arg)
    lo, hi = QRANGE[dtype]
    if z.size and (z.min() < lo or z.max() > hi):
        raise ValueError(f"{arg} must lie in [{lo}, {hi}] for {dtype}, got {zp!r}")
    return z.astype(np.int32).reshape(-1)


def is_scalar(v: Any) -> bool:
    """True for a number or 0-d array (a per-tensor parameter)."""
    return isinstance(v, (int, float, np.integer, np.floating)) or np.ndim(v) == 0


def row_zero_points(zp: Any, rows_shape: Tuple[int, ...], dtype: str, arg: str) -> np.ndarray:
    """One zero point per row of A (an array of shape ``rows_shape``, A's shape
    without its last axis), flattened to int32 in C order."""
    z = np.asarray(zp)
    if z.dtype.kind not in "iu":
        raise TypeError(f"{arg} must be an integer or an integer array, got dtype {z.dtype}")
    if z.shape != tuple(rows_shape):
        raise ValueError(f"{arg} must be a scalar or have shape {tuple(rows_shape)} "
                         f"(one per row of a), got shape {z.shape}")
    lo, hi = QRANGE[dtype]
    if z.size and (z.min() < lo or z.max() > hi):
        raise ValueError(f"{arg} must lie in [{lo}, {hi}] for {dtype}")
    return np.ascontiguousarray(z, np.int32).reshape(-1)


def row_scales(scale: Any, rows_shape: Tuple[int, ...], arg: str) -> np.ndarray:
    """One positive finite float32 scale per row of A (shape ``rows_shape``), flattened."""
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
        raise TypeError(f"{arg} must be a positive float or float array, got dtype {s.dtype}")
    if s.shape != tuple(rows_shape):
        raise ValueError(f"{arg} must be a scalar or have shape {tuple(rows_shape)} "
                         f"(one per row of a), got shape {s.shape}")
    s32 = np.ascontiguousarray(s, np.float32).reshape(-1)
    if not np.all(np.isfinite(s32)) or not np.all(s32 > 0):
        raise ValueError(f"{arg} must be finite and > 0 (as float32)")
    return s32


def _check_count(v: np.ndarray, count: Optional[int], arg: str) -> None:
    if count is None:
        if v.size != 1 or v.ndim > 1:
            raise ValueError(f"{arg} must be a scalar for per-tensor use (axis=None), got shape {v.shape}")
    elif v.ndim > 1 or v.size != count:
        raise ValueError(f"{arg} must have one value per channel ({count}), got shape {v.shape}")


def channel_layout(shape: Tuple[int, ...], axis: Optional[int]) -> Tuple[int, int]:
    """(channels, inner) for per-axis parameters on a C-ordered array."""
    if axis is None:
        return 1, max(1, math.prod(shape))
    inner = math.prod(shape[axis + 1:])
    return int(shape[axis]), max(1, inner)


def output(out: Any, shape: Tuple[int, ...], dtype: np.dtype, arg: str = "out") -> Optional[np.ndarray]:
    """Validates a user's out= array (exact shape and dtype, writeable)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{arg} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{arg} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{arg} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{arg} must be writeable")
    return out
