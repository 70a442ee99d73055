"""matmul / pack: exact int32 results against an int64 NumPy reference for
every dtype pair, zero point, shape, stride and batch; parity with ONNX Runtime."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qgemm
from reference import QR, exact_matmul, exact_matmul_int32, ort_matmul_integer, rand_q


@pytest.mark.parametrize("adt", ["int8", "uint8"])
@pytest.mark.parametrize("bdt", ["int8", "uint8"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (64, 64, 64), (33, 100, 517), (130, 17, 1100)])
def test_all_dtype_pairs_exact(rng, adt, bdt, shape):
    m, n, k = shape
    a, b = rand_q(rng, (m, k), adt), rand_q(rng, (k, n), bdt)
    za = int(rng.integers(*QR[adt]))
    zb = rand_q(rng, n, bdt).astype(np.int32)
    c = qgemm.matmul(a, b, za, zb)
    assert c.dtype == np.int32 and c.shape == (m, n)
    np.testing.assert_array_equal(c, exact_matmul_int32(a, b, za, zb))
    packed = qgemm.pack(b, zb)
    np.testing.assert_array_equal(qgemm.matmul(a, packed, za), c)


@pytest.mark.parametrize("adt,bdt,za,zb", [
    ("int8", "int8", 127, 127),     # (-128 - 127) * (-128 - 127) = 65025 per term
    ("uint8", "uint8", 0, 0),       # 255 * 255
    ("uint8", "int8", 0, 127),
    ("int8", "uint8", -128, 255),
])
def test_extremes_are_exact(adt, bdt, za, zb):
    k = 33025  # the documented bound: 33025 * 65025 < 2**31
    a = np.full((3, k), QR[adt][0] if za > 0 else QR[adt][1], adt)
    b = np.full((k, 5), QR[bdt][0] if zb > 0 else QR[bdt][1], bdt)
    c = qgemm.matmul(a, b, za, zb)
    want = exact_matmul(a, b, za, zb)
    assert np.abs(want).max() < 2**31
    np.testing.assert_array_equal(c, want)


def test_k_65536_int8_exact_and_wraps_past_int32(rng):
    k = 65536
    a = np.full((2, k), -128, np.int8)
    b = np.full((k, 3), -128, np.int8)
    c = qgemm.matmul(a, b)
    assert (c == 2**30).all()  # 65536 * 16384
    # with zero points the true value 65536 * 65025 exceeds int32: it wraps modulo 2**32
    c = qgemm.matmul(a, b, 127, 127)
    true = 65536 * 65025
    assert true > 2**31 and (c == np.array([true], np.int64).astype(np.int32)[0]).all()
    r = rand_q(rng, (5, k), "uint8")
    w = rand_q(rng, (k, 7), "int8")
    np.testing.assert_array_equal(qgemm.matmul(r, w, 3, -5), exact_matmul_int32(r, w, 3, -5))


def test_strides_fortran_negative_and_misaligned(rng):
    base = rand_q(rng, (90, 301), "int8")
    a = base[::-3, 1::2]             # negative and non-unit strides, odd offset
    b = np.asfortranarray(rand_q(rng, (a.shape[1], 37), "uint8"))
    raw = np.zeros(a.size + 1, np.uint8)[1:].view(np.int8).reshape(a.shape)  # misaligned buffer
    raw[...] = a
    for lhs in (a, raw, np.asfortranarray(a), a.T.copy().T):
        np.testing.assert_array_equal(qgemm.matmul(lhs, b, 5, 17), exact_matmul_int32(lhs, b, 5, 17))
    np.testing.assert_array_equal(qgemm.matmul(a, b[:, ::-1], 5, 17), exact_matmul_int32(a, b[:, ::-1], 5, 17))


def test_batches_like_np_matmul(rng):
    a = rand_q(rng, (2, 3, 9, 40), "uint8")
    b = rand_q(rng, (40, 11), "int8")
    c = qgemm.matmul(a, b, 7, 2)
    assert c.shape == (2, 3, 9, 11)
    np.testing.assert_array_equal(c, exact_matmul_int32(a, b, 7, 2))
    # non-mergeable batch strides
    at = a.transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(qgemm.matmul(at, b, 7, 2), exact_matmul_int32(at, b, 7, 2))


def test_vector_operands_like_np_matmul(rng):
    a = rand_q(rng, 50, "int8")
    b = rand_q(rng, (50, 6), "int8")
    assert qgemm.matmul(a, b).shape == (6,)
    np.testing.assert_array_equal(qgemm.matmul(a, b), exact_matmul_int32(a, b, 0, 0))
    bv = rand_q(rng, 50, "int8")
    m = rand_q(rng, (4, 50), "int8")
    assert qgemm.matmul(m, bv).shape == (4,)
    np.testing.assert_array_equal(qgemm.matmul(m, bv), exact_matmul_int32(m, bv, 0, 0))
    assert qgemm.matmul(a, bv).shape == ()
    assert int(qgemm.matmul(a, bv)) == int(exact_matmul_int32(a, bv, 0, 0))


def test_empty_dimensions():
    for m, k, n in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)]:
        a, b = np.ones((m, k), np.int8), np.ones((k, n), np.int8)
        c = qgemm.matmul(a, b, 1, 2)
        assert c.shape == (m, n)
        assert (c == 0).all()  # K = 0: empty sums


def test_out_argument(rng):
    a, b = rand_q(rng, (20, 30), "int8"), rand_q(rng, (30, 10), "int8")
    out = np.empty((20, 10), np.int32)
    assert qgemm.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, exact_matmul_int32(a, b, 0, 0))
    out_f = np.empty((10, 20), np.int32).T
    assert qgemm.matmul(a, b, out=out_f) is out_f
    np.testing.assert_array_equal(out_f, exact_matmul_int32(a, b, 0, 0))


def test_packed_matrix_inspectable_pickles_and_is_compact(rng):
    b = rand_q(rng, (1000, 300), "uint8")
    zb = rand_q(rng, 300, "uint8")
    p = qgemm.pack(b, zb)
    assert p.shape == (1000, 300) and p.dtype == np.uint8
    np.testing.assert_array_equal(p.zero_point, zb)
    np.testing.assert_array_equal(p.unpack(), b)
    assert p.nbytes <= 1.1 * b.nbytes + 8 * 300
    q = pickle.loads(pickle.dumps(p))
    a = rand_q(rng, (9, 1000), "int8")
    np.testing.assert_array_equal(qgemm.matmul(a, q, 3), qgemm.matmul(a, p, 3))
    np.testing.assert_array_equal(qgemm.matmul(a, p, 3), exact_matmul_int32(a, b, 3, zb))
    assert qgemm.pack(b, 7).zero_point == 7


# ---- inputs whose ranges prove the faster int16 pair-sum kernel exact --------------
# (taken on CPUs whose exact kernel is the AVX2 one; every kernel must be exact
# on them, and one element past the proof must fall back to the exact path)

@pytest.mark.parametrize("adt", ["int8", "uint8"])
@pytest.mark.parametrize("bdt", ["int8", "uint8"])
def test_range_proven_inputs_exact_at_the_bounds(rng, adt, bdt):
    k, n = 1000, 40
    # A at 127 stored (uint8 127, int8 -1: int8 is stored flipped) with B at -128:
    # |127 * -128 * 2| = 32512, the largest pair sum the proof admits.
    a = np.full((30, k), 127 if adt == "uint8" else -1, adt)
    b = np.full((k, n), -128 if bdt == "int8" else 0, bdt)
    zb = 0 if bdt == "int8" else 128
    packed = qgemm.pack(b, zb)
    before = packed.nbytes
    np.testing.assert_array_equal(qgemm.matmul(a, packed, 3), exact_matmul_int32(a, b, 3, zb))
    if qgemm.cpu_info()["gemm_kernel"] == "gemm_s16s8_6x16c2_avx2":
        assert packed.nbytes > before  # the faster kernel ran, on its own layout of B
    # One element of A past the proof: 128 * -128 * 2 would saturate int16.
    a[17, 501] = 128 if adt == "uint8" else 0
    a[17, 500] = a[17, 501]
    np.testing.assert_array_equal(qgemm.matmul(a, qgemm.pack(b, zb), 3), exact_matmul_int32(a, b, 3, zb))
    # B within [-64, 64] stored: any A (255 * -64 * 2 = -32640).
    a_full = np.full((30, k), 255 if adt == "uint8" else 127, adt)
    b64 = np.full((k, n), -64 if bdt == "int8" else 64, bdt)
    np.testing.assert_array_equal(qgemm.matmul(a_full, qgemm.pack(b64), 5), exact_matmul_int32(a_full, b64, 5, 0))


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 200), n=st.integers(1, 200), k=st.integers(0, 600),
    adt=st.sampled_from(["int8", "uint8"]), bdt=st.sampled_from(["int8", "uint8"]),
    a_7bit=st.booleans(), per_column=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_property_range_proven_inputs(m, n, k, adt, bdt, a_7bit, per_column, seed):
    rng = np.random.default_rng(seed)
    if a_7bit:  # A within 7 bits stored (uint8 0..127, int8 -128..-1), B full range
        a = rng.integers(0, 128, (m, k)) if adt == "uint8" else rng.integers(-128, 0, (m, k))
        b = rand_q(rng, (k, n), bdt)
    else:  # B within [-64, 64] stored, A full range
        a = rand_q(rng, (m, k), adt)
        b = rng.integers(-64, 65, (k, n)) + (128 if bdt == "uint8" else 0)
    a, b = a.astype(adt), b.astype(bdt)
    za = int(rng.integers(QR[adt][0], QR[adt][1] + 1))
    zb = rand_q(rng, n, bdt).astype(np.int32) if per_column else int(rng.integers(QR[bdt][0], QR[bdt][1] + 1))
    packed = qgemm.pack(b, zb)
    np.testing.assert_array_equal(qgemm.matmul(a, packed, za), exact_matmul_int32(a, b, za, zb))
    # The same packed matrix on full-range A afterwards stays exact.
    a2 = rand_q(rng, (m, k), adt)
    np.testing.assert_array_equal(qgemm.matmul(a2, packed, za), exact_matmul_int32(a2, b, za, zb))


def test_large_outputs_from_the_buffer_pool_are_independent(rng):
    # Outputs of 1 MiB and more come from a pool of reused blocks: results
    # must stay valid and distinct while alive, and reuse must be safe after.
    a, b = rand_q(rng, (600, 64), "int8"), rand_q(rng, (64, 600), "int8")
    first = qgemm.matmul(a, b)
    second = qgemm.matmul(a, b, 1, 1)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, exact_matmul_int32(a, b, 0, 0))
    np.testing.assert_array_equal(second, exact_matmul_int32(a, b, 1, 1))
    del first
    third = qgemm.matmul(a, b, 2, 2)
    np.testing.assert_array_equal(second, exact_matmul_int32(a, b, 1, 1))
    np.testing.assert_array_equal(third, exact_matmul_int32(a, b, 2, 2))
    y = qgemm.qlinear_matmul(a, 0.1, 0, b, 0.1, 0, 1.0, 0, out_dtype="float32")
    np.testing.assert_array_equal(y, (exact_matmul_int32(a, b, 0, 0).astype(np.float32) * np.float32(0.1 * np.float32(0.1))))


def test_threads_give_identical_results(rng):
    a, b = rand_q(rng, (300, 700), "int8"), rand_q(rng, (700, 260), "uint8")
    before = qgemm.get_num_threads()
    try:
        qgemm.set_num_threads(1)
        one = qgemm.matmul(a, b, 1, 2)
        qgemm.set_num_threads(2)
        two = qgemm.matmul(a, b, 1, 2)
    finally:
        qgemm.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, exact_matmul_int32(a, b, 1, 2))


def test_concurrent_python_threads(rng):
    from concurrent.futures import ThreadPoolExecutor

    cases = [(rand_q(rng, (50 + i, 200), "int8"), rand_q(rng, (200, 70), "int8")) for i in range(8)]
    want = [exact_matmul_int32(a, b, 0, 0) for a, b in cases]
    with ThreadPoolExecutor(4) as ex:
        for _ in range(5):
            got = list(ex.map(lambda ab: qgemm.matmul(*ab), cases))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


@settings(max_examples=120, deadline=None)
@given(
    m=st.integers(0, 300), n=st.integers(0, 300), k=st.integers(0, 300),
    adt=st.sampled_from(["int8", "uint8"]), bdt=st.sampled_from(["int8", "uint8"]),
    per_column=st.booleans(), packed=st.booleans(), transpose_a=st.booleans(),
    batch=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
)
def test_property_against_int64_reference(m, n, k, adt, bdt, per_column, packed, transpose_a, batch, seed):
    rng = np.random.default_rng(seed)
    if m * n * k * batch > 3_000_000:
        m = max(1, m // 4)
    a = rand_q(rng, (batch, k, m), adt).transpose(0, 2, 1) if transpose_a else rand_q(rng, (batch, m, k), adt)
    b = rand_q(rng, (k, n), bdt)
    za = int(rng.integers(QR[adt][0], QR[adt][1] + 1))
    zb = rand_q(rng, n, bdt).astype(np.int32) if per_column else int(rng.integers(QR[bdt][0], QR[bdt][1] + 1))
    rhs = qgemm.pack(b, zb) if packed else b
    c = qgemm.matmul(a, rhs, za, None if packed else zb)
    np.testing.assert_array_equal(c, exact_matmul_int32(a, b, za, zb))


# ---- ONNX Runtime MatMulInteger --------------------------------------------------

def test_int8_x_int8_bit_exact_with_onnxruntime(rng):
    a, b = rand_q(rng, (64, 300), "int8"), rand_q(rng, (300, 48), "int8")
    za, zb = np.int8(-3), np.int8(5)
    np.testing.assert_array_equal(qgemm.matmul(a, b, za, zb), ort_matmul_integer(a, b, za, zb))


def test_uint8_x_int8_exact_where_onnxruntime_saturates(rng):
    # ONNX Runtime's u8 x s8 AVX2 path sums pairs of u8*s8 products in int16
    # (vpmaddubsw) and saturates on full-range data. qgemm stays exact.
    a = np.full((16, 256), 255, np.uint8)
    b = np.full((256, 16), -128, np.int8)
    b[1::2] = -128
    exact = exact_matmul_int32(a, b, 0, 0)
    ours = qgemm.matmul(a, b)
    np.testing.assert_array_equal(ours, exact)
    a2, b2 = rand_q(rng, (64, 512), "uint8"), rand_q(rng, (512, 64), "int8")
    ort = ort_matmul_integer(a2, b2, np.uint8(0), np.int8(0))
    np.testing.assert_array_equal(qgemm.matmul(a2, b2), exact_matmul_int32(a2, b2, 0, 0))
    ort_full = ort_matmul_integer(a, b, np.uint8(0), np.int8(0))
    if np.array_equal(ort_full, exact) and np.array_equal(ort, exact_matmul_int32(a2, b2, 0, 0)):
        pytest.skip("this ONNX Runtime build computed u8 x s8 exactly here (no saturating path)")
    assert not np.array_equal(ort_full, exact) or not np.array_equal(ort, exact_matmul_int32(a2, b2, 0, 0))


def test_uint8_7bit_x_int8_matches_onnxruntime(rng):
    # On 7-bit activations ONNX Runtime's fast path is exact too: bit-identical.
    a, b = rng.integers(0, 128, (40, 333)).astype(np.uint8), rand_q(rng, (333, 50), "int8")
    np.testing.assert_array_equal(qgemm.matmul(a, b, 64, 0),
                                  ort_matmul_integer(a, b, np.uint8(64), np.int8(0)))
