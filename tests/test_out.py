"""out= overlapping an input gives the answer computed without out= (as in
NumPy, which computes into a temporary); a separate C-contiguous out= is
written in place and returned."""

import numpy as np
from hypothesis import given, settings, strategies as st

import qgemm


def test_quantize_out_overlapping_its_input(rng):
    n = 1 << 20
    x = rng.uniform(-1, 1, n).astype(np.float32)
    want = qgemm.quantize(x, 0.01, 0)
    out = x.view(np.int8)[-n:]                 # the codes land on floats not yet read
    assert qgemm.quantize(x, 0.01, 0, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_dequantize_out_overlapping_its_input(rng):
    fb = np.empty(1 << 18, np.float32)
    q = fb.view(np.int8)[: fb.size]            # codes in the first quarter of the float buffer
    q[:] = rng.integers(-128, 128, q.size)
    want = qgemm.dequantize(q.copy(), 0.5, 0)
    assert qgemm.dequantize(q, 0.5, 0, out=fb) is fb
    np.testing.assert_array_equal(fb, want)


def test_matmul_out_viewing_a(rng):
    m, k, n = 320, 400, 400
    buf = np.empty(m * n, np.int32)
    a = buf.view(np.int8)[: m * k].reshape(m, k)   # A lives in the first bytes of C
    a[:] = rng.integers(-128, 128, a.shape)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    want = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(qgemm.matmul(a, b, out=buf.reshape(m, n)), want)


def test_matmul_out_viewing_a_plain_b(rng):
    # A plain B is read while C is written (it is packed inside the call): C
    # over B's bytes must not change the answer.
    m, k, n = 64, 256, 256
    buf = np.empty(m * n, np.int32)
    b = buf.view(np.int8)[-k * n:].reshape(k, n)   # B in the last bytes of C
    b[:] = rng.integers(-128, 128, b.shape)
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    for kw in ({}, {"b_zero_point": 5}):
        b[:] = rng.integers(-128, 128, b.shape)
        want = (a.astype(np.int64) @ (b.astype(np.int64) - kw.get("b_zero_point", 0)))
        np.testing.assert_array_equal(qgemm.matmul(a, b, out=buf.reshape(m, n), **kw), want)


def test_qlinear_matmul_out_viewing_a(rng):
    m, k, shift = 512, 256, 64
    buf = rng.integers(-128, 128, (m + shift, k)).astype(np.int8)
    a, out = buf[:m], buf[shift:]              # output row i is input row i + shift
    b = rng.integers(-128, 128, (k, k)).astype(np.int8)
    want = qgemm.qlinear_matmul(a.copy(), 0.02, 3, b, 0.01, 0, 0.5, -2)
    np.testing.assert_array_equal(qgemm.qlinear_matmul(a, 0.02, 3, b, 0.01, 0, 0.5, -2, out=out), want)


def test_requantize_out_viewing_acc(rng):
    acc = rng.integers(-100_000, 100_000, (300, 200)).astype(np.int32)
    want = qgemm.requantize(acc, 0.001, 4)
    out = acc.view(np.int8).reshape(-1)[-acc.size:].reshape(acc.shape)  # the last quarter of acc's bytes
    np.testing.assert_array_equal(qgemm.requantize(acc, 0.001, 4, out=out), want)
    acc2 = rng.integers(-100_000, 100_000, (300, 200)).astype(np.int32)
    want2 = qgemm.requantize(acc2, 0.001, 4)
    strided = acc2.view(np.int8)[:, 400:600]   # non-contiguous view into the accumulators' bytes
    np.testing.assert_array_equal(qgemm.requantize(acc2, 0.001, 4, out=strided), want2)


def test_separate_contiguous_out_is_written_in_place(rng):
    a = rng.integers(-128, 128, (8, 16)).astype(np.int8)
    b = rng.integers(-128, 128, (16, 4)).astype(np.int8)
    out = np.empty((8, 4), np.int32)
    assert qgemm.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b)
    x = rng.standard_normal(50).astype(np.float32)
    qo = np.empty(50, np.int8)
    assert qgemm.quantize(x, 0.1, 0, out=qo) is qo
    np.testing.assert_array_equal(qo, qgemm.quantize(x, 0.1, 0))


def test_out_overlapping_per_row_parameters(rng):
    # Per-row activation scales and zero points are read by the kernel too.
    m, k, n = 64, 32, 128
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    ys = np.empty((m, n), np.float32)
    sa = ys.reshape(-1)[:m]                            # the scales live in the output's first row
    sa[:] = rng.uniform(0.01, 0.1, m)
    want = qgemm.qlinear_matmul(a, sa.copy(), 0, b, 0.01, 0, None, None, out_dtype="float32")
    got = qgemm.qlinear_matmul(a, sa, 0, b, 0.01, 0, None, None, out_dtype="float32", out=ys)
    np.testing.assert_array_equal(got, want)
    out = np.empty((m, n), np.int32)
    za = out.reshape(-1)[:m]
    za[:] = rng.integers(-128, 128, m)
    want = qgemm.matmul(a, b, a_zero_point=za.copy())
    np.testing.assert_array_equal(qgemm.matmul(a, b, a_zero_point=za, out=out), want)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 300), k=st.integers(1, 300), n=st.integers(1, 300), shift=st.integers(-400, 400),
       seed=st.integers(0, 2**32 - 1))
def test_property_out_anywhere_over_a_gives_the_plain_answer(m, k, n, shift, seed):
    # A and C share one buffer, C starting about `shift` bytes after A (overlapping or not).
    rng = np.random.default_rng(seed)
    raw = np.zeros(800 + 4 * m * n + m * k, np.uint8)
    c_start = max(shift, 0) // 4 * 4                  # int32 C stays aligned
    a_start = max(-shift, 0)
    a = raw[a_start:a_start + m * k].view(np.int8).reshape(m, k)
    a[:] = rng.integers(-128, 128, a.shape)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    want = a.astype(np.int64) @ b.astype(np.int64)
    out = raw[c_start:c_start + 4 * m * n].view(np.int32).reshape(m, n)
    np.testing.assert_array_equal(qgemm.matmul(a, b, out=out), want)
    a[:] = rng.integers(-128, 128, a.shape)
    want_q = qgemm.qlinear_matmul(a.copy(), 0.05, 1, b, 0.02, 0, 0.7, -3)
    out_q = raw[c_start:c_start + m * n].view(np.int8).reshape(m, n)
    np.testing.assert_array_equal(qgemm.qlinear_matmul(a, 0.05, 1, b, 0.02, 0, 0.7, -3, out=out_q), want_q)
