"""qgemm: exact, fast int8 GEMM, quantize and dequantize for NumPy on CPUs.

Kernels (AVX-512 VNNI, AVX-VNNI or AVX2 on x86-64, NEON/dotprod on AArch64,
portable scalar elsewhere) are chosen once at import;
``QGEMM_ISA=scalar|avx2|avx_vnni|avx512_vnni|neon|neon_dotprod`` caps the
choice and ``QGEMM_NUM_THREADS`` sets the thread count.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict

import numpy as np

from . import _qgemm, nn, observers
from ._version import __version__
from .gemm import PackedMatrix, load_packed, matmul, pack
from .quantization import QParams, choose_qparams, dequantize, qparams_from_range, quantize, quantize_dynamic
from .qtensor import QTensor
from .requant import qlinear_matmul, quantize_multiplier, requantize

__all__ = [
    "__version__",
    "QParams",
    "QTensor",
    "nn",
    "observers",
    "PackedMatrix",
    "choose_qparams",
    "qparams_from_range",
    "quantize",
    "quantize_dynamic",
    "dequantize",
    "pack",
    "load_packed",
    "matmul",
    "qlinear_matmul",
    "requantize",
    "quantize_multiplier",
    "cpu_info",
    "get_num_threads",
    "set_num_threads",
]


def cpu_info() -> Dict[str, Any]:
    """What the CPU offers and what qgemm uses: ``features`` (detected flags),
    ``available`` (ISAs this build can run here), ``isa`` (in use),
    ``gemm_kernel`` (the microkernel's name) and ``num_threads``."""
    info = dict(_qgemm.cpu_info())
    info["num_threads"] = _qgemm.get_num_threads()
    return info


def get_num_threads() -> int:
    """Threads a call may use (including the caller's)."""
    return int(_qgemm.get_num_threads())


MAX_THREADS: int = _qgemm.MAX_THREADS


def set_num_threads(n: int) -> None:
    """Sets the threads a call may use (the caller's included): an integer from
    1 to ``MAX_THREADS`` (1024). ``QGEMM_NUM_THREADS`` sets the default the same
    way; a value that is not such a number fails the import."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be an integer from 1 to {MAX_THREADS}, got {n!r}")
    _qgemm.set_num_threads(int(n))
