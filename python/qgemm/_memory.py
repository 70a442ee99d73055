"""Output allocation: large results come from the native buffer pool, which
reuses blocks released by earlier results instead of faulting in (and having
the kernel zero) fresh pages on every call."""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from . import _qgemm

_POOL_MIN_BYTES = 1 << 20  # below this, malloc's own caching is as good


def empty(shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < _POOL_MIN_BYTES:
        return np.empty(shape, dtype)
    return _qgemm.empty(list(shape), dtype)
