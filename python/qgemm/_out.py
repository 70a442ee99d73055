"""``out=``: the array a kernel writes, and the copy back into the caller's.

The kernel writes the caller's ``out`` directly when it is C-contiguous and
shares no memory with what the kernel reads; otherwise it writes a fresh
array that is then copied into ``out``. An ``out`` overlapping an input thus
gives the answer NumPy gives (which also computes into a temporary).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _checks, _memory


def buffer(out: Optional[np.ndarray], shape: Tuple[int, ...], dtype: np.dtype, *reads: Any) -> np.ndarray:
    """Validates ``out`` (shape, dtype, writeable) and returns the C-ordered array of
    ``shape`` the kernel should write; pass it to :func:`result` afterwards.

    ``reads``: what the kernel reads, per-row parameters included (anything that
    is not an array is skipped, so a call's keyword arguments can be passed as
    they are). Overlap is judged on their real memory extents
    (``np.may_share_memory``: exact for contiguous arrays; for interleaved strided
    views it may answer yes when they do not touch, which only costs a copy).
    """
    if out is not None:
        _checks.output(out, shape, dtype)
        if out.flags.c_contiguous and not any(isinstance(r, np.ndarray) and np.may_share_memory(out, r)
                                              for r in reads):
            return out
    return _memory.empty(shape, dtype)


def result(out: Optional[np.ndarray], buf: np.ndarray) -> np.ndarray:
    """What the function returns: ``out`` (filled from ``buf`` if it was not written
    directly), or ``buf`` when no ``out`` was given."""
    if out is None or buf is out:
        return buf
    out[...] = buf
    return out
