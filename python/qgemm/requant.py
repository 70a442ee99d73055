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
from .gemm import PackedMatrix, RuntimeBatch, as_packed, is_runtime_batch

Activation = Union[None, str, Tuple[float, float]]


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``
    with ``multiplier`` in [2**30, 2**31) (0 for 0.0). ``shift > 0`` is a left shift.
    """
    return _qgemm.quantize_multiplier(float(real))  # the output stage's own (output_stage.cpp)


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


def _activation_scale(a_scale: Any, rows_shape: Tuple[int, ...]) -> Tuple[np.float32, Optional[np.ndarray]]:
    """(a_scale, None) per tensor, or (1, float32 scales of the rows) for one per row of A."""
    if _checks.is_scalar(a_scale):
        return _checks.scales(a_scale, None, "a_scale")[0], None
    return np.float32(1), _checks.row_scales(a_scale, rows_shape, "a_scale")


def _scale_product(sa: np.float32, sa_rows: Optional[np.ndarray], b_scale: Any, n: int) -> np.ndarray:
    """float32(a_scale * b_scale) per column; b_scale alone with per-row a_scale
    (the epilogue then forms the product element by element)."""
    sb = _per_column(b_scale, n, "b_scale")
    return sb.astype(np.float32) if sa_rows is not None else (np.float32(sa) * sb).astype(np.float32)


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


_F32_TINY = np.finfo(np.float32).tiny  # the smallest normal float32
_F32_MAX = np.finfo(np.float32).max


def _normal(v: np.ndarray, what: str) -> np.ndarray:
    """v (float32), refused unless every value is finite, positive and normal:
    past float32's range a multiplier becomes inf or 0 (or loses its precision)
    and the output stage would silently give every result the same code."""
    # min and max: two reductions (small calls are microseconds); NaN fails both comparisons.
    if v.size and not (v.min() >= _F32_TINY and v.max() <= _F32_MAX):
        bad = v[~(np.isfinite(v) & (v >= _F32_TINY))].reshape(-1)[0]
        raise ValueError(f"{what} = {bad!r} in float32: it must be finite and normal "
                         f"({_F32_TINY:.3g} to {_F32_MAX:.3g}); the scales are out of proportion")
    return v


def _finite_bias(v: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} is not finite in float32 (NaN, infinity, or too large for the scales)")
    return v


def _stage(n: int, ab_scale: np.ndarray, y_scale: Any, y_zero_point: Any, bias: Any,
           activation: Activation, requant: str, out_name: str,
           row_scale: Optional[np.ndarray] = None) -> dict:
    """The keyword arguments of the native output stage for n columns.

    With per-row activation scales (``row_scale``), ``ab_scale`` is b_scale
    alone: the epilogue forms a_scale[i] * b_scale[j] (and divides by y_scale)
    element by element, in the same float32 steps as the per-tensor case.
    """
    if requant not in ("float", "fixed_point"):
        raise ValueError(f"requant must be 'float' or 'fixed_point', got {requant!r}")
    kw: dict = {}
    b = None if bias is None else np.asarray(bias)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != n:
            raise ValueError(f"bias must be 1-D with one value per output column ({n}), got shape {b.shape}")
        if b.dtype.kind not in "iuf" or b.dtype == np.bool_:
            raise TypeError(f"bias must be int32 (accumulator units) or float32 (real units), got {b.dtype}")
    if row_scale is not None:
        if requant == "fixed_point" and out_name != "float32":
            raise ValueError("requant='fixed_point' takes a per-tensor a_scale (TFLite semantics); per-row "
                             "a_scale needs requant='float' or out_dtype='float32'")
        _check_products(row_scale, ab_scale, None if out_name == "float32" else y_scale)
        kw["row_scale"] = row_scale
    else:
        _normal(ab_scale, "a_scale * b_scale")
    if out_name == "float32":
        kw["kind"] = _qgemm.OutputKind.float32
        kw["scale"] = ab_scale
        if b is not None:
            if b.dtype.kind == "f":
                kw["offset"] = _finite_bias(b.astype(np.float32), "bias")
            else:
                kw["bias"] = _int32_bias(b)
        kw["fmin"], kw["fmax"] = _activation_bounds(activation, None, 0, 0, 0, quantized=False)
        return kw
    ys = _checks.scales(y_scale, None, "y_scale")[0]
    zp = _checks.zero_point_scalar(y_zero_point, out_name, "y_zero_point")
    lo, hi = _checks.QRANGE[out_name]
    kw["zero_point"] = zp
    kw["qmin"], kw["qmax"] = _activation_bounds(activation, ys, zp, lo, hi, quantized=True)
    if requant == "float" and row_scale is not None:
        kw["kind"] = _qgemm.OutputKind.requantize_float
        kw["scale"], kw["y_scale"] = ab_scale, ys  # divided per element: see kernels.h
        if b is not None:
            if b.dtype.kind == "f":
                kw["offset"] = _finite_bias(b.astype(np.float32), "bias")
            else:
                kw["bias"] = _int32_bias(b)
    elif requant == "float":
        kw["kind"] = _qgemm.OutputKind.requantize_float
        with np.errstate(all="ignore"):  # overflow is refused just below
            kw["scale"] = _normal((ab_scale / ys).astype(np.float32), "a_scale * b_scale / y_scale")
            if b is not None and b.dtype.kind == "f":
                kw["offset"] = _finite_bias((b.astype(np.float32) / ab_scale).astype(np.float32),
                                            "bias / (a_scale * b_scale)")
        if b is not None and b.dtype.kind != "f":
            kw["bias"] = _int32_bias(b)
    else:
        kw["kind"] = _qgemm.OutputKind.requantize_fixed_point
        if b is not None:
            if b.dtype.kind == "f":
                raise TypeError("requant='fixed_point' takes an int32 bias (in units of a_scale * b_scale)")
            kw["bias"] = _int32_bias(b)
        real = ab_scale.astype(np.float64) / np.float64(ys)
        with np.errstate(all="ignore"):
            _normal(real.astype(np.float32), "a_scale * b_scale / y_scale")
        kw["mult"], kw["shift"] = _fixed_point(real)
    return kw


def _check_products(row_scale: np.ndarray, col_scale: np.ndarray, y_scale: Optional[float]) -> None:
    """Per-row x per-column scales (and their ratio to y_scale) must stay finite and normal in float32."""
    if row_scale.size == 0 or col_scale.size == 0:
        return
    tiny = np.finfo(np.float32).tiny
    with np.errstate(all="ignore"):
        lo = np.float32(row_scale.min()) * np.float32(col_scale.min())
        hi = np.float32(row_scale.max()) * np.float32(col_scale.max())
        ok = lo >= tiny and np.isfinite(hi)
        if ok and y_scale is not None:
            ys = np.float32(y_scale)
            ok = lo / ys >= tiny and np.isfinite(hi / ys)
    if not ok:
        raise ValueError("a_scale * b_scale (and its ratio to y_scale) must stay within float32's "
                         "finite normal range for every row and column")


def _fixed_point(real: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-column Q31 multipliers and shifts (output_stage.cpp)."""
    return _qgemm.quantize_multipliers(np.asarray(real, np.float64).reshape(-1))


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
    packed = as_packed(b, b_zero_point)
    k, n = packed.shape
    out_name = _output_dtype(out_dtype, a_name)
    kw = _stage(n, _scale_product(sa, sa_rows, b_scale, n), y_scale, y_zero_point, bias, activation, requant,
                out_name, sa_rows)
    if za_rows is not None:
        kw["za_rows"] = za_rows

    a3 = av[None] if av.ndim == 2 else av.reshape((math.prod(av.shape[:-2]),) + av.shape[-2:])  # -1 fails on K = 0
    if a3.shape[2] != k:
        raise ValueError(f"a and b disagree on K: a has shape {av.shape}, b has K={k}")
    shape = av.shape[:-1] + (n,)
    rows = a3.shape[0] * a3.shape[1]
    c = _out.buffer(out, shape, np.dtype(out_name), a3, *kw.values())  # per-row parameters too
    if rows and n:
        _qgemm.gemm(a3, za, packed._packed, packed._zero_point, c.reshape(rows, n), **kw)
    return _out.result(out, c)


def _qlinear_runtime_batch(av, za, za_rows, sa, sa_rows, b, b_scale, b_zero_point, y_scale, y_zero_point,
                           bias, activation, requant, out_dtype, out):
    """qlinear_matmul with a plain B of batch dimensions (see RuntimeBatch)."""
    rb = RuntimeBatch(av, _checks.quantized_array(b, "b"))
    out_name = _output_dtype(out_dtype, _checks.qname(av))
    kw = _stage(rb.n, _scale_product(sa, sa_rows, b_scale, rb.n), y_scale, y_zero_point, bias, activation,
                requant, out_name, rb.per_row(sa_rows))
    if za_rows is not None:
        kw["za_rows"] = rb.per_row(za_rows)
    c = _out.buffer(out, rb.shape(), np.dtype(out_name), rb.a, rb.b, *kw.values())
    if rb.rows and rb.n:
        _qgemm.gemm(rb.a, za, rb.b, rb.column_zero_points(b_zero_point), c.reshape(rb.rows, rb.n), **kw)
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
        kw = _stage(n, _scale_product(sa, sa_rows, b_scale, n), y_scale, zero_point, bias, None, requant,
                    name, sa_rows)
    else:
        kw = _plain_multiplier_stage(n, accv.shape[:-1], multiplier, zero_point, bias, requant, name)
    if clamp is not None:
        lo, hi = _checks.QRANGE[name]
        try:
            clo, chi = (int(v) for v in clamp)
        except (TypeError, ValueError):
            raise ValueError(f"clamp must be (lo, hi) integers, got {clamp!r}") from None
        if not lo <= clo <= chi <= hi:
            raise ValueError(f"clamp must satisfy {lo} <= lo <= hi <= {hi} for {name}, got {clamp!r}")
        kw["qmin"], kw["qmax"] = max(kw["qmin"], clo), min(kw["qmax"], chi)
    rows = math.prod(accv.shape[:-1])
    a2 = accv.reshape(rows, n)
    # The native stage reads rows at a non-negative stride of whole int32s.
    if a2.size and (a2.strides[1] != 4 or a2.strides[0] < 0 or a2.strides[0] % 4):
        a2 = np.ascontiguousarray(a2)
    c = _out.buffer(out, accv.shape, np.dtype(name), a2, *kw.values())
    if rows and n:
        _qgemm.requantize(a2, c.reshape(rows, n), **kw)
    return _out.result(out, c)


def _plain_multiplier_stage(n: int, rows_shape: Tuple[int, ...], multiplier: Any, zero_point: Any, bias: Any,
                            requant: str, name: str) -> dict:
    """The native output stage's arguments for requantize's plain multiplier."""
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
    m64 = np.broadcast_to(mult64, (n,)) if not per_row else np.ones(n)
    with np.errstate(all="ignore"):
        m32 = _normal(mult64.astype(np.float32), "multiplier")
    lo, hi = _checks.QRANGE[name]
    kw: dict = {"zero_point": _checks.zero_point_scalar(zero_point, name, "zero_point"), "qmin": lo, "qmax": hi}
    if per_row:  # row_scale * 1.0 / 1.0 in the epilogue: the row's float32 multiplier exactly
        kw["row_scale"], m32 = m32, np.ones(n, np.float32)
    else:
        m32 = np.broadcast_to(m32, (n,))
    if requant == "float":
        kw["kind"] = _qgemm.OutputKind.requantize_float
        kw["scale"] = m32
    else:
        kw["kind"] = _qgemm.OutputKind.requantize_fixed_point
        kw["mult"], kw["shift"] = _fixed_point(m64)
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind not in "iu":
            raise TypeError(f"bias must be an integer (int32) array, got dtype {b.dtype}")
        if b.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {b.shape}")
        kw["bias"] = _int32_bias(b)
    return kw
