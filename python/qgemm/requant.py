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
from .gemm import PackedMatrix, RuntimeBatch, b_operand, is_runtime_batch

Activation = Union[None, str, Tuple[float, float]]


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``
    with ``multiplier`` in [2**30, 2**31) (0 for 0.0). ``shift > 0`` is a left shift.
    """
    return _qgemm.quantize_multiplier(float(real))  # the output stage's own (output_stage.cpp)


def _column_scales(v: Any, n: int, arg: str) -> np.ndarray:
    """Positive finite float32 scales: one (per tensor) or one per column."""
    scalar = isinstance(v, (float, int, np.floating, np.integer)) or np.ndim(v) == 0  # np.ndim costs ~1 us
    return _checks.scales(v, None if scalar else n, arg)


def _real_clamp(activation: Activation) -> Tuple[float, float]:
    """The activation as a clamp of real output values: (min, max)."""
    if activation is None:
        return -math.inf, math.inf
    if isinstance(activation, str):
        if activation == "relu":
            return 0.0, math.inf
        if activation == "relu6":
            return 0.0, 6.0
        raise ValueError(f"activation must be None, 'relu', 'relu6' or (min, max), got {activation!r}")
    try:
        lo, hi = (float(v) for v in activation)
    except (TypeError, ValueError):
        raise ValueError(f"activation must be None, 'relu', 'relu6' or (min, max), got {activation!r}") from None
    if not lo <= hi:
        raise ValueError(f"activation (min, max) needs min <= max, got {activation!r}")
    return lo, hi


def _activation_scale(a_scale: Any, rows_shape: Tuple[int, ...]) -> Tuple[np.float32, Optional[np.ndarray]]:
    """(a_scale, None) per tensor, or (1, float32 scales of the rows) for one per row of A."""
    if _checks.is_scalar(a_scale):
        return _checks.scales(a_scale, None, "a_scale")[0], None
    return np.float32(1), _checks.row_scales(a_scale, rows_shape, "a_scale")


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


def _stage(n: int, sa: np.float32, sa_rows: Optional[np.ndarray], b_scale: Any, y_scale: Any,
           y_zero_point: Any, bias: Any, activation: Activation, requant: str,
           out_name: str) -> "_qgemm.OutputParams":
    """The native output stage for n columns of a product with scales a_scale
    (``sa``, or one per row: ``sa_rows``) and ``b_scale``, checked here; the
    numerics (float32 products, bias offsets, quantized activation bounds, Q31
    multipliers, and the refusal of products past float32's normal range) are
    the core's (output_params.h)."""
    if requant not in ("float", "fixed_point"):
        raise ValueError(f"requant must be 'float' or 'fixed_point', got {requant!r}")
    b = None if bias is None else np.asarray(bias)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != n:
            raise ValueError(f"bias must be 1-D with one value per output column ({n}), got shape {b.shape}")
        if b.dtype.kind not in "iuf" or b.dtype == np.bool_:
            raise TypeError(f"bias must be int32 (accumulator units) or float32 (real units), got {b.dtype}")
    per_row = sa_rows is not None
    if per_row and requant == "fixed_point" and out_name != "float32":
        raise ValueError("requant='fixed_point' takes a per-tensor a_scale (TFLite semantics); per-row "
                         "a_scale needs requant='float' or out_dtype='float32'")
    sb = _column_scales(b_scale, n, "b_scale")
    sa_arg = sa_rows if per_row else sa
    real_bias = None if b is None or b.dtype.kind != "f" else b.astype(np.float32)
    int_bias = None if b is None or b.dtype.kind == "f" else _int32_bias(b)
    lo, hi = _real_clamp(activation)
    if out_name == "float32":
        return _qgemm.OutputParams.dequantize(n, sa_arg, per_row, sb, int_bias, real_bias, lo, hi)
    ys = _checks.scales(y_scale, None, "y_scale")[0]
    zp = _checks.zero_point_scalar(y_zero_point, out_name, "y_zero_point")
    u8 = out_name == "uint8"
    if requant == "float":
        return _qgemm.OutputParams.requantize_float(n, sa_arg, per_row, sb, ys, zp, u8, int_bias, real_bias, lo, hi)
    if real_bias is not None:
        raise TypeError("requant='fixed_point' takes an int32 bias (in units of a_scale * b_scale)")
    return _qgemm.OutputParams.requantize_fixed_point(n, sa_arg, sb, ys, zp, u8, int_bias, lo, hi)


def _int32_bias(b: np.ndarray) -> np.ndarray:
    if b.size and (b.min() < -2**31 or b.max() > 2**31 - 1):
        raise ValueError("an integer bias must fit int32")
    return b.astype(np.int32)


def qlinear_matmul(a: Any, a_scale: Any, a_zero_point: Any, b: Union[Any, PackedMatrix],
                   b_scale: Any, b_zero_point: Any, y_scale: Optional[float], y_zero_point: Optional[int],
                   bias: Any = None, activation: Activation = None, requant: str = "float",
                   out_dtype: Any = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Quantized matrix product, ONNX ``QLinearMatMul`` argument order.

    ``y = requantize((A - a_zero_point) @ (B - b_zero_point) [+ bias])`` with the
    zero-point algebra, bias, multiplier, rounding, zero point, activation and
    narrowing all done in the GEMM epilogue (no M x N int32 temporary).

    ``a``: (..., M, K) int8/uint8. ``b``: (K, N) int8/uint8 or a :class:`PackedMatrix`
    (then ``b_zero_point`` may be None or the value it was packed with).
    ``a_scale``/``a_zero_point``: per tensor, or one per row of ``a`` (arrays of
    shape ``a.shape[:-1]``: per-token activations); with per-row scales the
    multiplier is formed element by element in float32 exactly as the
    per-tensor one (``float32(a_scale[i] * b_scale[j]) / y_scale``, a float
    bias divided by ``a_scale[i] * b_scale[j]``), and ``requant="fixed_point"``
    refuses them (TFLite has one input scale).
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
    rows_shape = av.shape[:-1]
    za_rows = None
    if _checks.is_scalar(a_zero_point):
        za = _checks.zero_point_scalar(a_zero_point, a_name, "a_zero_point")
    else:
        za, za_rows = 0, _checks.row_zero_points(a_zero_point, rows_shape, a_name, "a_zero_point")
    sa, sa_rows = _activation_scale(a_scale, rows_shape)
    if is_runtime_batch(b):
        return _qlinear_runtime_batch(av, za, za_rows, sa, sa_rows, b, b_scale, b_zero_point, y_scale,
                                      y_zero_point, bias, activation, requant, out_dtype, out)
    bop, zb, (k, n) = b_operand(b, b_zero_point)
    out_name = _output_dtype(out_dtype, a_name)
    params = _stage(n, sa, sa_rows, b_scale, y_scale, y_zero_point, bias, activation, requant, out_name)

    a3 = av[None] if av.ndim == 2 else av.reshape((math.prod(av.shape[:-2]),) + av.shape[-2:])  # -1 fails on K = 0
    if a3.shape[2] != k:
        raise ValueError(f"a and b disagree on K: a has shape {av.shape}, b has K={k}")
    shape = av.shape[:-1] + (n,)
    rows = a3.shape[0] * a3.shape[1]
    c = _out.buffer(out, shape, np.dtype(out_name), a3, za_rows, bop)  # params are the core's copies
    if rows and n:
        _qgemm.gemm(a3, za, bop, zb, c.reshape(rows, n), params, za_rows)
    return _out.result(out, c)


def _qlinear_runtime_batch(av, za, za_rows, sa, sa_rows, b, b_scale, b_zero_point, y_scale, y_zero_point,
                           bias, activation, requant, out_dtype, out):
    """qlinear_matmul with a plain B of batch dimensions (see RuntimeBatch)."""
    rb = RuntimeBatch(av, _checks.quantized_array(b, "b"))
    out_name = _output_dtype(out_dtype, _checks.qname(av))
    params = _stage(rb.n, sa, rb.per_row(sa_rows), b_scale, y_scale, y_zero_point, bias, activation, requant,
                    out_name)
    za_rows = None if za_rows is None else rb.per_row(za_rows)
    c = _out.buffer(out, rb.shape(), np.dtype(out_name), rb.a, rb.b, za_rows)
    if rb.rows and rb.n:
        _qgemm.gemm(rb.a, za, rb.b, rb.column_zero_points(b_zero_point), c.reshape(rb.rows, rb.n), params,
                    za_rows)
    return _out.result(out, c)


def requantize(acc: Any, multiplier: Any = None, zero_point: int = 0, dtype: Any = "int8", bias: Any = None,
               clamp: Optional[Tuple[int, int]] = None, requant: str = "float",
               out: Optional[np.ndarray] = None, *, a_scale: Any = None, b_scale: Any = None,
               y_scale: Any = None) -> np.ndarray:
    """Requantizes your own int32 accumulators: ``y = clamp(round(acc * multiplier) + zero_point)``.

    ``acc``: int32 array (..., N), any strides. The multiplier is given one of two ways:

    * ``a_scale``, ``b_scale``, ``y_scale`` (keywords; ``b_scale`` a scalar or
      one per column, ``a_scale`` a scalar or one per row, shape
      ``acc.shape[:-1]``): the multiplier is formed exactly as
      :func:`qlinear_matmul` forms it (``float32(a_scale * b_scale) / y_scale``
      in float32, or its Q31 form), so ``requantize(matmul(a, b, za, zb), ...,
      a_scale=sa, b_scale=sb, y_scale=sy)`` equals ``qlinear_matmul(a, sa, za,
      b, sb, zb, sy, ...)`` bit for bit. ``bias`` may then also be float32 in
      real units, as there.
    * ``multiplier``: the real multiplier, broadcast against ``acc`` as NumPy
      does: a scalar, one per last-axis column (N,), or one per row (shape
      ``acc.shape[:-1] + (1,)``, for accumulators of per-token activations).
      With ``requant="float"`` it is rounded once to the nearest float32; with
      ``"fixed_point"`` its float64 value becomes the Q31 multiplier and shift.
      ``sa * sb / sy`` computed in float64 can round to a different float32
      than the fused path's, and so move an exact tie by one code: pass the
      scales instead to match :func:`qlinear_matmul`.

    Per-row scales or multipliers need ``requant="float"`` (the fixed-point
    scheme has one input scale).
    ``bias``: int32 (N,), added to the accumulator first. ``clamp``: optional
    (lo, hi) in output codes (for a fused activation). ``requant``: "float"
    (float32 multiplier, round half to even, as ONNX Runtime) or "fixed_point"
    (Q31 multiplier and shift, as TFLite). The same output stage as the GEMM
    epilogue. Multipliers that are not finite and normal in float32 are refused.
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
    given = [v is not None for v in (a_scale, b_scale, y_scale)]
    by_scales = any(given)
    if by_scales == (multiplier is not None) or not all(given) and by_scales:
        raise ValueError("requantize needs either multiplier, or all of a_scale, b_scale and y_scale")
    if by_scales:
        sa, sa_rows = _activation_scale(a_scale, accv.shape[:-1])
        params = _stage(n, sa, sa_rows, b_scale, y_scale, zero_point, bias, None, requant, name)
    else:
        params = _plain_multiplier_stage(n, accv.shape[:-1], multiplier, zero_point, bias, requant, name)
    if clamp is not None:
        lo, hi = _checks.QRANGE[name]
        try:
            clo, chi = (int(v) for v in clamp)
        except (TypeError, ValueError):
            raise ValueError(f"clamp must be (lo, hi) integers, got {clamp!r}") from None
        if not lo <= clo <= chi <= hi:
            raise ValueError(f"clamp must satisfy {lo} <= lo <= hi <= {hi} for {name}, got {clamp!r}")
        params.clamp_codes(clo, chi)
    rows = math.prod(accv.shape[:-1])
    a2 = accv.reshape(rows, n)
    # The native stage reads rows at a non-negative stride of whole int32s.
    if a2.size and (a2.strides[1] != 4 or a2.strides[0] < 0 or a2.strides[0] % 4):
        a2 = np.ascontiguousarray(a2)
    c = _out.buffer(out, accv.shape, np.dtype(name), a2)
    if rows and n:
        _qgemm.requantize(a2, c.reshape(rows, n), params)
    return _out.result(out, c)


def _plain_multiplier_stage(n: int, rows_shape: Tuple[int, ...], multiplier: Any, zero_point: Any, bias: Any,
                            requant: str, name: str) -> "_qgemm.OutputParams":
    """The native output stage for requantize's plain multiplier (checked here;
    rounded to float32 or Q31 by the core)."""
    mult = np.asarray(multiplier)
    if mult.dtype.kind not in "fiu" or mult.dtype == np.bool_:
        raise TypeError(f"multiplier must be a positive float, got dtype {mult.dtype}")
    mult64 = mult.astype(np.float64).reshape(-1)
    per_row = mult.ndim >= 2 and mult.shape == rows_shape + (1,)
    if per_row:
        if requant != "float":
            raise ValueError("a per-row multiplier needs requant='float' (the fixed-point scheme has one "
                             "input scale)")
    elif mult.ndim > 1 or (mult.ndim == 1 and mult64.size != n) or mult64.size == 0:
        raise ValueError(f"multiplier must be a scalar, have one value per column ({n},) or one per row "
                         f"{rows_shape + (1,)}, got shape {mult.shape}")
    if not np.all(np.isfinite(mult64)) or not np.all(mult64 > 0):
        raise ValueError(f"multiplier must be finite and > 0, got {multiplier!r}")
    zp = _checks.zero_point_scalar(zero_point, name, "zero_point")
    int_bias = None
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind not in "iu":
            raise TypeError(f"bias must be an integer (int32) array, got dtype {b.dtype}")
        if b.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {b.shape}")
        int_bias = _int32_bias(b)
    return _qgemm.OutputParams.by_multiplier(n, mult64, per_row, requant == "fixed_point", zp, name == "uint8",
                                             int_bias)
