"""Failures and limits: memory exhaustion inside threaded calls, bounded
caches, thread-count parsing, output-stage parameters out of float32's
range, and inputs other functions already take (strides, zero points)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import qgemm
from reference import exact_matmul

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")


def run_python(code: str, env_extra=None, timeout=240):
    """Runs code in a fresh interpreter (crash cases must not take the suite down)."""
    env = dict(os.environ)
    # The qgemm under test, whether it is installed or built in the source tree.
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(qgemm.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)


# ---- memory -----------------------------------------------------------------

LIMIT_MEMORY = """
    import resource
    def limit_memory(extra_bytes):
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, resource.RLIM_INFINITY))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.parametrize("call", ["qlinear", "linear"])
def test_failed_allocation_in_threaded_call_raises_memory_error(call):
    r = run_python(LIMIT_MEMORY + f"""
    import numpy as np, qgemm
    qgemm.set_num_threads(2)
    K = 4_000_001  # not a multiple of 4: A is packed (not read in place), the allocation that fails
    a = np.ones((48, K), np.int8)
    x = np.ones((8, K), np.float32)
    p = qgemm.pack(np.ones((K, 1), np.int8))
    lin = qgemm.nn.Linear.from_float(np.ones((1, K), np.float32))
    # The pool's helper threads exist before the limit.
    qgemm.qlinear_matmul(np.ones((48, 1000), np.int8), 1., 0, np.ones((1000, 1), np.int8), 1., 0, 1., 0)
    limit_memory(20 << 20)
    try:
        if "{call}" == "qlinear":
            qgemm.qlinear_matmul(a, 1., 0, p, 1., None, 1., 0)
        else:
            lin(x)
        print("no error")
    except MemoryError as e:
        print("MemoryError:", e)
    # Still usable, threaded calls included.
    a2 = np.arange(300 * 500, dtype=np.int64).reshape(300, 500).astype(np.int8)
    b2 = np.arange(500 * 400, dtype=np.int64).reshape(500, 400).astype(np.int8)
    ok = np.array_equal(qgemm.matmul(a2, b2), a2.astype(np.int64) @ b2.astype(np.int64))
    print("usable:", ok)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "MemoryError: qgemm: not enough memory" in r.stdout, r.stdout
    assert "usable: True" in r.stdout


def rss_bytes_code():
    return """
    def rss():
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
    """


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_returns_after_large_calls():
    # A large dynamic Linear call (from four threads at once, and from one),
    # and quantize + matmul by hand: what stays cached is bounded by the
    # buffer pool's cap (128 MiB), not by the largest call.
    r = run_python(rss_bytes_code() + """
    import numpy as np, qgemm
    from concurrent.futures import ThreadPoolExecutor
    lin = qgemm.nn.Linear.from_float(np.random.default_rng(0).standard_normal((16, 1024)).astype(np.float32))
    small = np.ones((4, 1024), np.float32)
    for _ in range(20):
        lin(small)
    base = rss()
    x = np.ones((100_000, 1024), np.float32)
    pool = ThreadPoolExecutor(4)  # alive until the end: per-thread caches would stay
    list(pool.map(lambda _: lin(x).shape, range(4)))
    lin(x)
    for _ in range(20):
        list(pool.map(lin, [small] * 4))
        lin(small)
    q = qgemm.quantize(x, 0.01, 0, dtype="uint8")
    acc = qgemm.matmul(q, np.ones((1024, 8), np.int8))
    del x, q, acc
    for _ in range(20):
        lin(small)
    print("grown MiB:", (rss() - base) / 2**20)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    grown = float(r.stdout.split("grown MiB:")[1])
    assert grown < 128 + 48, r.stdout


# ---- threads ----------------------------------------------------------------

@pytest.mark.parametrize("value", ["99999999999", "abc", "0", "-1", "1.5", "3x", "", "5000", " 2"])
def test_bad_thread_count_in_environment_fails_the_import(value):
    r = run_python("import qgemm", {"QGEMM_NUM_THREADS": value})
    assert r.returncode != 0
    assert "QGEMM_NUM_THREADS must be a whole number from 1 to 1024" in r.stderr, r.stderr[-1000:]


def test_thread_count_from_environment():
    r = run_python("import qgemm; print(qgemm.get_num_threads())", {"QGEMM_NUM_THREADS": "3"})
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr


def test_set_num_threads_takes_any_integer_in_range():
    before = qgemm.get_num_threads()
    try:
        qgemm.set_num_threads(np.int64(3))
        assert qgemm.get_num_threads() == 3
        qgemm.set_num_threads(qgemm.MAX_THREADS)
        assert qgemm.get_num_threads() == qgemm.MAX_THREADS
        for bad in (0, -1, qgemm.MAX_THREADS + 1, 2**31, 2**64, 1.5, 2.0, True, "2", None):
            with pytest.raises(ValueError, match="integer from 1 to 1024"):
                qgemm.set_num_threads(bad)
        assert qgemm.get_num_threads() == qgemm.MAX_THREADS
    finally:
        qgemm.set_num_threads(before)


# ---- output-stage parameters ------------------------------------------------

def test_multipliers_outside_float32_are_refused():
    acc = np.array([[0, 1]], np.int32)
    with pytest.raises(ValueError, match="multiplier"):
        qgemm.requantize(acc, 1e39)       # inf in float32
    with pytest.raises(ValueError, match="multiplier"):
        qgemm.requantize(acc, 1e-45)      # subnormal in float32
    with pytest.raises(ValueError, match="multiplier"):
        qgemm.requantize(acc, 1e-39, requant="fixed_point")
    a = np.zeros((2, 3), np.int8)
    b = np.ones((3, 3), np.int8)
    with pytest.raises(ValueError, match="a_scale \\* b_scale / y_scale"):
        qgemm.qlinear_matmul(a, 1., 0, b, 1., 0, y_scale=1e-44, y_zero_point=5)
    with pytest.raises(ValueError, match="a_scale \\* b_scale / y_scale"):
        qgemm.qlinear_matmul(a, 1., 0, b, 1., 0, 1e-44, 5, requant="fixed_point")
    with pytest.raises(ValueError, match="a_scale \\* b_scale"):
        qgemm.qlinear_matmul(a, 1e-30, 0, b, 1e-30, 0, 1., 0, bias=np.array([0, 1, 2], np.float32))
    with pytest.raises(ValueError, match="bias"):
        qgemm.qlinear_matmul(a, 1., 0, b, 1., 0, None, None, bias=np.array([0, np.nan, 2], np.float32),
                             out_dtype="float32")
    with pytest.raises(ValueError, match="bias"):   # a finite bias that overflows once divided
        qgemm.qlinear_matmul(a, 1e-20, 0, b, 1e-17, 0, 1., 0, bias=np.array([0, 1e3, 2], np.float32))


def test_small_but_normal_scales_still_work():
    a = np.full((2, 3), 2, np.int8)
    b = np.ones((3, 3), np.int8)
    y = qgemm.qlinear_matmul(a, 1e-20, 0, b, 1e-10, 0, 1e-30, 5, bias=np.array([0, 1e-30, 2e-30], np.float32))
    assert y.tolist() == [[11, 12, 13]] * 2
    assert qgemm.requantize(np.array([0, 1], np.int32), 2.0 ** -126, zero_point=5).tolist() == [5, 5]


@pytest.mark.parametrize("requant,per_row", [("float", False), ("fixed_point", False), ("float", True)])
@pytest.mark.parametrize("per_column", [False, True])
def test_requantize_with_scales_equals_qlinear_matmul(rng, requant, per_row, per_column):
    for trial in range(30):
        m, k, n = rng.integers(1, 20), rng.integers(1, 200), rng.integers(1, 40)
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        za, zb = int(rng.integers(0, 256)), int(rng.integers(-128, 128))
        sa = rng.uniform(1e-3, 1e-1, m).astype(np.float32) if per_row else float(rng.uniform(1e-3, 1e-1))
        if per_row:
            za = rng.integers(0, 256, m).astype(np.int32)
        sb = rng.uniform(1e-3, 1e-1, n).astype(np.float32) if per_column else float(rng.uniform(1e-3, 1e-1))
        sy = float(rng.uniform(1e-2, 2.0))
        bias = rng.integers(-5000, 5000, n).astype(np.int32)
        if requant == "float" and trial % 2:
            bias = rng.standard_normal(n).astype(np.float32)  # real units, as qlinear_matmul takes it
        fused = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, sy, 3, bias=bias, requant=requant)
        acc = qgemm.matmul(a, b, za, zb)
        alone = qgemm.requantize(acc, zero_point=3, dtype="uint8", bias=bias, requant=requant,
                                 a_scale=sa, b_scale=sb, y_scale=sy)
        np.testing.assert_array_equal(alone, fused)


def test_plain_multiplier_is_rounded_once_to_float32():
    # sa * sb / sy in float64, then rounded to float32, can differ by an ulp
    # from the fused path's float32(sa * sb) / sy: near ties that moves a code.
    rng = np.random.default_rng(7)
    for _ in range(100000):
        sa, sb = (np.float32(v) for v in rng.uniform(0.01, 0.1, 2))
        sy = np.float32(rng.uniform(10, 100))
        fused_m = np.float32(np.float32(sa * sb) / sy)
        plain_m = np.float32(np.float64(sa) * np.float64(sb) / np.float64(sy))
        if fused_m != plain_m:
            break
    else:
        pytest.fail("no scales found whose two multipliers differ")
    acc = np.arange(int(-127 / fused_m), int(127 / fused_m), dtype=np.int32)
    codes = lambda m: np.clip(np.rint(acc.astype(np.float32) * m), -128, 127).astype(np.int8)
    by_scales = qgemm.requantize(acc, a_scale=sa, b_scale=sb, y_scale=sy)
    by_multiplier = qgemm.requantize(acc, float(sa) * float(sb) / float(sy))
    np.testing.assert_array_equal(by_scales, codes(fused_m))
    np.testing.assert_array_equal(by_multiplier, codes(plain_m))
    assert np.any(by_scales != by_multiplier)  # the documented difference is real


def test_requantize_takes_any_strides(rng):
    acc = rng.integers(-10**6, 10**6, (37, 23)).astype(np.int32)
    for view in (acc[::-1], acc[:, ::2], acc.T, acc[::-2, ::-3], acc[:, 5]):
        expect = qgemm.requantize(np.ascontiguousarray(view), 0.001, zero_point=3)
        np.testing.assert_array_equal(qgemm.requantize(view, 0.001, zero_point=3), expect)


def test_requantize_multiplier_or_scales_not_both():
    acc = np.zeros((2, 2), np.int32)
    with pytest.raises(ValueError, match="either multiplier"):
        qgemm.requantize(acc)
    with pytest.raises(ValueError, match="either multiplier"):
        qgemm.requantize(acc, 0.5, a_scale=1., b_scale=1., y_scale=2.)
    with pytest.raises(ValueError, match="either multiplier"):
        qgemm.requantize(acc, a_scale=1., b_scale=1.)


# ---- a packed matrix with its own zero point --------------------------------

def test_packed_matrix_accepts_its_own_zero_point(rng):
    a = rng.integers(-128, 128, (5, 40)).astype(np.int8)
    b = rng.integers(0, 256, (40, 6)).astype(np.uint8)
    ref = exact_matmul(a, b, 1, 7)
    p = qgemm.pack(b, 7)
    np.testing.assert_array_equal(qgemm.matmul(a, p, 1, 7), ref)
    np.testing.assert_array_equal(qgemm.matmul(a, p, 1, np.uint8(7)), ref)
    np.testing.assert_array_equal(qgemm.matmul(a, p, 1, [7] * 6), ref)
    y = qgemm.qlinear_matmul(a, 0.5, 1, p, 0.25, 7, 100., 0)
    np.testing.assert_array_equal(y, qgemm.qlinear_matmul(a, 0.5, 1, p, 0.25, None, 100., 0))
    zps = np.arange(6, dtype=np.int32) + 3
    pc = qgemm.pack(b, zps)
    np.testing.assert_array_equal(qgemm.matmul(a, pc, 0, zps.copy()), qgemm.matmul(a, pc))
    with pytest.raises(ValueError, match=r"b_zero_point=8 differs from the zero point b was packed with \(7\)"):
        qgemm.matmul(a, p, 1, 8)
    with pytest.raises(ValueError, match="differs"):
        qgemm.matmul(a, pc, 0, 3)
    with pytest.raises(ValueError, match="differs"):
        qgemm.qlinear_matmul(a, 0.5, 1, p, 0.25, [7, 7], 100., 0)


def test_symmetric_reduce_range_uint8_zero_point_inside_its_range():
    # 128 would lie outside [0, 127]: the middle code of 7 bits is 64.
    qp = qgemm.qparams_from_range(-1.0, 2.0, "uint8", symmetric=True, reduce_range=True)
    assert qp.zero_point == 64
    assert qgemm.qparams_from_range(-1.0, 2.0, "uint8", symmetric=True, bits=7).zero_point == 64
    assert qgemm.qparams_from_range(-1.0, 2.0, "int8", symmetric=True, reduce_range=True).zero_point == 0
