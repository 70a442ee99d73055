"""How many threads qgemm uses inside a PyTorch model.

qgemm keeps its own small thread pool (no OpenMP); PyTorch runs the rest of
the model on its OpenMP pool. Both pools' workers spin for a short while
after each piece of work before they sleep, so consecutive ops hand the CPUs
back and forth without the tens of microseconds a wake-up costs. By default
the bridge uses as many threads as PyTorch does (``torch.get_num_threads()``,
read before each call), so ``torch.set_num_threads`` governs the whole model.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import _qgemm

_fixed: Optional[int] = None


def set_num_threads(n: Optional[int]) -> None:
    """Threads for qgemm's calls from PyTorch: ``None`` (the default) follows
    ``torch.get_num_threads()``; an int >= 1 fixes the number."""
    global _fixed
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be None or an int >= 1, got {n!r}")
    _fixed = n


def before_call() -> None:
    n = _fixed if _fixed is not None else torch.get_num_threads()
    if _qgemm.get_num_threads() != n:
        _qgemm.set_num_threads(n)
