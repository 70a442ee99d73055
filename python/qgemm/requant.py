"""Requantization: int32 accumulators back to int8/uint8 (or float32), fused
into the GEMM epilogue (`qlinear_matmul`) or standalone (`requantize`).

Two schemes, each bit-exact with its peers:

* ``requant="float"``: a float32 multiplier ``M = float32(a_scale * b_scale) / y_scale``
  per output column, ``y = clamp(round_half_even(acc * M) + y_zero_point)``: ONNX
  ``QLinearMatMul`` as ONNX Runtime computes it. A float32 bias (real units) is
  divided by ``a_scale * b_scale`` and added to the accumulator before the
  multiplier, which is what PyTorch's fbgemm quantized Linear does.
* ``requant="fixed_point"``: integer only, gemmlowp/TFLite style. The real
  multiplier ``double(float32(a_scale * b_scale)) / double(y_scale)`` becomes a
  Q31 multiplier and a shift (:func:`quantize_multiplier`), applied with a
  saturating rounding doubling high multiply and a rounding right shift
  (TFLite's ``MultiplyByQuantizedMultiplier``). The bias must be int32.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _checks, _out, _qgemm
from .gemm import PackedMatrix

_KIND = {"int32": 0, "float32": 1, "float": 2, "fixed_point": 3}
Activation = Union[None, str, Tuple[float, float]]


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``
    with ``multiplier`` in [2**30, 2**31) (0 for 0.0). ``shift > 0`` is a left shift.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"real multiplier must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)              # real = q * 2**shift, q in [0.5, 1)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # std::round: half away from zero (q > 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:                          # too small for 32 bits: it rounds to zero
        return 0, 0
    if shift > 30:
        raise ValueError(f"real multiplier {real!r} is too large (>= 2**30)")
    return int(q_fixed), int(shift)


def _per_column(v: Any, n: int, arg: str) -> np.ndarray:
    scalar = isinstance(v, (float, int, np.floating, np.integer)) or np.ndim(v) == 0  # np.ndim costs ~1 us
    s = _checks.scales(v, None if scalar else n, arg)
    return np.broadcast_to(s, (n,)) if s.size == 1 else s


def _activation_bounds(activation: Activation, y_scale: Optional[float], zp: int, lo: int, hi: int,
                       quantized: bool):
    """Clamp bounds in output units: quantized codes, or real values for float32."""
    if activation is None:
        rlo, rhi = -math.inf, math.inf
    elif isinstance(activation, str):
        if activation == "relu":
            rlo, rhi = 0.0, math.inf
        elif activation == "relu6":
            rlo, rhi = 0.0, 6.0
        else:
            raise ValueError(f"activation must be None, 'relu', 'relu6' or (min, max), got {activation!r}")
    else:
        try:
            rlo, rhi = (float(v) for v in activation)
        except (TypeError, ValueError):
            raise ValueError(f"activation must be None, 'relu', 'relu6' or (min, max), got {activation!r}") from None
        if not rlo <= rhi:
            raise ValueError(f"activation (min, max) needs min <= max, got {activation!r}")
    if not quantized:
        return np.float32(rlo), np.float32(rhi)
    # Real bounds quantized the same way as quantize(): round half to even.
    def q(x: float) -> int:
        if math.isinf(x):
            return lo if x < 0 else hi
        return int(min(max(np.rint(np.float32(x) / np.float32(y_scale)) + zp, lo), hi))
    return max(lo, q(rlo)), min(hi, q(rhi))


def _output_dtype(out_dtype: Any, default: str) -> str:
    if out_dtype is None:
        return default
    try:
        name = np.dtype(out_dtype).name
    except TypeError:
        name = None
    if name not in ("int8", "uint8", "float32"):
        raise ValueError(f"out_dtype must be 'int8', 'uint8' or 'float32', got {out_dtype!r}")
    return name


def _stage(n: int, ab_scale: np.ndarray, y_scale: Any, y_zero_point: Any, bias: Any,
           activation: Activation, requant: str, out_name: str) -> dict:
    """The keyword arguments of the native output stage for n columns."""
    if requant not in ("float", "fixed_point"):
        raise ValueError(f"requant must be 'float' or 'fixed_point', got {requant!r}")
    kw: dict = {}
    b = None if bias is None else np.asarray(bias)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != n:
            raise ValueError(f"bias must be 1-D with one value per output column ({n}), got shape {b.shape}")
        if b.dtype.kind not in "iuf" or b.dtype == np.bool_:
            raise TypeError(f"bias must be int32 (accumulator units) or float32 (real units), got {b.dtype}")
    if out_name == "float32":
        kw["kind"] = _KIND["float32"]
        kw["scale"] = ab_scale
        if b is not None:
            if b.dtype.kind == "f":
                kw["offset"] = b.astype(np.float32)
            else:
                kw["bias"] = _int32_bias(b)
        kw["fmin"], kw["fmax"] = _activation_bounds(activation, None, 0, 0, 0, quantized=False)
        return kw
    ys = _checks.scales(y_scale, None, "y_scale")[0]
    zp = _checks.zero_point_scalar(y_zero_point, out_name, "y_zero_point")
    lo, hi = _checks.QRANGE[out_name]
    kw["zero_point"] = zp
    kw["qmin"], kw["qmax"] = _activation_bounds(activation, ys, zp, lo, hi, quantized=True)
    if requant == "float":
        kw["kind"] = _KIND["float"]
        kw["scale"] = (ab_scale / ys).astype(np.float32)
        if b is not None:
            if b.dtype.kind == "f":
                kw["offset"] = (b.astype(np.float32) / ab_scale).astype(np.float32)
            else:
                kw["bias"] = _int32_bias(b)
    else:
        kw["kind"] = _KIND["fixed_point"]
        if b is not None:
            if b.dtype.kind == "f":
                raise TypeError("requant='fixed_point' takes an int32 bias (in units of a_scale * b_scale)")
            kw["bias"] = _int32_bias(b)
        kw["mult"], kw["shift"] = _fixed_point(ab_scale.astype(np.float64) / np.float64(ys))
    return kw


def _fixed_point(real: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-column Q31 multipliers and shifts (one conversion per distinct value)."""
    if real.size and (real == real[0]).all():  # per tensor: no sort
        m, sh = quantize_multiplier(float(real[0]))
        return np.full(real.shape, m, np.int32), np.full(real.shape, sh, np.int32)
    values, index = np.unique(real, return_inverse=True)
    pairs = np.array([quantize_multiplier(r) for r in values], np.int64).reshape(-1, 2)
    return pairs[index, 0].astype(np.int32), pairs[index, 1].astype(np.int32)


def _int32_bias(b: np.ndarray) -> np.ndarray:
    if b.size and (b.min() < -2**31 or b.max() > 2**31 - 1):
        raise ValueError("an integer bias must fit int32")
    return b.astype(np.int32)


def qlinear_matmul(a: Any, a_scale: float, a_zero_point: int, b: Union[Any, PackedMatrix],
                   b_scale: Any, b_zero_point: Any, y_scale: Optional[float], y_zero_point: Optional[int],
                   bias: Any = None, activation: Activation = None, requant: str = "float",
                   out_dtype: Any = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Quantized matrix product, ONNX ``QLinearMatMul`` argument order.

    ``y = requantize((A - a_zero_point) @ (B - b_zero_point) [+ bias])`` with the
    zero-point algebra, bias, multiplier, rounding, zero point, activation and
    narrowing all done in the GEMM epilogue (no M x N int32 temporary).

    ``a``: (..., M, K) int8/uint8. ``b``: (K, N) int8/uint8 or a :class:`PackedMatrix`
    (then ``b_zero_point`` must be None: the packed matrix carries it).
    ``b_scale``/``b_zero_point``: per tensor or one per output column.
    ``out_dtype``: int8/uint8 (default: a's dtype), or float32 to dequantize in the
    epilogue (``y_scale``/``y_zero_point`` are then unused and may be None).
    ``bias``: int32 (units of ``a_scale * b_scale``, as ONNX/TFLite) or float32
    (real units, as PyTorch). ``activation``: None, "relu", "relu6" or a real
    (min, max) clamp. ``requant``: "float" or "fixed_point" (see the module doc).
    """
    av = _checks.quantized_array(a, "a")
    if av.ndim < 2:
        raise ValueError(f"a must have at least 2 dimensions (..., M, K), got shape {av.shape}")
    a_name = _checks.qname(av)
    za = _checks.zero_point_scalar(a_zero_point, a_name, "a_zero_point")
    sa = _checks.scales(a_scale, None, "a_scale")[0]
    if isinstance(b, PackedMatrix):
        if b_zero_point is not None:
            raise ValueError("b_zero_point must be None when b is a PackedMatrix (it carries its own)")
        packed = b
    else:
        bv = _checks.quantized_array(b, "b")
        if bv.ndim != 2:
            raise ValueError(f"b must be 2-D (K, N), got shape {bv.shape}")
        packed = PackedMatrix(bv, 0 if b_zero_point is None else b_zero_point, _single_use=True)
    k, n = packed.shape
    sb = _per_column(b_scale, n, "b_scale")
    ab = (np.float32(sa) * sb).astype(np.float32)
    out_name = _output_dtype(out_dtype, a_name)
    kw = _stage(n, ab, y_scale, y_zero_point, bias, activation, requant, out_name)

    a3 = av[None] if av.ndim == 2 else av.reshape((math.prod(av.shape[:-2]),) + av.shape[-2:])  # not -1: size 0
    if a3.shape[2] != k:
        raise ValueError(f"a and b disagree on K: a has shape {av.shape}, b has K={k}")
    shape = av.shape[:-1] + (n,)
    rows = a3.shape[0] * a3.shape[1]
    c = _out.buffer(out, shape, np.dtype(out_name), a3)
    if rows and n:
        _qgemm.gemm(a3, za, packed._packed, packed._zero_point, c.reshape(rows, n), **kw)
    return _out.result(out, c)


def requantize(acc: Any, multiplier: Any, zero_point: int = 0, dtype: Any = "int8", bias: Any = None,
               clamp: Optional[Tuple[int, int]] = None, requant: str = "float",
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Requantizes your own int32 accumulators: ``y = clamp(round(acc * multiplier) + zero_point)``.

    ``acc``: int32 array (..., N). ``multiplier``: the real multiplier
    (``a_scale * b_scale / y_scale``), a scalar or one per last-axis column (N,).
    ``bias``: int32 (N,), added to the accumulator first. ``clamp``: optional
    (lo, hi) in output codes (for a fused activation). ``requant``: "float"
    (float32 multiplier, round half to even, as ONNX Runtime) or "fixed_point"
    (Q31 multiplier and shift, as TFLite). Same code as the GEMM epilogue, so
    results equal :func:`qlinear_matmul`'s.
    """
    accv = acc if type(acc) is np.ndarray else np.asarray(acc)
    if accv.dtype != np.int32:
        raise TypeError(f"acc must be an int32 array, got dtype {accv.dtype}")
    if accv.ndim < 1:
        raise ValueError("acc must have at least 1 dimension")
    name = _checks.qdtype_name(dtype)
    n = accv.shape[-1]
    if requant not in ("float", "fixed_point"):
        raise ValueError(f"requant must be 'float' or 'fixed_point', got {requant!r}")
    mult = np.asarray(multiplier)
    if mult.dtype.kind not in "fiu" or mult.dtype == np.bool_:
        raise TypeError(f"multiplier must be a positive float, got dtype {mult.dtype}")
    mult64 = mult.astype(np.float64).reshape(-1)
    if mult.ndim > 1 or (mult.ndim == 1 and mult64.size != n) or mult64.size == 0:
        raise ValueError(f"multiplier must be a scalar or have one value per column ({n}), got shape {mult.shape}")
    if not np.all(np.isfinite(mult64)) or not np.all(mult64 > 0):
        raise ValueError(f"multiplier must be finite and > 0, got {multiplier!r}")
    zp = _checks.zero_point_scalar(zero_point, name, "zero_point")
    lo, hi = _checks.QRANGE[name]
    if clamp is not None:
        try:
            clo, chi = (int(v) for v in clamp)
        except (TypeError, ValueError):
            raise ValueError(f"clamp must be (lo, hi) integers, got {clamp!r}") from None
        if not lo <= clo <= chi <= hi:
            raise ValueError(f"clamp must satisfy {lo} <= lo <= hi <= {hi} for {name}, got {clamp!r}")
        lo, hi = clo, chi
    kw: dict = {"zero_point": zp, "qmin": lo, "qmax": hi}
    m64 = np.broadcast_to(mult64, (n,))
    if requant == "float":
        kw["kind"] = _KIND["float"]
        kw["scale"] = m64.astype(np.float32)
    else:
        kw["kind"] = _KIND["fixed_point"]
        kw["mult"], kw["shift"] = _fixed_point(m64)
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind not in "iu":
            raise TypeError(f"bias must be an integer (int32) array, got dtype {b.dtype}")
        if b.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {b.shape}")
        kw["bias"] = _int32_bias(b)
    rows = math.prod(accv.shape[:-1])
    a2 = accv.reshape(rows, n)
    if a2.size and a2.strides[1] != 4:
        a2 = np.ascontiguousarray(a2)
    c = _out.buffer(out, accv.shape, np.dtype(name), a2)
    if rows and n:
        _qgemm.requantize(a2, c.reshape(rows, n), **kw)
    return _out.result(out, c)
