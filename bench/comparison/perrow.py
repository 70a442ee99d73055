"""Section perrow: the cost of per-row (per-token) activation parameters in the epilogue."""

from __future__ import annotations

import numpy as np
from reference import rand_q

import qgemm

from .config import Config
from .report import Targets, table
from .timing import cpu_time_best

PER_ROW_SHAPES = [(128, 4096, 4096), (128, 768, 3072), (640, 384, 1536), (1024, 1024, 1024)]


def run(cfg: Config, targets: Targets):
    """The same GEMM with per-tensor and per-row activation parameters (int32 out: one
    zero point per row; float32 out: a zero point and a scale per row), on one thread,
    timed as CPU time (cpu_time_best): the epilogue's cost is per thread anyway."""
    rows = []
    rng = cfg.rng()
    threads = qgemm.get_num_threads()
    qgemm.set_num_threads(1)
    try:
        for m, k, n in ([(64, 256, 256)] if cfg.quick else PER_ROW_SHAPES):
            a = rand_q(rng, (m, k), np.uint8)
            b = qgemm.pack(rand_q(rng, (k, n), np.int8))
            za = rng.integers(0, 256, m)
            sa = rng.uniform(0.01, 0.1, m).astype(np.float32)
            c, f = np.empty((m, n), np.int32), np.empty((m, n), np.float32)
            secs = cpu_time_best({
                "int32 per-tensor": lambda: qgemm.matmul(a, b, 7, out=c),
                "int32 per-row": lambda: qgemm.matmul(a, b, za, out=c),
                "float32 per-tensor": lambda: qgemm.qlinear_matmul(a, 0.05, 7, b, 0.01, None, None, None,
                                                                   out_dtype="float32", out=f),
                "float32 per-row": lambda: qgemm.qlinear_matmul(a, sa, za, b, 0.01, None, None, None,
                                                                out_dtype="float32", out=f),
            }, 1 if cfg.quick else (10 if m * n * k > 1 << 30 else 30))
            shape = f"{m}x{k}x{n}"
            for out in ("int32", "float32"):
                cost = secs[f"{out} per-row"] / secs[f"{out} per-tensor"]
                rows.append([shape, out, f"{1e3 * secs[f'{out} per-tensor']:.3f}",
                             f"{1e3 * secs[f'{out} per-row']:.3f}", f"{cost:.3f}"])
                targets.add(f"per-row / per-tensor time, {out} out, {shape}", cost, "<=", 1.05)
    finally:
        qgemm.set_num_threads(threads)
    table("per-row activation parameters: CPU time of the same GEMM on one thread (ms), per-row / per-tensor",
          ["shape", "output", "per-tensor", "per-row", "per-row / per-tensor"], rows)
