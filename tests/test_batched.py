"""Both operands at run time with batch dimensions (attention's Q @ K^T and
P @ V): np.matmul's broadcasting, zero points broadcast over the batch,
exact against an int64 reference and equal to item-by-item calls."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qgemm
from reference import QR, exact_matmul, rand_q, run_onnx_node


SHAPES = [
    ((12, 128, 64), (12, 64, 128)),   # attention's Q @ K^T, 12 heads
    ((12, 128, 128), (12, 128, 64)),  # P @ V
    ((3, 1, 5, 7), (4, 7, 6)),        # batch dimensions broadcast both ways
    ((5, 7), (2, 3, 7, 4)),           # a 2-D a against a batch of b
    ((7,), (3, 7, 4)),                # a 1-D a: np.matmul drops its M
    ((2, 0, 5), (2, 5, 3)),           # no rows
    ((2, 3, 0), (2, 0, 4)),           # K = 0
    ((0, 3, 5), (1, 5, 2)),           # no items
    ((1, 40, 300), (6, 300, 33)),     # a broadcast over many items of b
]


@pytest.mark.parametrize("ashape,bshape", SHAPES)
@pytest.mark.parametrize("adt,bdt", [(np.int8, np.int8), (np.uint8, np.int8), (np.uint8, np.uint8),
                                     (np.int8, np.uint8)])
def test_batched_matmul_is_exact_and_broadcasts_like_numpy(rng, ashape, bshape, adt, bdt):
    a, b = rand_q(rng, ashape, adt), rand_q(rng, bshape, bdt)
    za = int(rng.integers(*QR[adt]))
    zb = int(rng.integers(*QR[bdt]))
    c = qgemm.matmul(a, b, za, zb)
    expect = exact_matmul(a, b, za, zb)
    assert c.dtype == np.int32 and c.shape == expect.shape
    np.testing.assert_array_equal(c, expect)


def test_batched_zero_points_per_row_and_per_column(rng):
    a = rand_q(rng, (2, 3, 9, 50), np.uint8)
    b = rand_q(rng, (3, 50, 11), np.int8)
    za = rng.integers(0, 256, (2, 3, 9)).astype(np.int32)    # one per row of a
    zb = rng.integers(-128, 128, 11).astype(np.int32)       # one per column, every item
    np.testing.assert_array_equal(qgemm.matmul(a, b, za, zb), exact_matmul(a, b, za, zb))
    # a broadcast over b's items: its per-row zero points go with it
    a2, za2 = a[0, 0], za[0, 0]
    np.testing.assert_array_equal(qgemm.matmul(a2, b, za2, zb), exact_matmul(a2, b, za2, zb))


def test_batched_operands_take_any_strides(rng):
    base_a = rand_q(rng, (4, 20, 70), np.int8)
    base_b = rand_q(rng, (4, 80, 30), np.uint8)
    a = base_a[::-1, ::2, 3:67]        # negative batch stride, row step, offset
    b = np.swapaxes(base_b, 1, 2)[:, :, 5:69][..., ::-1].transpose(0, 2, 1)[:, :, :25]  # K x N, odd strides
    assert a.shape[-1] == b.shape[-2]
    np.testing.assert_array_equal(qgemm.matmul(a, b, 1, 2), exact_matmul(a, b, 1, 2))


def test_batched_equals_item_by_item_calls(rng):
    a = rand_q(rng, (5, 33, 48), np.uint8)
    b = rand_q(rng, (5, 48, 40), np.int8)
    batched = qgemm.matmul(a, b, 7, -3)
    for i in range(5):
        np.testing.assert_array_equal(batched[i], qgemm.matmul(a[i], b[i], 7, -3))
    sb = rng.uniform(0.01, 0.1, 40).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    for kw in ({"out_dtype": "int8"}, {"out_dtype": "float32"}, {"requant": "fixed_point"}):
        bias_kw = bias if kw.get("requant") != "fixed_point" else rng.integers(-900, 900, 40).astype(np.int32)
        y = qgemm.qlinear_matmul(a, 0.05, 7, b, sb, -3, 0.7, 4, bias=bias_kw, activation="relu", **kw)
        for i in range(5):
            yi = qgemm.qlinear_matmul(a[i], 0.05, 7, b[i], sb, -3, 0.7, 4, bias=bias_kw, activation="relu", **kw)
            np.testing.assert_array_equal(y[i], yi)


@pytest.mark.parametrize("threads", [1, 2, 3, 5, 8])
def test_batched_items_split_over_any_thread_count(rng, threads):
    # Items go to the threads in contiguous ranges, and a thread that is done
    # takes what is left of the others': every item exactly once, whatever
    # the count of items and threads (more threads than cores: ranges are stolen).
    old = qgemm.get_num_threads()
    try:
        qgemm.set_num_threads(threads)
        for items in (threads, threads + 1, 3 * threads + 2, 23):
            a = rand_q(rng, (items, 9, 20), np.uint8)
            b = rand_q(rng, (items, 20, 13), np.int8)
            np.testing.assert_array_equal(qgemm.matmul(a, b, 5, -2), exact_matmul(a, b, 5, -2))
    finally:
        qgemm.set_num_threads(old)


def test_batched_qlinear_matmul_per_row_activation_parameters(rng):
    a = rand_q(rng, (3, 10, 32), np.uint8)
    b = rand_q(rng, (3, 32, 16), np.int8)
    sa = rng.uniform(0.01, 0.1, (3, 10)).astype(np.float32)
    za = rng.integers(0, 256, (3, 10)).astype(np.int32)
    y = qgemm.qlinear_matmul(a, sa, za, b, 0.02, 0, None, None, out_dtype="float32")
    for i in range(3):
        yi = qgemm.qlinear_matmul(a[i], sa[i], za[i], b[i], 0.02, 0, None, None, out_dtype="float32")
        np.testing.assert_array_equal(y[i], yi)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_batched_matmul(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    m, k, n = (data.draw(st.integers(0, 40)) for _ in range(3))
    lead_a = tuple(data.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2)))
    lead_b = tuple(data.draw(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=2)))
    # make the two leading shapes broadcastable: where both have a dimension, one of them is 1 or equal
    la, lb = list(lead_a), list(lead_b)
    for i in range(1, min(len(la), len(lb)) + 1):
        if la[-i] != lb[-i] and 1 not in (la[-i], lb[-i]):
            lb[-i] = la[-i]
    adt = data.draw(st.sampled_from([np.int8, np.uint8]))
    bdt = data.draw(st.sampled_from([np.int8, np.uint8]))
    a, b = rand_q(rng, tuple(la) + (m, k), adt), rand_q(rng, tuple(lb) + (k, n), bdt)
    za = int(rng.integers(*QR[adt]))
    zb = rng.integers(*QR[bdt], n).astype(np.int32) if data.draw(st.booleans()) else int(rng.integers(*QR[bdt]))
    np.testing.assert_array_equal(qgemm.matmul(a, b, za, zb), exact_matmul(a, b, za, zb))


def test_batched_matches_onnx_runtime_matmul_integer(rng):
    pytest.importorskip("onnxruntime")
    for adt in (np.uint8, np.int8):
        a = rand_q(rng, (12, 32, 64), adt)
        if adt == np.uint8:
            a = a // 2  # 7 bits: exact on every ONNX Runtime path
        b = rand_q(rng, (12, 64, 48), np.int8)
        za, zb = np.array(3, adt), np.array(-2, np.int8)
        ort = run_onnx_node("MatMulInteger", {"a": a, "b": b}, {"za": za, "zb": zb}, np.int32)
        np.testing.assert_array_equal(qgemm.matmul(a, b, int(za), int(zb)), ort)


def test_batched_bad_input():
    a = np.ones((2, 3, 4), np.int8)
    with pytest.raises(ValueError, match="do not broadcast"):
        qgemm.matmul(a, np.ones((3, 4, 5), np.int8))
    with pytest.raises(ValueError, match="disagree on K"):
        qgemm.matmul(a, np.ones((2, 5, 5), np.int8))
    with pytest.raises(ValueError, match="b_zero_point"):
        qgemm.matmul(a, np.ones((2, 4, 5), np.int8), 0, [1, 2])
    with pytest.raises(TypeError, match="b must be an int8 or uint8"):
        qgemm.matmul(a, np.ones((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match="a_zero_point"):
        qgemm.matmul(a, np.ones((2, 4, 5), np.int8), np.zeros((2, 2), np.int32))


def test_batched_out_overlapping_an_operand(rng):
    buf = np.zeros(4 * 6 * 6, np.int32)
    a = buf.view(np.int8)[: 4 * 6 * 8].reshape(4, 6, 8)
    a[...] = rand_q(rng, a.shape, np.int8)
    b = rand_q(rng, (4, 8, 6), np.int8)
    expect = exact_matmul(a, b)
    out = buf.reshape(4, 6, 6)
    np.testing.assert_array_equal(qgemm.matmul(a, b, out=out), expect)
