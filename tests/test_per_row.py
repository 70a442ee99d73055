"""Per-row (per-token) activation parameters: one zero point and scale per row
of A (batch rows included) through matmul, qlinear_matmul and requantize,
exact against an int64 NumPy reference for every dtype pair."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qgemm
from reference import QR, exact_matmul_int32, rand_q

DTYPES = st.sampled_from(["int8", "uint8"])


def zero_points(rng, shape, dtype, extremes):
    """Random zero points, or only the dtype's two extremes."""
    lo, hi = QR[dtype]
    if extremes:
        return rng.choice(np.array([lo, hi]), shape)
    return rng.integers(lo, hi + 1, shape)


def strided(rng, a, how):
    """The same values as `a` through another memory layout."""
    if how == "transposed":
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    if how == "every_other":
        big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if how == "reversed_rows" and a.ndim >= 2:
        rev = np.ascontiguousarray(a[..., ::-1, :])
        return rev[..., ::-1, :]
    return a


@settings(max_examples=60, deadline=None)
@given(batch=st.sampled_from([(), (1,), (2,), (2, 3)]), m=st.integers(0, 40), n=st.integers(0, 70),
       k=st.integers(0, 300), adt=DTYPES, bdt=DTYPES, extremes=st.booleans(), zb_per_col=st.booleans(),
       packed=st.booleans(), layout=st.sampled_from(["c", "transposed", "every_other", "reversed_rows"]),
       seed=st.integers(0, 2**32 - 1))
def test_property_matmul_per_row_zero_point(batch, m, n, k, adt, bdt, extremes, zb_per_col, packed, layout, seed):
    rng = np.random.default_rng(seed)
    a = strided(rng, rand_q(rng, batch + (m, k), adt), layout)
    b = rand_q(rng, (k, n), bdt)
    za = zero_points(rng, batch + (m,), adt, extremes)
    zb = zero_points(rng, (n,) if zb_per_col else (), bdt, extremes)
    rhs = qgemm.pack(b, zb) if packed else b
    c = qgemm.matmul(a, rhs, za, None if packed else zb)
    assert c.dtype == np.int32 and c.shape == batch + (m, n)
    np.testing.assert_array_equal(c, exact_matmul_int32(a, b, za, zb))


def test_per_row_zero_point_on_a_vector_and_with_equal_rows(rng):
    b = rand_q(rng, (50, 9), "int8")
    v = rand_q(rng, 50, "uint8")
    # a (K,) has rows_shape (): a 0-d array is its one zero point
    np.testing.assert_array_equal(qgemm.matmul(v, b, np.array(200)), qgemm.matmul(v, b, 200))
    a = rand_q(rng, (4, 7, 50), "uint8")
    np.testing.assert_array_equal(qgemm.matmul(a, b, np.full((4, 7), 13)), qgemm.matmul(a, b, 13))


def test_large_per_row_all_kernels_paths(rng):
    # K blocks (int32 output accumulates into C), M blocks, thread splits, 7-bit A
    for m, n, k, hi in ((300, 77, 4500, 255), (5, 700, 3000, 127), (600, 64, 1024, 127)):
        a = rng.integers(0, hi + 1, (m, k)).astype(np.uint8)
        b = rand_q(rng, (k, n), "int8")
        za = rng.integers(0, 256, m)
        zb = rand_q(rng, n, "int8")
        np.testing.assert_array_equal(qgemm.matmul(a, qgemm.pack(b, zb), za), exact_matmul_int32(a, b, za, zb))


def ref_float_out(acc, sa_rows, sb, bias=None):
    """float32 out: acc * float32(sa[i] * sb[j]) + bias[j], in that order, in float32."""
    v = acc.astype(np.float32) * (sa_rows[..., None].astype(np.float32) * sb.astype(np.float32))
    return v if bias is None else v + bias.astype(np.float32)


def ref_requant(acc, sa_rows, sb, ys, zy, lo, hi, bias=None):
    """Float requant, the per-tensor formula element by element in float32."""
    ab = sa_rows[..., None].astype(np.float32) * sb.astype(np.float32)
    mult = ab / np.float32(ys)
    v = acc.astype(np.float32)
    if bias is not None:
        v = v + bias.astype(np.float32) / ab
    v = v * mult
    lo_f, hi_f = np.float32(lo - zy), np.float32(hi - zy)
    return (np.rint(np.clip(v, lo_f, hi_f)).astype(np.int64) + zy)


@settings(max_examples=60, deadline=None)
@given(batch=st.sampled_from([(), (3,)]), m=st.integers(1, 30), n=st.integers(1, 70), k=st.integers(0, 200),
       adt=DTYPES, bdt=DTYPES, out=st.sampled_from(["float32", "int8", "uint8"]), bias=st.booleans(),
       per_col=st.booleans(), extremes=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_qlinear_matmul_per_row(batch, m, n, k, adt, bdt, out, bias, per_col, extremes, seed):
    rng = np.random.default_rng(seed)
    a = rand_q(rng, batch + (m, k), adt)
    b = rand_q(rng, (k, n), bdt)
    za = zero_points(rng, batch + (m,), adt, extremes)
    zb = zero_points(rng, (n,) if per_col else (), bdt, extremes)
    sa = rng.uniform(1e-3, 1e-1, batch + (m,)).astype(np.float32)
    sb = rng.uniform(1e-3, 1e-1, n if per_col else ()).astype(np.float32)
    sbv = np.broadcast_to(sb, (n,))
    fb = rng.normal(0, 2, n).astype(np.float32) if bias else None
    acc = exact_matmul_int32(a, b, za, zb)
    if out == "float32":
        y = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, None, None, bias=fb, out_dtype="float32")
        np.testing.assert_array_equal(y, ref_float_out(acc, sa, sbv, fb))
        return
    ys, zy = float(rng.uniform(0.05, 2.0)), int(rng.integers(*QR[out]))
    y = qgemm.qlinear_matmul(a, sa, za, b, sb, zb, ys, zy, bias=fb, out_dtype=out)
    want = ref_requant(acc, sa, sbv, ys, zy, *QR[out], bias=fb)
    np.testing.assert_array_equal(y.astype(np.int64), want)
    # per-row is the per-tensor call applied to each row
    rows = a.reshape(int(np.prod(a.shape[:-1])), k)
    for r in range(0, rows.shape[0], max(1, rows.shape[0] // 3)):
        one = qgemm.qlinear_matmul(rows[r:r + 1], sa.reshape(-1)[r], int(za.reshape(-1)[r]), b, sb, zb, ys, zy,
                                   bias=fb, out_dtype=out)
        np.testing.assert_array_equal(one[0], y.reshape(-1, n)[r])


@pytest.mark.parametrize("out", ["float32", "int8"])
def test_equal_per_row_parameters_equal_per_tensor(rng, out):
    a, b = rand_q(rng, (2, 9, 70), "uint8"), rand_q(rng, (70, 40), "int8")
    sb = rng.uniform(1e-3, 1e-2, 40).astype(np.float32)
    fb = rng.normal(size=40).astype(np.float32)
    per_tensor = qgemm.qlinear_matmul(a, 0.037, 131, b, sb, 3, 0.4, -7, bias=fb, out_dtype=out)
    per_row = qgemm.qlinear_matmul(a, np.full((2, 9), 0.037), np.full((2, 9), 131), b, sb, 3, 0.4, -7, bias=fb,
                                   out_dtype=out)
    np.testing.assert_array_equal(per_row, per_tensor)


def test_fixed_point_takes_per_row_zero_points_but_refuses_per_row_scales(rng):
    a, b = rand_q(rng, (6, 30), "int8"), rand_q(rng, (30, 5), "int8")
    za = rng.integers(-128, 128, 6)
    y = qgemm.qlinear_matmul(a, 0.02, za, b, 0.01, 0, 0.1, 0, requant="fixed_point")
    rows = [qgemm.qlinear_matmul(a[i:i + 1], 0.02, int(za[i]), b, 0.01, 0, 0.1, 0, requant="fixed_point")
            for i in range(6)]
    np.testing.assert_array_equal(y, np.concatenate(rows))
    with pytest.raises(ValueError, match="fixed_point.*per-tensor a_scale"):
        qgemm.qlinear_matmul(a, np.full(6, 0.02), za, b, 0.01, 0, 0.1, 0, requant="fixed_point")
    # float32 output never uses the fixed-point multiplier: per-row scales are fine there
    qgemm.qlinear_matmul(a, np.full(6, 0.02), za, b, 0.01, 0, None, None, requant="fixed_point",
                         out_dtype="float32")


def test_requantize_per_row_multiplier(rng):
    acc = rng.integers(-2**20, 2**20, (2, 5, 33)).astype(np.int32)
    mult = rng.uniform(1e-5, 1e-3, (2, 5, 1))
    y = qgemm.requantize(acc, mult, zero_point=-3, dtype="int8")
    want = np.clip(np.rint(acc.astype(np.float32) * mult.astype(np.float32)) - 3, -128, 127)
    np.testing.assert_array_equal(y, want.astype(np.int8))
    # one row: the per-tensor call with that row's multiplier
    np.testing.assert_array_equal(y[1, 2], qgemm.requantize(acc[1, 2], float(mult[1, 2, 0]), -3, "int8"))
    with pytest.raises(ValueError, match="per-row multiplier needs requant='float'"):
        qgemm.requantize(acc, mult, requant="fixed_point")
    with pytest.raises(ValueError, match="one per row"):
        qgemm.requantize(acc, mult[..., :3, :])


def test_bad_per_row_arguments(rng):
    a, b = rand_q(rng, (2, 4, 10), "uint8"), rand_q(rng, (10, 3), "int8")
    with pytest.raises(ValueError, match=r"a_zero_point.*shape \(2, 4\)"):
        qgemm.matmul(a, b, np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="a_zero_point must lie in"):
        qgemm.matmul(a, b, np.full((2, 4), 256))
    with pytest.raises(TypeError, match="a_zero_point"):
        qgemm.matmul(a, b, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="a_scale.*shape"):
        qgemm.qlinear_matmul(a, np.ones(4), 0, b, 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="a_scale must be finite and > 0"):
        qgemm.qlinear_matmul(a, np.zeros((2, 4)), 0, b, 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="float32's finite normal range"):
        qgemm.qlinear_matmul(a, np.full((2, 4), 1e30), 0, b, 1e30, 0, None, None, out_dtype="float32")
