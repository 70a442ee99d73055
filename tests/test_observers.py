"""Observers: MinMax and MovingAverageMinMax against PyTorch's, the clipping
observers on heavy tails, per-channel ranges and errors; the Entropy algorithm
against an independent NumPy version; the NaN / infinity / empty rule shared
with choose_qparams."""

import numpy as np
import pytest

import qgemm
from qgemm import observers as ob


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_minmax_and_moving_average_match_torch(rng, axis):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization.observer import (MinMaxObserver, MovingAverageMinMaxObserver,
                                                MovingAveragePerChannelMinMaxObserver,
                                                PerChannelMinMaxObserver)
    batches = [(rng.standard_normal((8, 12)) * (i + 1) + i).astype(np.float32) for i in range(5)]
    for ours, theirs in [
        (ob.MinMax(axis=axis),
         MinMaxObserver(dtype=torch.quint8) if axis is None else PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.quint8)),
        (ob.MovingAverageMinMax(0.01, axis=axis),
         MovingAverageMinMaxObserver(averaging_constant=0.01, dtype=torch.quint8) if axis is None
         else MovingAveragePerChannelMinMaxObserver(averaging_constant=0.01, ch_axis=axis, dtype=torch.quint8)),
    ]:
        for b in batches:
            ours.update(b)
            theirs(torch.from_numpy(b))
        lo, hi = ours.range()
        np.testing.assert_array_equal(lo.reshape(-1), theirs.min_val.numpy().reshape(-1))
        np.testing.assert_array_equal(hi.reshape(-1), theirs.max_val.numpy().reshape(-1))
        qp = ours.qparams("uint8")
        s, z = theirs.calculate_qparams()
        np.testing.assert_array_equal(np.asarray(qp.scale).reshape(-1), s.numpy().reshape(-1))
        np.testing.assert_array_equal(np.asarray(qp.zero_point).reshape(-1), z.numpy().reshape(-1))


def heavy_tailed(rng, n=200_000):
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.choice(n, 20, replace=False)] = rng.choice([-1, 1], 20) * rng.uniform(200, 1000, 20)
    return x


# Entropy is not in this test: on this data TensorRT's criterion keeps part of the
# tail (piling 20 outliers into the last bin diverges more than merging the
# bulk's bins); test_entropy_matches_an_independent_tensorrt_implementation
# (below) checks it against an independent version.
@pytest.mark.parametrize("cls", [ob.Percentile])
def test_clipping_observers_clip_outliers(rng, cls):
    x = heavy_tailed(rng)
    mm = ob.MinMax()
    clip = cls()
    for part in np.array_split(x, 7):  # streaming, the range grows batch by batch
        mm.update(part)
        clip.update(part)
    lo, hi = clip.range()
    mlo, mhi = mm.range()
    assert hi[0] < 0.1 * mhi[0] and lo[0] > 0.1 * mlo[0], (lo, hi, mlo, mhi)
    assert hi[0] > 2.0 and lo[0] < -2.0  # but keeps the bulk of N(0, 1)
    bulk = x[np.abs(x) < 5]

    def mse(o):
        qp = o.qparams("int8", symmetric=True)
        q = qgemm.quantize(bulk, qp.scale, qp.zero_point)
        return np.mean((qgemm.dequantize(q, qp.scale, qp.zero_point) - bulk) ** 2)

    assert mse(clip) < 0.05 * mse(mm)


def test_mse_observer_clips_a_heavy_tail_to_lower_error(rng):
    x = rng.laplace(size=200_000).astype(np.float32)
    mm, mse = ob.MinMax(), ob.MSE()
    for part in np.array_split(x, 5):
        mm.update(part)
        mse.update(part)
    assert mse.range()[1][0] < 0.9 * mm.range()[1][0]

    def err(o):
        qp = o.qparams("int8")
        return np.mean((qgemm.dequantize(qgemm.quantize(x, qp.scale, qp.zero_point), qp.scale, qp.zero_point) - x) ** 2)

    assert err(mse) < 0.9 * err(mm)


def test_observer_per_channel_and_errors(rng):
    x = rng.standard_normal((4, 100)).astype(np.float32) * np.arange(1, 5, dtype=np.float32)[:, None]
    o = ob.Percentile(99.0, axis=0).update(x)
    qp = o.qparams("int8", symmetric=True)
    assert qp.axis == 0 and np.asarray(qp.scale).shape == (4,)
    assert np.all(np.diff(qp.scale) > 0)  # wider channels get wider ranges
    with pytest.raises(ValueError, match="channels"):
        o.update(np.zeros((3, 10), np.float32))
    with pytest.raises(RuntimeError, match="no data"):
        ob.MinMax().qparams()
    with pytest.raises(TypeError, match="x"):
        ob.MinMax().update(np.zeros(3, np.int8))


def tensorrt_entropy_threshold(mag, bin_width, levels, candidates):
    """TensorRT's entropy calibration written out plainly, for |x| bins `mag`:
    for i bins, P = bins[0:i] with the outliers sum(bins[i:]) added to P[i-1];
    Q = bins[0:i] (before the outliers) merged into `levels` groups of i // levels
    bins (the last takes the rest), each group's sum spread evenly over its
    non-zero bins; the threshold minimizes KL(P || Q) and is (i + 0.5) bins."""
    divergence = {}
    for i in candidates:
        ref = [float(v) for v in mag[:i]]
        outliers = float(mag[i:].sum())
        p = list(ref)
        p[i - 1] += outliers
        q = [0.0] * i
        merged = i // levels
        for g in range(levels):
            start = g * merged
            stop = i if g == levels - 1 else start + merged
            total = sum(ref[start:stop])
            nonzero = [j for j in range(start, stop) if ref[j] != 0]
            for j in nonzero:
                q[j] = total / len(nonzero)
        sp, sq = sum(p), sum(q)
        if sq == 0:
            continue
        kl = 0.0
        for pj, qj in zip(p, q):
            if pj == 0:
                continue
            if qj == 0:
                kl = np.inf
                break
            kl += (pj / sp) * np.log((pj / sp) / (qj / sq))
        divergence[i] = kl
    best = min(divergence, key=lambda i: (divergence[i], i))
    return (best + 0.5) * bin_width


def data(kind, rng, n=100_000):
    if kind == "uniform":
        x = rng.uniform(-1, 1, n)
    elif kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "laplace":
        x = rng.laplace(size=n)
    else:  # bimodal
        x = np.concatenate([rng.normal(-3, 0.5, n // 2), rng.normal(3, 0.5, n - n // 2)])
    return x.astype(np.float32)


@pytest.mark.parametrize("kind", ["uniform", "normal", "laplace", "bimodal"])
def test_entropy_matches_an_independent_tensorrt_implementation(rng, kind):
    x = data(kind, rng)
    o = ob.Entropy(bins=1024, levels=128)
    for part in np.array_split(x, 4):
        o.update(part)
    h = o._hist[0]
    mag = h[512:] + h[:512][::-1]                     # the histogram folded onto |x|
    assert mag.sum() == x.size
    candidates = range(128, 512 + 1)                   # every threshold (stride 1 at this size)
    t = tensorrt_entropy_threshold(mag, o._bound[0] / 512, 128, candidates)
    lo, hi = o.range()
    assert hi[0] == np.float32(min(t, x.max())) and lo[0] == np.float32(max(-t, x.min()))


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_entropy_clips_little_of_uniform_and_normal_data(rng, kind):
    # The broken version kept Q equal to P at the last candidate: it chose
    # (-0.031, 0.031) for Uniform[-1, 1], clipping 97% of it.
    x = data(kind, rng, 200_000)
    o = ob.Entropy()
    for part in np.array_split(x, 5):
        o.update(part)
    lo, hi = o.range()
    clipped = np.mean((x < lo[0]) | (x > hi[0]))
    assert clipped <= 0.001, (lo, hi, clipped)
    assert hi[0] >= 0.9 * x.max()


OBSERVERS = [ob.MinMax, ob.MovingAverageMinMax, ob.Percentile, ob.Entropy, ob.MSE]


@pytest.mark.parametrize("cls", OBSERVERS)
@pytest.mark.parametrize("axis", [None, 0])
def test_nan_is_ignored(rng, cls, axis):
    batches = [rng.standard_normal((3, 400)).astype(np.float32) * (i + 1) for i in range(3)]
    clean, holes = cls(axis=axis), cls(axis=axis)
    for b in batches:
        clean.update(b)
        h = np.concatenate([b, np.full((3, 17), np.nan, np.float32)], axis=1)
        holes.update(h[:, rng.permutation(h.shape[1])])
    np.testing.assert_array_equal(holes.range()[0], clean.range()[0])
    np.testing.assert_array_equal(holes.range()[1], clean.range()[1])
    assert holes.qparams() == clean.qparams()


@pytest.mark.parametrize("cls", OBSERVERS)
def test_no_finite_value_is_an_error(cls):
    o = cls().update(np.full(5, np.nan, np.float32))
    with pytest.raises(ValueError, match="no finite value"):
        o.qparams()
    o.update(np.array([1.0, -2.0], np.float32))       # the first finite values make a range
    assert o.qparams().scale > 0
    with pytest.raises(ValueError, match="no finite value"):
        cls().update(np.zeros(0, np.float32)).qparams()
    per_channel = cls(axis=0).update(np.array([[1, 2], [np.nan, np.nan]], np.float32))
    with pytest.raises(ValueError, match="channel 1"):
        per_channel.qparams()


@pytest.mark.parametrize("cls", OBSERVERS)
def test_infinity_is_refused(cls):
    with pytest.raises(ValueError, match="infinity"):
        cls().update(np.array([1.0, np.inf], np.float32))
    with pytest.raises(ValueError, match="infinity"):
        cls(axis=0).update(np.array([[1.0, 2.0], [-np.inf, 0.0]], np.float32))


@pytest.mark.parametrize("cls", OBSERVERS)
def test_zero_size_batches(cls):
    o = cls(axis=1).update(np.zeros((3, 0), np.float32))   # zero channels: empty parameters
    qp = o.qparams()
    assert qp.axis == 1 and qp.scale.shape == (0,) and qp.zero_point.shape == (0,)
    o = cls(axis=0).update(np.zeros((3, 0), np.float32))   # three channels, no values yet
    o.update(np.ones((3, 2), np.float32))
    assert o.qparams().scale.shape == (3,)


def test_moving_average_of_bounds_further_apart_than_float32_stays_finite():
    o = ob.MovingAverageMinMax(0.5)
    o.update(np.array([-3e38], np.float32)).update(np.array([3e38], np.float32))
    lo, hi = o.range()
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    np.testing.assert_allclose(lo, [0.0], atol=1e32)
