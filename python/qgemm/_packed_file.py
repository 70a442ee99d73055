"""The file of a packed matrix: written by ``PackedMatrix.save`` and ``nn.Linear.save``,
read by ``load_packed`` and ``nn.Linear.load``.

One file, little-endian; the panels start on a page so that they can be
memory-mapped as they are::

    offset 0    fixed header, 64 bytes
                  magic          8 bytes  b"\\x89QGEMMPB"
                  version        u32      FORMAT_VERSION
                  header_crc     u32      CRC-32 of bytes [0, panels_offset), this field taken as 0
                  panels_offset  u64      where the panels start, a multiple of 4096
                  panels_nbytes  u64      the file ends at panels_offset + panels_nbytes
                  panels_crc     u32      CRC-32 of the panel bytes
                  meta_nbytes    u32
                  extra_nbytes   u64
                  zero_points    u32      how many (1 or N)
                  colsums        u32      how many (ceil(N / nr) * nr)
                  reserved       8 zero bytes
    offset 64   meta, JSON: the layout tag {kernel, nr, kr, stored} (the GEMM kernel
                the panels were packed for, its tile width and K grouping, and how
                values are stored), shape [K, N], dtype, zero_point_per_column,
                max_abs (the largest |stored value|), extra (what the extra bytes are)
    then        zero points, int32: 1 or N         (at 64 + meta_nbytes rounded up to 8)
                column sums of stored values, int32: ceil(N / nr) * nr
                extra bytes (a Linear's other state, as an .npz), zeros to panels_offset
    panels      ceil(N / nr) panels of ceil(K / kr) * kr * nr int8 values (see pack.h)

Checksums detect damage (CRC-32), not tampering: a file is trusted as much as
the place it comes from.
"""

from __future__ import annotations

import contextlib
import json
import mmap as _mmap
import os
import struct
import threading
import zlib
from typing import Any, NamedTuple, Union

import numpy as np

from . import _checks, _qgemm

MAGIC = b"\x89QGEMMPB"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sIIQQIIQII8x")  # the fixed header, 64 bytes
_PAGE = 4096
_MAX_NR, _MAX_KR = 1024, 64  # beyond any kernel's tile: larger values are corrupt
_MAX_DIM = 1 << 40
_META_KEYS = {"layout", "shape", "dtype", "zero_point_per_column", "max_abs", "extra"}

PathLike = Union[str, "os.PathLike[str]"]


class Loaded(NamedTuple):
    packed: Any          # the native packed B, in this CPU's layout
    dtype: str           # 'int8' or 'uint8'
    zero_point: Any      # an int, or an int32 array of N
    extra_kind: str      # what `extra` is ('' for a plain packed matrix)
    extra: bytes


def _round_up(x: int, to: int) -> int:
    return (x + to - 1) // to * to


def _sections(meta_nbytes: int, zp_count: int, colsum_count: int, extra_nbytes: int):
    """Offsets of the zero points, column sums and extra bytes, and where the panels start."""
    zp_at = _round_up(_FIXED.size + meta_nbytes, 8)
    colsum_at = zp_at + 4 * zp_count
    extra_at = colsum_at + 4 * colsum_count
    return zp_at, colsum_at, extra_at, _round_up(extra_at + extra_nbytes, _PAGE)


def write(path: PathLike, packed: Any, dtype: str, zero_point: Any, extra: bytes = b"",
          extra_kind: str = "") -> None:
    """Writes a native packed B (in this CPU's layout) with its parameters. The
    file is written beside ``path`` and renamed over it: a process that has the
    old file mapped keeps reading the old file."""
    layout = dict(_qgemm.packed_layout())
    if (packed.nr, packed.kr) != (layout["nr"], layout["kr"]):
        raise ValueError("the packed matrix is not in this CPU's layout")  # not reachable through the API
    k, n = int(packed.k), int(packed.n)
    per_column = np.ndim(zero_point) == 1
    zp = np.atleast_1d(np.asarray(zero_point, np.int32)).astype("<i4")
    colsum = np.asarray(packed.colsum).astype("<i4")
    panels = packed.panels()
    meta = json.dumps({"layout": layout, "shape": [k, n], "dtype": dtype,
                       "zero_point_per_column": bool(per_column), "max_abs": int(packed.max_abs),
                       "extra": extra_kind}, sort_keys=True).encode()
    zp_at, colsum_at, extra_at, panels_at = _sections(len(meta), zp.size, colsum.size, len(extra))
    head = bytearray(panels_at)
    _FIXED.pack_into(head, 0, MAGIC, FORMAT_VERSION, 0, panels_at, panels.nbytes, zlib.crc32(panels),
                     len(meta), len(extra), zp.size, colsum.size)
    head[_FIXED.size:_FIXED.size + len(meta)] = meta
    head[zp_at:colsum_at] = zp.tobytes()
    head[colsum_at:extra_at] = colsum.tobytes()
    head[extra_at:extra_at + len(extra)] = extra
    struct.pack_into("<I", head, 12, zlib.crc32(head))

    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    f = open(tmp, "xb")
    try:
        with f:
            f.write(head)
            f.write(memoryview(panels).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _error(path: str, why: str) -> ValueError:
    return ValueError(f"cannot load packed weights from {path!r}: {why}")


def _int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _parse_meta(path: str, raw: bytes) -> dict:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _error(path, "the header's description is not valid JSON") from None
    layout = meta.get("layout") if isinstance(meta, dict) else None
    shape = meta.get("shape") if isinstance(meta, dict) else None
    ok = (isinstance(meta, dict) and set(meta) == _META_KEYS
          and isinstance(layout, dict) and set(layout) == {"kernel", "nr", "kr", "stored"}
          and isinstance(layout["kernel"], str) and isinstance(layout["stored"], str)
          and _int(layout["nr"], 1, _MAX_NR) and _int(layout["kr"], 1, _MAX_KR)
          and isinstance(shape, list) and len(shape) == 2 and all(_int(d, 0, _MAX_DIM) for d in shape)
          and meta["dtype"] in _checks.QDTYPES and type(meta["zero_point_per_column"]) is bool
          and _int(meta["max_abs"], 0, 128) and isinstance(meta["extra"], str))
    if not ok:
        raise _error(path, f"the header's description is malformed: {meta!r}")
    return meta


def _read_at(fd: int, offset: int, nbytes: int, path: str) -> bytes:
    """nbytes from offset (one system call for a header: files are opened unbuffered)."""
    os.lseek(fd, offset, os.SEEK_SET)
    parts, left = [], nbytes
    while left:
        part = os.read(fd, left)
        if not part:
            raise _error(path, "the file ended early (truncated while reading)")
        parts.append(part)
        left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Header(NamedTuple):
    meta: dict
    panels_at: int
    panels_nbytes: int
    panels_crc: int
    zero_point: Any     # an int, or an int32 array of N
    colsum: np.ndarray  # int32, ceil(N / nr) * nr
    extra: bytes


def _read_header(fd: int, size: int, path: str) -> _Header:
    """The header, checked: magic, version, sizes, checksum, then the contents."""
    first = _read_at(fd, 0, min(size, _PAGE), path)  # the whole header, unless the extra bytes are large
    if first[:len(MAGIC)] != MAGIC[:len(first)]:
        raise _error(path, "not a qgemm packed-weights file (wrong magic bytes)")
    if len(first) < _FIXED.size:
        raise _error(path, f"truncated: {size} bytes, the fixed header alone has {_FIXED.size}")
    (_, version, header_crc, panels_at, panels_nbytes, panels_crc, meta_nbytes, extra_nbytes,
     zp_stored, colsum_stored) = _FIXED.unpack_from(first)
    if version != FORMAT_VERSION:
        raise _error(path, f"format version {version}; this qgemm reads version {FORMAT_VERSION}")
    if panels_at % _PAGE or not _FIXED.size + meta_nbytes + extra_nbytes <= panels_at <= size:
        raise _error(path, f"inconsistent sizes in the header (panels at {panels_at}, "
                           f"meta {meta_nbytes} and extra {extra_nbytes} bytes, file {size} bytes)")
    if size != panels_at + panels_nbytes:
        why = "truncated" if size < panels_at + panels_nbytes else "has trailing bytes"
        raise _error(path, f"{why}: the header says {panels_at + panels_nbytes} bytes, the file has {size}")
    head = bytearray(first[:panels_at])
    if panels_at > len(first):
        head += _read_at(fd, len(first), panels_at - len(first), path)
    struct.pack_into("<I", head, 12, 0)
    if zlib.crc32(head) != header_crc:
        raise _error(path, "the header checksum does not match (the file is corrupt)")

    meta = _parse_meta(path, bytes(head[_FIXED.size:_FIXED.size + meta_nbytes]))
    k, n = meta["shape"]
    nr, kr = meta["layout"]["nr"], meta["layout"]["kr"]
    count = -(-n // nr)
    zp_count = n if meta["zero_point_per_column"] else 1
    zp_at, colsum_at, extra_at, expected_at = _sections(meta_nbytes, zp_count, count * nr, extra_nbytes)
    if (expected_at, panels_nbytes, zp_stored, colsum_stored) != (
            panels_at, count * _round_up(k, kr) * nr, zp_count, count * nr):
        raise _error(path, f"inconsistent sizes: shape {k}x{n} in {nr}-column panels of K groups of "
                           f"{kr} needs {zp_count} zero point(s), {count * nr} column sums and "
                           f"{count * _round_up(k, kr) * nr} panel bytes at {expected_at}; the header "
                           f"says {zp_stored}, {colsum_stored} and {panels_nbytes} at {panels_at}")
    lo, hi = _checks.QRANGE[meta["dtype"]]
    if meta["zero_point_per_column"]:
        zero_point: Any = np.frombuffer(head, "<i4", n, zp_at).astype(np.int32)
        in_range = n == 0 or lo <= zero_point.min() and zero_point.max() <= hi
    else:
        zero_point = struct.unpack_from("<i", head, zp_at)[0]
        in_range = lo <= zero_point <= hi
    if not in_range:
        raise _error(path, f"a zero point lies outside {meta['dtype']}'s range")
    colsum = np.frombuffer(head, "<i4", count * nr, colsum_at).astype(np.int32)
    return _Header(meta, panels_at, panels_nbytes, panels_crc, zero_point, colsum,
                   bytes(head[extra_at:extra_at + extra_nbytes]))


def _unpack(panels: np.ndarray, k: int, n: int, nr: int, kr: int, dtype: str) -> np.ndarray:
    """B (K, N) from panels in any tile's layout [N / nr][K / kr][nr][kr] (pack.h),
    in one strided copy."""
    count, groups = -(-n // nr), -(-k // kr)
    b = panels.reshape(count, groups, nr, kr).transpose(1, 3, 0, 2)  # [K / kr][kr][N / nr][nr]
    b = np.ascontiguousarray(b).reshape(groups * kr, count * nr)[:k, :n]
    return b.view(np.uint8) ^ np.uint8(0x80) if dtype == "uint8" else b


def _aligned_empty(nbytes: int) -> np.ndarray:
    """An int8 buffer whose data is 64-byte aligned, as packed panels must be."""
    raw = np.empty(nbytes + 64, np.int8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes]


def read(path: PathLike, *, mmap: bool, verify: bool, repack: bool) -> Loaded:
    """Reads and checks a file (see ``qgemm.load_packed`` for what each flag does)."""
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        h = _read_header(fd, size, path)
        layout, dtype = h.meta["layout"], h.meta["dtype"]
        k, n = h.meta["shape"]
        ours = _qgemm.packed_layout()
        if layout["stored"] != ours["stored"]:
            raise _error(path, f"values stored as {layout['stored']!r}, which this qgemm cannot read "
                               f"(it stores {ours['stored']!r})")
        native = layout == ours
        if not native and not repack:
            raise _error(path, f"packed for {layout['kernel']} (nr={layout['nr']}, kr={layout['kr']}); this "
                               f"CPU runs {ours['kernel']} (nr={ours['nr']}, kr={ours['kr']}), and repack=False")
        if h.panels_nbytes == 0:  # K or N is 0: nothing to map
            packed = _qgemm.pack(np.zeros((k, n), _checks.QDTYPES[dtype]))
            return Loaded(packed, dtype, h.zero_point, h.meta["extra"], h.extra)
        if mmap:
            mm = _mmap.mmap(fd, 0, access=_mmap.ACCESS_READ)
            if len(mm) != size:
                raise _error(path, "the file changed while being read")
            panels = np.frombuffer(mm, np.int8, h.panels_nbytes, h.panels_at)
        else:
            panels = _aligned_empty(h.panels_nbytes)
            os.lseek(fd, h.panels_at, os.SEEK_SET)
            with open(fd, "rb", buffering=0, closefd=False) as f:
                got = f.readinto(panels)
                while got < panels.size:  # a short read is rare, but allowed
                    more = f.readinto(memoryview(panels)[got:])
                    if not more:
                        raise _error(path, "the file ended early (truncated while reading)")
                    got += more
    finally:
        os.close(fd)
    mapped = mmap and native
    # A copy (or a repack, which reads every page anyway) is always checked.
    if (verify or not mapped) and zlib.crc32(panels) != h.panels_crc:
        raise _error(path, "the checksum of the packed panels does not match (the file is corrupt)")
    if native:
        packed = _qgemm.packed_from_panels(panels, k, n, layout["nr"], layout["kr"], dtype == "uint8",
                                           h.colsum, h.meta["max_abs"])
    else:
        # Another CPU's layout: unpack it and pack for this CPU. The new column
        # sums and range must agree with the file's.
        packed = _qgemm.pack(_unpack(panels, k, n, layout["nr"], layout["kr"], dtype))
        if not (np.array_equal(np.asarray(packed.colsum)[:n], h.colsum[:n]) and packed.max_abs == h.meta["max_abs"]):
            raise _error(path, "the column sums do not match the panels (the file is corrupt)")
    return Loaded(packed, dtype, h.zero_point, h.meta["extra"], h.extra)
