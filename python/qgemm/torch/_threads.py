"""How many threads qgemm uses inside a PyTorch model.

qgemm keeps its own small thread pool (no OpenMP); PyTorch runs the rest of
the model on its OpenMP pool. The two pools never run at once (the layers run
one after another), and both keep their workers spinning for a short while
after their work, so neither pays a wake-up on every op; while one pool works,
the other's spinning workers compete with it for the CPUs until they sleep.
By default the bridge uses as many threads as PyTorch does
(``torch.get_num_threads()``, read before each call and set as qgemm's own
with ``qgemm.set_num_threads``), so ``torch.set_num_threads`` governs the
whole model; ``bench/compare.py --only e2e`` measures the alternatives in a
real model.
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
