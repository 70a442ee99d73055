"""Exact int8/uint8 matrix multiplication with zero points, and packed weights."""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _checks, _out, _packed_file, _qgemm

ZeroPoint = Union[int, np.ndarray]


class PackedMatrix:
    """A right-hand side ``B`` (K, N) re-laid out once for the GEMM microkernel,
    with its column sums, reusable across :func:`matmul` calls.

    The packed data takes one byte per element (plus padding to whole tiles)
    and 4 bytes per column. It pickles (as the original matrix; it is packed
    again on load, for whatever CPU loads it). :meth:`save` writes it as it is
    to a file that :func:`qgemm.load_packed` memory-maps.

    On CPUs whose exact kernel is the AVX2 one (no VNNI), a call whose inputs
    provably cannot saturate int16 pair sums (activations within 7 bits, or B
    within [-64, 64]) runs a faster kernel with its own layout of B: that
    second copy is made on the first such call, kept with the matrix and
    counted in :attr:`nbytes`.
    """

    __slots__ = ("_packed", "_shape", "_zero_point", "_zp_scalar", "_dtype")

    def __init__(self, b: Any, zero_point: ZeroPoint = 0):
        a = _checks.quantized_array(b, "b")
        if a.ndim != 2:
            raise ValueError(f"b must be 2-D (K, N), got shape {a.shape}")
        self._dtype = _checks.qname(a)
        self._set_zero_point(zero_point, a.shape[1])
        self._packed = _qgemm.pack(a)
        self._shape = (int(a.shape[0]), int(a.shape[1]))

    def _set_zero_point(self, zero_point: ZeroPoint, n: int) -> None:
        # isinstance first: np.ndim costs close to a microsecond, a small matmul's budget.
        self._zp_scalar = isinstance(zero_point, (int, np.integer)) or np.ndim(zero_point) == 0
        if self._zp_scalar:
            zp = _checks.zero_point_scalar(zero_point, self._dtype, "zero_point")
            self._zero_point = np.array([zp], np.int32)
        else:
            self._zero_point = _checks.zero_points(zero_point, n, self._dtype, "zero_point")

    @classmethod
    def _from_native(cls, packed: Any, dtype: str, zero_point: ZeroPoint) -> "PackedMatrix":
        """Wraps a native packed B (one read from a file) without packing again."""
        self = cls.__new__(cls)
        self._dtype = dtype
        self._set_zero_point(zero_point, packed.n)
        self._packed = packed
        self._shape = (int(packed.k), int(packed.n))
        return self

    @property
    def shape(self) -> Tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._dtype)

    @property
    def zero_point(self) -> ZeroPoint:
        """An int (per tensor) or an int32 array with one value per column."""
        return int(self._zero_point[0]) if self._zp_scalar else self._zero_point.copy()

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed data and the per-column sums (both layouts, once
        the second is made)."""
        return int(self._packed.nbytes)

    def unpack(self) -> np.ndarray:
        """The original (K, N) matrix."""
        return self._packed.unpack()

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the packed matrix to ``path`` as it is, in this CPU's layout (one
        file, replaced atomically): :func:`load_packed` maps it back without
        packing again."""
        write_packed_file(path, self)

    def __reduce__(self):
        return (PackedMatrix, (self.unpack(), self.zero_point))

    def __repr__(self) -> str:
        return f"PackedMatrix(shape={self.shape}, dtype={self._dtype}, zero_point={self.zero_point!r})"


def pack(b: Any, zero_point: ZeroPoint = 0) -> PackedMatrix:
    """Packs ``b`` (K, N), int8 or uint8, once for repeated :func:`matmul` calls.

    ``zero_point``: an int, or one per column (N,).
    """
    return PackedMatrix(b, zero_point)


def load_packed(path: Union[str, "os.PathLike[str]"], mmap: bool = True, verify: bool = False,
                repack: bool = True) -> PackedMatrix:
    """A :class:`PackedMatrix` from a file :meth:`PackedMatrix.save` wrote.

    ``mmap=True``: when the file holds this CPU's layout (the same GEMM kernel,
    tile and stored values: a file saved on a CPU of the same ISA level), its
    packed panels are memory-mapped, not copied: loading costs microseconds
    and no memory until a matmul reads the pages, which the OS then shares
    among all processes that map the same file. The mapping lives as long as
    the matrix. The header, zero points and column sums are checked
    (checksum, sizes, layout), the panels are not (that would read them all);
    ``verify=True`` checks their checksum too. The file must not be changed
    while mapped (:meth:`PackedMatrix.save` replaces a file, it never writes
    into it, so saving anew is safe).

    ``mmap=False``: the panels are read into memory and their checksum checked
    (reading and checking cost about as much as a pack).

    A file of another layout (saved on a CPU with another kernel, e.g. AVX2 vs
    AVX-512 VNNI) is unpacked from its stored layout, checked (checksum of
    the panels, column sums) and packed for this CPU, with nothing left
    mapped: an unpack and a pack, tens of milliseconds for 16 MiB.
    ``repack=False`` refuses it (ValueError) instead.

    A corrupt, truncated, or unreadable file (another format version, an
    unknown stored layout) raises ValueError saying what is wrong.
    """
    return read_packed_file(path, mmap=mmap, verify=verify, repack=repack)[0]


# What qgemm's own modules use to hand a PackedMatrix to the core or a file,
# so that none of them depends on its attributes.

def native_operand(b: PackedMatrix) -> Tuple["_qgemm.PackedB", np.ndarray]:
    """The core's operand for a packed B: the native packed matrix and its
    zero points (int32: one, or one per column)."""
    return b._packed, b._zero_point


def write_packed_file(path: Union[str, "os.PathLike[str]"], b: PackedMatrix, extra: bytes = b"",
                      extra_kind: str = "") -> None:
    """Writes b to one file (see PackedMatrix.save), with an optional extra payload."""
    _packed_file.write(path, b._packed, b._dtype, b.zero_point, extra=extra, extra_kind=extra_kind)


def read_packed_file(path: Union[str, "os.PathLike[str]"], mmap: bool, verify: bool,
                     repack: bool) -> Tuple[PackedMatrix, "_packed_file.Loaded"]:
    """The PackedMatrix in a file (see load_packed), and what else the file holds."""
    f = _packed_file.read(path, mmap=mmap, verify=verify, repack=repack)
    return PackedMatrix._from_native(f.packed, f.dtype, f.zero_point), f


def b_operand(b: Union[Any, PackedMatrix], b_zero_point: Optional[ZeroPoint]
              ) -> Tuple[Union["_qgemm.PackedB", np.ndarray], np.ndarray, Tuple[int, int]]:
    """The core's operand for a 2-D B, its zero points (int32: one, or one per
    column) and its shape (K, N). A PackedMatrix gives its packed data (a
    ``b_zero_point`` given too must equal the one it was packed with); a plain
    B is passed as it is: the core packs it inside the call."""
    if isinstance(b, PackedMatrix):
        if b_zero_point is not None:
            n, packed_zp = b.shape[1], b._zero_point
            if isinstance(b_zero_point, (int, np.integer)) and packed_zp.size == 1:  # no NumPy calls: ~5 us
                same = b_zero_point == packed_zp[0]
            else:
                given = np.asarray(b_zero_point)
                same = given.ndim <= 1 and given.size in (1, n) and np.array_equal(
                    np.broadcast_to(given, (n,)), np.broadcast_to(packed_zp, (n,)))
            if not same:
                raise ValueError(f"b_zero_point={b_zero_point!r} differs from the zero point b was packed "
                                 f"with ({b.zero_point!r}); pass None or the same value")
        return (*native_operand(b), b.shape)
    bv = _checks.quantized_array(b, "b")
    if bv.ndim != 2:
        raise ValueError(f"b must be 2-D (K, N), got shape {bv.shape}")
    return bv, column_zero_points(b_zero_point, bv), bv.shape


def column_zero_points(b_zero_point: Optional[ZeroPoint], bv: np.ndarray) -> np.ndarray:
    """A plain B's zero points for the core (int32: one, or one per column of
    ``bv``, (..., K, N)), checked against its dtype; None is 0."""
    if b_zero_point is None:
        return _ZERO
    name = _checks.qname(bv)
    if isinstance(b_zero_point, (int, np.integer)) or _checks.is_scalar(b_zero_point):
        return np.array([_checks.zero_point_scalar(b_zero_point, name, "b_zero_point")], np.int32)
    return _checks.zero_points(b_zero_point, bv.shape[-1], name, "b_zero_point")


_ZERO = np.zeros(1, np.int32)
_ZERO.flags.writeable = False
_INT32 = np.dtype(np.int32)


class RuntimeBatch:
    """A product whose B has batch dimensions (..., K, N), given at run time:
    A and B broadcast over their batch dimensions as ``np.matmul`` does (views
    with one leading shape, zero strides where an operand repeats). The
    native call packs each item's B inside the call."""

    # Slots and few shape slices: attention's heads are small, so this
    # per-call set-up counts (measured 1.5 us before, of a ~50 us call).
    __slots__ = ("a_vector", "a_rows_shape", "m", "n", "batch", "a", "b", "rows")

    def __init__(self, av: np.ndarray, bv: np.ndarray):
        a_given = a_shape = av.shape  # a_given for the messages
        b_shape = bv.shape
        self.a_vector = len(a_shape) == 1
        if self.a_vector:
            av, a_shape = av[None, :], (1,) + a_shape
        if a_shape[-1] != b_shape[-2]:
            raise ValueError(f"a and b disagree on K: a has shape {a_given}, b has shape {b_shape}")
        self.a_rows_shape = a_shape[:-1]  # (1,) for a 1-D a
        self.m, self.n = a_shape[-2], b_shape[-1]
        a_batch, b_batch = a_shape[:-2], b_shape[:-2]
        if a_batch == b_batch:  # the common case (attention): nothing to broadcast
            self.batch, self.a, self.b = b_batch, av, bv
        else:
            try:
                self.batch = np.broadcast_shapes(a_batch, b_batch)
            except ValueError:
                raise ValueError(f"a and b have batch dimensions that do not broadcast: a has shape {a_given}, "
                                 f"b has shape {b_shape}") from None
            self.a = np.broadcast_to(av, self.batch + a_shape[-2:])
            self.b = np.broadcast_to(bv, self.batch + b_shape[-2:])
        self.rows = math.prod(self.batch) * self.m

    def shape(self) -> Tuple[int, ...]:
        """The result's shape (without M for a 1-D a, as np.matmul)."""
        return self.batch + ((self.m,) if not self.a_vector else ()) + (self.n,)

    def per_row(self, values: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Per-row parameters given for a's rows (``a.shape[:-1]``), one per row
        of the broadcast product."""
        if values is None:
            return None
        v = values.reshape(self.a_rows_shape)
        return np.ascontiguousarray(np.broadcast_to(v, self.batch + (self.m,))).reshape(-1)

    def column_zero_points(self, b_zero_point: Optional[ZeroPoint]) -> np.ndarray:
        return column_zero_points(b_zero_point, self.b)


def is_runtime_batch(b: Any) -> bool:
    """True for a plain B with batch dimensions (see RuntimeBatch)."""
    return not isinstance(b, PackedMatrix) and np.ndim(b) > 2


def matmul(a: Any, b: Union[Any, PackedMatrix], a_zero_point: ZeroPoint = 0,
           b_zero_point: Optional[ZeroPoint] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``C = (A - a_zero_point) @ (B - b_zero_point)`` in int32, exactly.

    ``a``: (..., M, K) or (K,), int8 or uint8, any strides. ``b``: (K, N) or
    (K,), int8 or uint8, or a :class:`PackedMatrix` (which carries its own
    zero point: ``b_zero_point`` may then be None or that same value), or
    (..., K, N) with batch dimensions of its own (both operands at run time,
    as attention's ``Q @ K^T`` and ``P @ V``). Batch dimensions broadcast as in
    ``np.matmul`` (and ONNX ``MatMulInteger``). All four dtype pairs.
    ``a_zero_point``: an int, or one per row of ``a`` (an array of shape
    ``a.shape[:-1]``, batch dimensions included: per-token activations).
    ``b_zero_point``: an int, or one per column (N,); both broadcast over the
    batch.

    Exactness: every product and sum is taken modulo 2**32, so the result is
    exact whenever the true result fits int32. That is guaranteed for any
    inputs and zero points when K <= 33025 (|(a - za)(b - zb)| <= 255 * 255)
    and, for int8 x int8 with zero zero points, when K <= 131071 (128 * 128
    per term). Past that, a result that does not fit int32 wraps modulo 2**32
    (as NumPy's int32 arithmetic does); it never saturates.
    """
    av = _checks.quantized_array(a, "a")
    if av.ndim == 0:
        raise ValueError("a must have at least 1 dimension, got a scalar")
    if isinstance(a_zero_point, (int, np.integer)) or _checks.is_scalar(a_zero_point):
        za, za_rows = _checks.zero_point_scalar(a_zero_point, _checks.qname(av), "a_zero_point"), None
    else:
        za, za_rows = 0, _checks.row_zero_points(a_zero_point, av.shape[:-1], _checks.qname(av), "a_zero_point")

    b_vector = False
    if not isinstance(b, PackedMatrix):
        b = _checks.quantized_array(b, "b")
        b_vector = b.ndim == 1
        if b.ndim > 2:
            rb = RuntimeBatch(av, b)
            za_all = rb.per_row(za_rows)
            c = _out.buffer(out, rb.shape(), _INT32, rb.a, rb.b, za_all)
            if rb.rows and rb.n:
                zb = rb.column_zero_points(b_zero_point)
                if za_all is None:  # the short call: attention's heads are small, argument conversion counts
                    _qgemm.matmul(rb.a, za, rb.b, zb, c.reshape(rb.rows, rb.n))
                else:
                    _qgemm.gemm(rb.a, 0, rb.b, zb, c.reshape(rb.rows, rb.n), za_rows=za_all)
            return _out.result(out, c)
    bop, zb, (k, n) = b_operand(b[:, None] if b_vector else b, b_zero_point)

    a_vector = av.ndim == 1
    if a_vector:
        a3 = av[None, None, :]
    elif av.ndim == 2:
        a3 = av[None]
    else:  # (..., M, K) -> (batch, M, K); a copy only when the batch strides do not merge
        a3 = av.reshape((int(np.prod(av.shape[:-2], dtype=np.int64)),) + av.shape[-2:])
    if a3.shape[2] != k:
        raise ValueError(f"a and b disagree on K: a has shape {av.shape}, b has K={k}")
    m = a3.shape[1]
    shape = av.shape[:-2] + ((m,) if not a_vector else ()) + ((n,) if not b_vector else ())
    rows = a3.shape[0] * m
    c = _out.buffer(out, shape, _INT32, a3, za_rows, bop)
    if rows and n:
        if za_rows is None:
            _qgemm.matmul(a3, za, bop, zb, c.reshape(rows, n))
        else:
            _qgemm.gemm(a3, 0, bop, zb, c.reshape(rows, n), za_rows=za_rows)
    return _out.result(out, c)
