"""Packed weights in files: PackedMatrix.save / load_packed and nn.Linear.save / load.

Results through a loaded matrix are bit-identical to the original; a file in
this CPU's layout is memory-mapped, another layout is repacked; every damaged,
truncated, foreign-version or unreadable file is a ValueError. Files are also
built here by an independent writer of the documented format, so that files
with valid checksums but wrong contents can be tested.
"""

import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qgemm
from qgemm import _packed_file
from qgemm.nn import _LINEAR_STATE, Linear
from reference import QR, exact_matmul, rand_q

LAYOUT = dict(qgemm._qgemm.packed_layout())
ISAS = qgemm.cpu_info()["available"]


def mapped(path) -> bool:
    """Whether this process maps the file (Linux: /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(os.fspath(path)) for line in f)


linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")


def check_same(p, q, rng, k):
    """matmul and qlinear_matmul (quantized and float out, per-row A) agree bit for bit."""
    assert q.shape == p.shape and q.dtype == p.dtype
    assert np.array_equal(np.asarray(q.zero_point), np.asarray(p.zero_point))
    assert np.array_equal(q.unpack(), p.unpack())
    n = p.shape[1]
    for a_dtype in ("uint8", "int8"):
        a = rand_q(rng, (2, 7, k), a_dtype)
        assert np.array_equal(qgemm.matmul(a, q, 3), qgemm.matmul(a, p, 3))
        za = rng.integers(0, 100, (2, 7))
        assert np.array_equal(qgemm.matmul(a, q, za), qgemm.matmul(a, p, za))
        a7 = (a.view(np.uint8) >> 1).astype(np.uint8)  # 7-bit: the range-proven kernel where there is one
        assert np.array_equal(qgemm.matmul(a7, q, 5), qgemm.matmul(a7, p, 5))
        bs = rng.uniform(0.01, 0.1, n).astype(np.float32)
        for out_dtype in (a_dtype, "float32"):
            args = (a, 0.05, 1, None, bs, None, 0.7, 2)
            y1 = qgemm.qlinear_matmul(args[0], args[1], args[2], q, *args[4:], out_dtype=out_dtype)
            y0 = qgemm.qlinear_matmul(args[0], args[1], args[2], p, *args[4:], out_dtype=out_dtype)
            assert np.array_equal(y1, y0)


# ---- round trips -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 32), (301, 77), (130, 129), (0, 7), (7, 0), (0, 0)])
@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_is_bit_identical(tmp_path, rng, dtype, shape, mmap):
    b = rand_q(rng, shape, dtype)
    for zp in (0, 7, rng.integers(0, 100, shape[1])):
        p = qgemm.pack(b, zp)
        p.save(tmp_path / "w.qpk")
        q = qgemm.load_packed(tmp_path / "w.qpk", mmap=mmap)
        assert type(q.zero_point) is type(p.zero_point)
        check_same(p, q, rng, shape[0])


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 300), n=st.integers(0, 300), dtype=st.sampled_from(["int8", "uint8"]),
       per_column=st.booleans(), mmap=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_round_trip_against_int64_reference(k, n, dtype, per_column, mmap, seed):
    rng = np.random.default_rng(seed)
    b = rand_q(rng, (k, n), dtype)
    lo, hi = QR[dtype]
    zb = rng.integers(lo, hi + 1, n) if per_column else int(rng.integers(lo, hi + 1))
    a = rand_q(rng, (5, k), "uint8")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.qpk")
        qgemm.pack(b, zb).save(path)
        q = qgemm.load_packed(path, mmap=mmap)
        want = exact_matmul(a, b, 9, zb)
        assert np.array_equal(qgemm.matmul(a, q, 9), want)
        del q


def test_extreme_values_round_trip(tmp_path, rng):
    for dtype, values in (("int8", (-128, 127)), ("uint8", (0, 255))):
        b = rng.choice(np.array(values, dtype), (200, 50))
        p = qgemm.pack(b, values[1])
        p.save(tmp_path / "w.qpk")
        check_same(p, qgemm.load_packed(tmp_path / "w.qpk"), rng, 200)


@linux_only
def test_mmap_maps_the_file_and_keeps_it_alive(tmp_path, rng):
    path = tmp_path / "w.qpk"
    b = rand_q(rng, (256, 100), "int8")
    p = qgemm.pack(b)
    p.save(path)
    q = qgemm.load_packed(path)
    assert q._packed.borrowed and mapped(path)
    gc.collect()
    assert mapped(path)  # nothing else holds the mapping: the packed matrix does
    a = rand_q(rng, (5, 256), "uint8")
    expected = qgemm.matmul(a, p)
    os.unlink(path)  # the mapping outlives the name
    assert np.array_equal(qgemm.matmul(a, q), expected)
    del q
    gc.collect()
    assert not any(path.name in line for line in open("/proc/self/maps"))


@linux_only
def test_mmap_false_and_repacks_map_nothing(tmp_path, rng):
    path = tmp_path / "w.qpk"
    qgemm.pack(rand_q(rng, (64, 64), "int8")).save(path)
    q = qgemm.load_packed(path, mmap=False)
    assert not mapped(path)
    assert q._packed.borrowed  # it borrows its own buffer: no second copy
    q2 = qgemm.load_packed(path, verify=True)
    assert mapped(path) and np.array_equal(q2.unpack(), q.unpack())


def test_saving_over_a_mapped_file_leaves_the_mapping_intact(tmp_path, rng):
    path = tmp_path / "w.qpk"
    b1, b2 = rand_q(rng, (100, 40), "int8"), rand_q(rng, (100, 40), "int8")
    qgemm.pack(b1).save(path)
    q1 = qgemm.load_packed(path)
    qgemm.pack(b2).save(path)  # a new file renamed over the old one
    assert np.array_equal(q1.unpack(), b1)
    assert np.array_equal(qgemm.load_packed(path).unpack(), b2)
    assert os.listdir(tmp_path) == ["w.qpk"]  # no temporary left behind


def test_layout_and_file_size(tmp_path, rng):
    path = tmp_path / "w.qpk"
    k, n = 100, 70
    qgemm.pack(rand_q(rng, (k, n), "int8")).save(path)
    head = path.read_bytes()[:4096]
    fields = _packed_file._FIXED.unpack(head[:64])
    assert fields[0] == b"\x89QGEMMPB" and fields[1] == _packed_file.FORMAT_VERSION
    panels_at, panels_nbytes, meta_nbytes = fields[3], fields[4], fields[6]
    meta = json.loads(head[64:64 + meta_nbytes])
    assert meta["layout"] == LAYOUT and meta["shape"] == [k, n] and meta["dtype"] == "int8"
    nr, kr = LAYOUT["nr"], LAYOUT["kr"]
    assert panels_at % 4096 == 0
    assert panels_nbytes == -(-n // nr) * -(-k // kr) * kr * nr
    assert os.path.getsize(path) == panels_at + panels_nbytes


# ---- an independent writer of the format, for files with valid checksums ----------

def reference_panels(b: np.ndarray, nr: int, kr: int) -> np.ndarray:
    """B (K, N) in the panel layout [N / nr][K / kr][nr][kr], stored values (pack.h)."""
    k, n = b.shape
    count, kp = -(-n // nr), -(-k // kr) * kr
    stored = b.view(np.int8) ^ np.int8(-128) if b.dtype == np.uint8 else b
    padded = np.zeros((kp, count * nr), np.int8)
    padded[:k, :n] = stored
    return np.ascontiguousarray(padded.reshape(kp // kr, kr, count, nr).transpose(2, 0, 3, 1)).ravel()


def build_file(b, zero_point=0, nr=None, kr=None, layout=None, version=1, meta_edit=None,
               colsum_edit=None, extra=b"", extra_kind="", panels_crc=None) -> bytes:
    layout = dict(layout or LAYOUT)
    nr, kr = nr or layout["nr"], kr or layout["kr"]
    layout.update(nr=nr, kr=kr)
    k, n = b.shape
    panels = reference_panels(b, nr, kr)
    count = -(-n // nr)
    stored = (b.view(np.int8) ^ np.int8(-128)) if b.dtype == np.uint8 else b
    colsum = np.zeros(count * nr, np.int64)
    colsum[:n] = stored.astype(np.int64).sum(axis=0)
    colsum = colsum.astype("<i4")
    if colsum_edit:
        colsum_edit(colsum)
    zp = np.atleast_1d(np.asarray(zero_point, "<i4"))
    meta = {"layout": layout, "shape": [k, n], "dtype": b.dtype.name,
            "zero_point_per_column": np.ndim(zero_point) == 1,
            "max_abs": int(np.abs(stored.astype(np.int64)).max(initial=0)), "extra": extra_kind}
    if meta_edit:
        meta_edit(meta)
    raw = json.dumps(meta, sort_keys=True).encode()
    zp_at = -(-(64 + len(raw)) // 8) * 8
    colsum_at = zp_at + 4 * zp.size
    extra_at = colsum_at + 4 * colsum.size
    panels_at = -(-(extra_at + len(extra)) // 4096) * 4096
    head = bytearray(panels_at)
    crc = zlib.crc32(panels) if panels_crc is None else panels_crc
    head[:64] = struct.pack("<8sIIQQIIQII8x", b"\x89QGEMMPB", version, 0, panels_at, panels.size, crc,
                            len(raw), len(extra), zp.size, colsum.size)
    head[64:64 + len(raw)] = raw
    head[zp_at:colsum_at] = zp.tobytes()
    head[colsum_at:extra_at] = colsum.tobytes()
    head[extra_at:extra_at + len(extra)] = extra
    head[12:16] = struct.pack("<I", zlib.crc32(head))
    return bytes(head) + panels.tobytes()


def test_the_reference_writer_matches_save(tmp_path, rng):
    for dtype in ("int8", "uint8"):
        b = rand_q(rng, (37, 45), dtype)
        zp = rng.integers(0, 100, 45)
        qgemm.pack(b, zp).save(tmp_path / "w.qpk")
        assert (tmp_path / "w.qpk").read_bytes() == build_file(b, zp)


@pytest.mark.parametrize("nr, kr", [(5, 3), (1, 1), (16, 2), (8, 2), (32, 4), (7, 8)])
@pytest.mark.parametrize("mmap", [True, False])
def test_another_layout_is_repacked(tmp_path, rng, nr, kr, mmap):
    for dtype in ("int8", "uint8"):
        b = rand_q(rng, (61, 43), dtype)
        path = tmp_path / "w.qpk"
        path.write_bytes(build_file(b, 3, nr=nr, kr=kr, layout={**LAYOUT, "kernel": "gemm_other"}))
        q = qgemm.load_packed(path, mmap=mmap)
        assert not q._packed.borrowed  # packed anew, for this CPU
        check_same(qgemm.pack(b, 3), q, rng, 61)
        with pytest.raises(ValueError, match="repack=False"):
            qgemm.load_packed(path, mmap=mmap, repack=False)


def test_a_layout_is_the_whole_tag(tmp_path, rng):
    """Same kernel name, other tile: read in the file's own layout, never this CPU's."""
    b = rand_q(rng, (50, 50), "int8")
    path = tmp_path / "w.qpk"
    path.write_bytes(build_file(b, nr=LAYOUT["nr"] * 2))
    assert np.array_equal(qgemm.load_packed(path).unpack(), b)
    with pytest.raises(ValueError, match="repack=False"):
        qgemm.load_packed(path, repack=False)


# ---- damaged and foreign files --------------------------------------------------------

def load_all_ways(path):
    for mmap in (True, False):
        with pytest.raises(ValueError, match="cannot load packed weights"):
            qgemm.load_packed(path, mmap=mmap)


def test_every_header_byte_flipped_is_refused(tmp_path, rng):
    """Every byte before the padding: magic, version, checksums, offsets, sizes,
    description, zero points, column sums; and a sample of the padding."""
    b = rand_q(rng, (40, 50), "uint8")
    good = build_file(b, rng.integers(0, 255, 50))
    panels_at = struct.unpack_from("<Q", good, 16)[0]
    content_end = len(good[:panels_at].rstrip(b"\0"))
    path = tmp_path / "w.qpk"
    for i in list(range(content_end)) + list(range(content_end, panels_at, 61)):
        for mask in ((0x01, 0x80) if i < 64 else (0x10,)):
            bad = bytearray(good)
            bad[i] ^= mask
            path.write_bytes(bad)
            with pytest.raises(ValueError, match="cannot load packed weights"):
                qgemm.load_packed(path)
    for i in (0, 12, 16, 32, 64, 200, panels_at - 1):  # both modes, a sample
        bad = bytearray(good)
        bad[i] ^= 0xFF
        path.write_bytes(bad)
        load_all_ways(path)


def test_damaged_panels_are_found_when_read(tmp_path, rng):
    b = rand_q(rng, (40, 50), "int8")
    good = build_file(b)
    panels_at = struct.unpack_from("<Q", good, 16)[0]
    path = tmp_path / "w.qpk"
    for i in (panels_at, panels_at + 777, len(good) - 1):  # B[0, 0], somewhere, the last panel's padding
        bad = bytearray(good)
        bad[i] ^= 0x04
        path.write_bytes(bad)
        for kw in ({"mmap": False}, {"mmap": True, "verify": True}):
            with pytest.raises(ValueError, match="checksum of the packed panels"):
                qgemm.load_packed(path, **kw)
    # mmap=True alone does not read the panels (documented): the damage shows in the data.
    assert qgemm.load_packed(path).unpack()[0, 0] == b[0, 0]
    bad = bytearray(good)
    bad[panels_at] ^= 0x04
    path.write_bytes(bad)
    assert qgemm.load_packed(path).unpack()[0, 0] == b[0, 0] ^ 0x04


def test_truncated_and_extended_files_are_refused(tmp_path, rng):
    good = build_file(rand_q(rng, (100, 70), "int8"))
    panels_at = struct.unpack_from("<Q", good, 16)[0]
    path = tmp_path / "w.qpk"
    for size in (0, 1, 4, 8, 12, 40, 63, 64, 65, 300, panels_at - 1, panels_at, panels_at + 1, len(good) - 1):
        path.write_bytes(good[:size])
        load_all_ways(path)
    path.write_bytes(good + b"\0")
    with pytest.raises(ValueError, match="trailing bytes"):
        qgemm.load_packed(path)


def test_other_versions_are_refused(tmp_path, rng):
    b = rand_q(rng, (10, 10), "int8")
    path = tmp_path / "w.qpk"
    for version in (0, 2, 7, 2**32 - 1):
        path.write_bytes(build_file(b, version=version))
        with pytest.raises(ValueError, match=f"format version {version}; this qgemm reads version 1"):
            qgemm.load_packed(path)


def test_not_a_packed_file(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros((100, 100), np.int8))
    with pytest.raises(ValueError, match="not a qgemm packed-weights file"):
        qgemm.load_packed(path)
    with pytest.raises(FileNotFoundError):
        qgemm.load_packed(tmp_path / "missing.qpk")


def set_in(path_keys, value):
    def edit(meta):
        d = meta
        for key in path_keys[:-1]:
            d = d[key]
        d[path_keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_in(["layout", "stored"], "u8"), "values stored as 'u8'"),
    (set_in(["layout", "nr"], 0), "malformed"),
    (set_in(["layout", "nr"], 5000), "malformed"),
    (set_in(["layout", "kr"], True), "malformed"),
    (set_in(["layout", "kernel"], 3), "malformed"),
    (set_in(["shape"], [40, 90]), "inconsistent sizes"),
    (set_in(["shape"], [41, 50]), "inconsistent sizes|column sums"),
    (set_in(["shape"], [40]), "malformed"),
    (set_in(["shape"], [-1, 50]), "malformed"),
    (set_in(["dtype"], "int16"), "malformed"),
    (set_in(["max_abs"], 129), "malformed"),
    (set_in(["zero_point_per_column"], True), "inconsistent sizes"),
    (set_in(["unknown"], 1), "malformed"),
    (lambda meta: meta.pop("extra"), "malformed"),
])
def test_wrong_contents_with_valid_checksums_are_refused(tmp_path, rng, edit, message):
    path = tmp_path / "w.qpk"
    path.write_bytes(build_file(rand_q(rng, (40, 50), "int8"), meta_edit=edit))
    for mmap in (True, False):
        with pytest.raises(ValueError, match=message):
            qgemm.load_packed(path, mmap=mmap)


def test_zero_points_outside_the_dtype_are_refused(tmp_path, rng):
    path = tmp_path / "w.qpk"
    path.write_bytes(build_file(rand_q(rng, (4, 5), "uint8"), -1))
    with pytest.raises(ValueError, match="zero point lies outside uint8"):
        qgemm.load_packed(path)
    path.write_bytes(build_file(rand_q(rng, (4, 5), "int8"), np.array([0, 0, 128, 0, 0])))
    with pytest.raises(ValueError, match="zero point lies outside int8"):
        qgemm.load_packed(path)


def test_a_repacked_file_must_agree_with_its_column_sums(tmp_path, rng):
    def off_by_one(colsum):
        colsum[3] += 1
    path = tmp_path / "w.qpk"
    path.write_bytes(build_file(rand_q(rng, (30, 20), "int8"), nr=5, kr=3, colsum_edit=off_by_one))
    with pytest.raises(ValueError, match="column sums do not match"):
        qgemm.load_packed(path)
    path.write_bytes(build_file(rand_q(rng, (30, 20), "int8"), nr=5, kr=3, meta_edit=set_in(["max_abs"], 3)))
    with pytest.raises(ValueError, match="column sums do not match"):
        qgemm.load_packed(path)


# ---- other CPUs' kernels (QGEMM_ISA in subprocesses) -----------------------------------

def run_with_isa(isa, code):
    env = dict(os.environ, QGEMM_ISA=isa)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("isa", ISAS)
def test_files_move_between_isas(tmp_path, rng, isa):
    """Saved under each ISA's kernel, loaded here (mapped when the layouts agree,
    repacked when not), and the other way round; results bit-identical."""
    b = rand_q(rng, (333, 90), "uint8")
    zp = rng.integers(0, 255, 90)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "zp.npy", zp)
    other = run_with_isa(isa, f"""
        import numpy as np, qgemm
        b, zp = np.load({str(tmp_path / 'b.npy')!r}), np.load({str(tmp_path / 'zp.npy')!r})
        qgemm.pack(b, zp).save({str(tmp_path / 'there.qpk')!r})
        print(qgemm._qgemm.packed_layout())
    """)
    there = eval(other)
    q = qgemm.load_packed(tmp_path / "there.qpk")
    assert q._packed.borrowed == (there == LAYOUT)
    check_same(qgemm.pack(b, zp), q, rng, 333)

    qgemm.pack(b, zp).save(tmp_path / "here.qpk")
    a = rand_q(rng, (2, 9, 333), "uint8")
    np.save(tmp_path / "a.npy", a)
    out = run_with_isa(isa, f"""
        import numpy as np, qgemm
        a, b = np.load({str(tmp_path / 'a.npy')!r}), np.load({str(tmp_path / 'b.npy')!r})
        zp = np.load({str(tmp_path / 'zp.npy')!r})
        q = qgemm.load_packed({str(tmp_path / 'here.qpk')!r})
        p = qgemm.pack(b, zp)
        a7 = a >> 1
        assert np.array_equal(qgemm.matmul(a, q, 4), qgemm.matmul(a, p, 4))
        q_before, p_before = q.nbytes, p.nbytes
        assert np.array_equal(qgemm.matmul(a7, q, 4), qgemm.matmul(a7, p, 4))
        assert np.array_equal(q.unpack(), b)
        np.save({str(tmp_path / 'c.npy')!r}, qgemm.matmul(a7, q, 4))
        # 7-bit activations make a range-proven kernel's layout (AVX2) beside a loaded B as beside a packed one
        print(q._packed.borrowed, q.nbytes - q_before, p.nbytes - p_before)
    """)
    borrowed, q_grew, p_grew = out.split()
    assert borrowed == str(there == LAYOUT)
    assert q_grew == p_grew and (int(q_grew) > 0) == (isa == "avx2")
    assert np.array_equal(np.load(tmp_path / "c.npy"), qgemm.matmul(a >> 1, qgemm.pack(b, zp), 4))


# ---- nn.Linear --------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"per_channel": False, "symmetric": False, "dtype": "uint8",
                                   "per_token": False, "act_bits": 8, "activation": "relu"},
                                  {"activation": (-0.5, 1.5), "act_bits": 5}])
@pytest.mark.parametrize("mmap", [True, False])
def test_linear_round_trip(tmp_path, rng, kw, mmap):
    w = rng.standard_normal((50, 70)).astype(np.float32)
    lin = Linear.from_float(w, rng.standard_normal(50), **kw)
    x = rng.standard_normal((3, 5, 70)).astype(np.float32)
    lin.save(tmp_path / "lin.qpk")
    l2 = Linear.load(tmp_path / "lin.qpk", mmap=mmap)
    assert l2._packed._packed.borrowed
    assert (l2.per_token, l2.act_bits, l2.activation) == (lin.per_token, lin.act_bits, lin.activation)
    assert np.array_equal(l2(x), lin(x))
    assert np.array_equal(l2.weight_q, lin.weight_q)
    assert l2.input_qparams is None

    lin.calibrate([x])
    lin.save(tmp_path / "lin.qpk")
    l2 = Linear.load(tmp_path / "lin.qpk", mmap=mmap)
    xq = lin.quantize_input(x)
    assert np.array_equal(l2.forward_quantized(xq), lin.forward_quantized(xq))
    s1, s2 = lin.state_dict(), l2.state_dict()
    assert s1.keys() == s2.keys()
    for key in s1:
        assert np.array_equal(s1[key], s2[key]) and np.asarray(s1[key]).dtype == np.asarray(s2[key]).dtype, key
    # The state dict of either loads into the other.
    l2.load_state_dict(s1)
    assert np.array_equal(l2(x), lin(x))
    l3 = Linear.from_state_dict(s2)
    assert np.array_equal(l3(x), lin(x))


def test_linear_files_and_packed_files_are_told_apart(tmp_path, rng):
    lin = Linear.from_float(rng.standard_normal((8, 6)))
    lin.save(tmp_path / "lin.qpk")
    q = qgemm.load_packed(tmp_path / "lin.qpk")  # its weights, as B = W.T
    assert np.array_equal(q.unpack(), lin.weight_q.T)
    qgemm.pack(np.zeros((3, 3), np.int8)).save(tmp_path / "b.qpk")
    with pytest.raises(ValueError, match="holds a packed matrix, not a Linear"):
        Linear.load(tmp_path / "b.qpk")


def test_a_damaged_linear_state_is_refused(tmp_path, rng):
    lin = Linear.from_float(rng.standard_normal((8, 6)))
    path = tmp_path / "lin.qpk"
    lin.save(path)
    data = bytearray(path.read_bytes())
    extra_nbytes = struct.unpack_from("<Q", data, 40)[0]
    assert extra_nbytes > 0
    data[200] ^= 1  # inside the description or the state: the header checksum covers both
    path.write_bytes(data)
    with pytest.raises(ValueError, match="cannot load packed weights"):
        Linear.load(path)
    path.write_bytes(build_file(rand_q(rng, (6, 8), "int8"), extra=b"not an npz", extra_kind=_LINEAR_STATE))
    with pytest.raises(ValueError, match="cannot load the Linear state"):
        Linear.load(path)


def test_linear_from_a_packed_matrix_checks_it(rng):
    w = rng.integers(-128, 128, (8, 6)).astype(np.int8)
    qp = qgemm.QParams(np.full(8, 0.1, np.float32), np.zeros(8, np.int32), "int8", 0)
    lin = Linear(qgemm.pack(w.T), qp)
    assert np.array_equal(lin.weight_q, w) and (lin.out_features, lin.in_features) == (8, 6)
    with pytest.raises(ValueError, match="packed as int8 with zero point 3"):
        Linear(qgemm.pack(w.T, 3), qp)
    with pytest.raises(ValueError, match="weight_qparams say uint8"):
        Linear(qgemm.pack(w.T), qgemm.QParams(np.float32(0.1), 0, "uint8", None))


def test_linear_moves_between_isas(tmp_path, rng):
    w = rng.standard_normal((40, 64)).astype(np.float32)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    lin = Linear.from_float(w, rng.standard_normal(40))
    lin.save(tmp_path / "lin.qpk")
    for isa in ISAS:
        run_with_isa(isa, f"""
            import numpy as np
            from qgemm.nn import _LINEAR_STATE, Linear
            l2 = Linear.load({str(tmp_path / 'lin.qpk')!r})
            np.save({str(tmp_path / 'y.npy')!r}, l2(np.load({str(tmp_path / 'x.npy')!r})))
        """)
        # The dynamic scheme does not depend on the CPU: identical results everywhere.
        assert np.array_equal(np.load(tmp_path / "y.npy"), lin(x))
