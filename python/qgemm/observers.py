"""Calibration observers: watch batches of real data (``update``), then choose
quantization parameters (``qparams``).

* :class:`MinMax` and :class:`MovingAverageMinMax` track the range (equal to
  PyTorch's ``MinMaxObserver`` / ``MovingAverageMinMaxObserver`` and their
  per-channel versions on the same data).
* :class:`Percentile`, :class:`Entropy` and :class:`MSE` keep a histogram and
  clip outliers: the range that keeps a percentile of the mass, that minimizes
  the KL divergence between the data and its quantized form (TensorRT's
  calibration), or that minimizes the quantization mean squared error.

All take ``axis`` for per-channel statistics (one range per slice along it).

NaN and infinity follow :func:`qgemm.choose_qparams`: NaN values are ignored,
an infinite value makes ``update`` raise ValueError (no finite scale
represents it), and ``range``/``qparams`` raise ValueError for a channel that
has seen no finite value yet (no data, empty batches or all NaN).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from . import _checks
from .quantization import QParams, qparams_from_range


def _per_channel(x: Any, axis: Optional[int]) -> Tuple[np.ndarray, Optional[int]]:
    """x as float32 (channels, values) and the normalized axis."""
    a = _checks.float_array(x, "x")
    ax = _checks.normalize_axis(axis, a.ndim)
    a = a.astype(np.float32, copy=False)
    if ax is None:
        return a.reshape(1, a.size), None
    rest = math.prod(a.shape[:ax] + a.shape[ax + 1:])  # not -1: that fails on zero channels
    return np.moveaxis(a, ax, 0).reshape(a.shape[ax], rest), ax


class Observer:
    """Base class: ``update(x)`` with batches, then ``qparams(...)``."""

    def __init__(self, axis: Optional[int] = None):
        self.axis = axis
        self._axis: Optional[int] = None  # normalized on first update
        self._channels: Optional[int] = None
        self._counts: Optional[np.ndarray] = None  # finite values seen per channel

    def update(self, x: Any) -> "Observer":
        rows, ax = _per_channel(x, self.axis)
        if self._channels is not None and rows.shape[0] != self._channels:
            raise ValueError(f"x has {rows.shape[0]} channels along axis {self.axis}, "
                             f"earlier batches had {self._channels}")
        if np.isinf(rows).any():
            raise ValueError("x contains infinity: no finite scale represents it")
        if self._channels is None:
            self._channels, self._axis = rows.shape[0], ax
            self._counts = np.zeros(rows.shape[0], np.int64)
        finite = np.count_nonzero(~np.isnan(rows), axis=1)
        if finite.any():
            self._counts += finite
            self._update(rows)
        return self

    __call__ = update

    @property
    def has_data(self) -> bool:
        """True once a batch has been observed (even one of only NaN)."""
        return self._channels is not None

    def range(self) -> Tuple[np.ndarray, np.ndarray]:
        """The (min, max) chosen so far, one value per channel."""
        if self._channels is None:
            raise RuntimeError("no data observed yet: call update(x) first")
        empty = np.flatnonzero(self._counts == 0)
        if empty.size:
            where = "" if self._axis is None else f" in channel {int(empty[0])} along axis {self._axis}"
            raise ValueError(f"no finite value observed{where} (no values, or all NaN): "
                             "there is no range to choose parameters from")
        return self._range()

    def qparams(self, dtype: Any = "int8", symmetric: bool = False, reduce_range: bool = False) -> QParams:
        lo, hi = self.range()
        if self._axis is None:
            lo, hi = lo[0], hi[0]
        return qparams_from_range(lo, hi, dtype, symmetric, reduce_range, self._axis)

    def _update(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _range(self) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class MinMax(Observer):
    """The running minimum and maximum (NaN ignored)."""

    def __init__(self, axis: Optional[int] = None):
        super().__init__(axis)
        self._lo = self._hi = None

    def _update(self, rows: np.ndarray) -> None:
        lo, hi = _nan_minmax(rows)
        self._lo = lo if self._lo is None else np.fmin(self._lo, lo)
        self._hi = hi if self._hi is None else np.fmax(self._hi, hi)

    def _range(self):
        if self._lo is None:  # only with zero channels: every channel has seen a value
            z = np.zeros(self._channels, np.float32)
            return z, z
        return self._lo, self._hi


class MovingAverageMinMax(MinMax):
    """An exponential moving average of each batch's min and max:
    ``min += averaging_constant * (batch_min - min)`` (the first batch sets them)."""

    def __init__(self, averaging_constant: float = 0.01, axis: Optional[int] = None):
        super().__init__(axis)
        if not 0 < averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant!r}")
        self.averaging_constant = np.float32(averaging_constant)

    def _update(self, rows: np.ndarray) -> None:
        lo, hi = _nan_minmax(rows)
        if self._lo is None:
            self._lo, self._hi = lo, hi
        else:
            self._lo = _moving_average(self._lo, lo, self.averaging_constant)
            self._hi = _moving_average(self._hi, hi, self.averaging_constant)


def _moving_average(old: np.ndarray, new: np.ndarray, c: np.float32) -> np.ndarray:
    """``old + c * (new - old)`` in float32 (PyTorch's arithmetic); in float64 where
    ``new - old`` overflows float32; a channel with no value yet (NaN) on either
    side keeps the other side."""
    with np.errstate(over="ignore", invalid="ignore"):
        avg = (old + c * (new - old)).astype(np.float32)
        wide = np.isinf(avg)
        if wide.any():  # two finite bounds more than float32's range apart
            avg[wide] = (old[wide].astype(np.float64)
                         + np.float64(c) * (new[wide].astype(np.float64) - old[wide])).astype(np.float32)
    return np.where(np.isnan(old), new, np.where(np.isnan(new), old, avg))


def _nan_minmax(rows: np.ndarray):
    with np.errstate(all="ignore"):
        return (np.fmin.reduce(rows, axis=1).astype(np.float32),
                np.fmax.reduce(rows, axis=1).astype(np.float32))


class _Histogram(Observer):
    """A per-channel histogram over [-bound, bound] that doubles its bound (merging
    bin pairs) when data falls outside, so batches stream in any order."""

    def __init__(self, bins: int = 2048, axis: Optional[int] = None):
        super().__init__(axis)
        if bins < 16 or bins % 2:
            raise ValueError(f"bins must be an even number >= 16, got {bins!r}")
        self.bins = bins
        self._hist: Optional[np.ndarray] = None  # (channels, bins) over [-bound, bound]
        self._bound: Optional[np.ndarray] = None

    def _update(self, rows: np.ndarray) -> None:
        lo, hi = _nan_minmax(rows)
        need = np.nan_to_num(np.maximum(np.abs(lo), np.abs(hi)))
        if self._hist is None:
            self._hist = np.zeros((rows.shape[0], self.bins), np.float64)
            self._bound = np.where(need > 0, need, np.float32(1e-8)).astype(np.float64)
            self._lo, self._hi = lo, hi
        else:
            self._lo, self._hi = np.fmin(self._lo, lo), np.fmax(self._hi, hi)
        for c in range(rows.shape[0]):
            while need[c] > self._bound[c]:  # double the range: pairs of bins merge toward the centre
                h = self._hist[c]
                half = self.bins // 2
                merged = h.reshape(-1, 2).sum(axis=1)   # bins of twice the width
                h[:] = 0
                h[half // 2: half // 2 + half] = merged
                self._bound[c] *= 2
            v = rows[c][~np.isnan(rows[c])]
            idx = np.clip(((v / self._bound[c] + 1) * (self.bins / 2)).astype(np.int64), 0, self.bins - 1)
            self._hist[c] += np.bincount(idx, minlength=self.bins)

    def _edges(self, c: int) -> np.ndarray:
        return np.linspace(-self._bound[c], self._bound[c], self.bins + 1)

    def _range(self):
        if self._hist is None:
            z = np.zeros(self._channels, np.float32)
            return z, z
        lo = np.zeros(self._channels, np.float32)
        hi = np.zeros(self._channels, np.float32)
        for c in range(self._channels):
            l, h = self._channel_range(c)
            lo[c] = max(l, self._lo[c])  # never wider than the data
            hi[c] = min(h, self._hi[c])
        return lo, hi

    def _channel_range(self, c: int) -> Tuple[float, float]:
        raise NotImplementedError


class Percentile(_Histogram):
    """Clips to the [100 - p, p] percentiles of the data (p = 99.99 by default)."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048, axis: Optional[int] = None):
        super().__init__(bins, axis)
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
        self.percentile = float(percentile)

    def _channel_range(self, c: int):
        h = self._hist[c]
        total = h.sum()
        if total == 0:
            return 0.0, 0.0
        cdf = np.cumsum(h) / total
        edges = self._edges(c)
        q = self.percentile / 100
        lo = edges[np.searchsorted(cdf, 1 - q, side="left")]
        hi = edges[min(np.searchsorted(cdf, q, side="left") + 1, self.bins)]
        return float(lo), float(hi)


def _magnitudes(h: np.ndarray) -> np.ndarray:
    """A symmetric histogram folded onto |x|: bins of [0, bound]."""
    half = h.shape[0] // 2
    return h[half:] + h[:half][::-1]


class Entropy(_Histogram):
    """TensorRT's entropy calibration: the symmetric threshold whose 8-bit
    quantization of the |x| histogram loses the least information.

    For each candidate threshold, i bins of the |x| histogram: the reference
    P is those i bins with every count beyond them (the outliers) added to the
    last one; the candidate Q is the same i bins *before* the outliers are
    added, merged into ``levels`` groups (``i // levels`` bins each, the last
    group taking the remainder) and each group's count spread evenly over its
    non-empty bins. The threshold minimizes KL(P || Q) (infinite, so never
    chosen, where P has mass and Q none), and is ``(i + 0.5)`` bin widths.
    """

    def __init__(self, bins: int = 8192, levels: int = 128, axis: Optional[int] = None):
        # Fine bins: the smallest threshold it can choose is levels / (bins / 2) of the range.
        super().__init__(bins, axis)
        if not 2 <= levels <= bins // 2:
            raise ValueError(f"levels must be in [2, bins / 2], got {levels!r}")
        self.levels = levels

    def _channel_range(self, c: int):
        mag = _magnitudes(self._hist[c])
        t = (_min_kl_bins(mag, self.levels) + 0.5) * (self._bound[c] / mag.shape[0])
        return -t, t


def _min_kl_bins(mag: np.ndarray, levels: int) -> int:
    """The number of |x| bins, i, that minimizes KL(P_i || Q_i) (see :class:`Entropy`);
    at most ~1024 candidates, evenly spaced, from ``levels`` to ``len(mag)``."""
    n = mag.shape[0]
    stride = max(1, (n - levels) // 1024)
    tail = np.concatenate((np.cumsum(mag[::-1])[::-1], [0.0]))  # tail[i] = mag[i:].sum()
    best_kl, best_i = np.inf, n
    for i in range(levels, n + 1, stride):
        kept = mag[:i]
        if kept[-1] == 0 and tail[i] > 0:
            continue  # P has the outliers in its last bin, Q nothing there: KL is infinite
        p = kept.copy()
        p[-1] += tail[i]
        width = i // levels
        sizes = np.full(levels, width)
        sizes[-1] = i - width * (levels - 1)
        starts = np.arange(levels) * width
        nonzero = kept > 0
        sums = np.add.reduceat(kept, starts)
        counts = np.add.reduceat(nonzero.astype(np.int64), starts)
        q = np.repeat(sums / np.maximum(counts, 1), sizes) * nonzero
        if q.sum() == 0:
            continue
        mask = p > 0  # q > 0 there too: each non-empty kept bin gets a share of its group
        pn, qn = p[mask] / p.sum(), q[mask] / q.sum()
        kl = float(np.sum(pn * np.log(pn / qn)))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


class MSE(_Histogram):
    """The range that minimizes the expected squared quantization error of the
    observed data (rounding inside the range, clipping outside), searched over
    shrinking fractions of the observed [min, max]."""

    def __init__(self, bins: int = 2048, grid: int = 100, dtype: Any = "int8", axis: Optional[int] = None):
        super().__init__(bins, axis)
        self.grid = grid
        self.dtype = _checks.qdtype_name(dtype)

    def _channel_range(self, c: int):
        h = self._hist[c]
        edges = self._edges(c)
        centers = (edges[:-1] + edges[1:]) / 2
        lo0, hi0 = min(float(self._lo[c]), 0.0), max(float(self._hi[c]), 0.0)
        if hi0 - lo0 <= 0:
            return 0.0, 0.0
        qlo, qhi = _checks.QRANGE[self.dtype]
        best, best_range = np.inf, (lo0, hi0)
        for frac in np.linspace(1.0, 0.05, self.grid):
            lo, hi = lo0 * frac, hi0 * frac
            scale = (hi - lo) / (qhi - qlo)
            zp = qlo - np.round(lo / scale)
            q = np.clip(np.round(centers / scale) + zp, qlo, qhi)
            err = float(np.sum(h * ((q - zp) * scale - centers) ** 2))
            if err < best:
                best, best_range = err, (lo, hi)
        return best_range
