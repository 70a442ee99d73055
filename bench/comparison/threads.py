"""Section threads: qgemm's speed-up from 1 thread to all of them."""

from __future__ import annotations

import numpy as np
from reference import rand_q

import qgemm

from .config import Config
from .report import Targets, table
from .timing import timeit


def run(cfg: Config, targets: Targets):
    n = 256 if cfg.quick else 1024
    rng = cfg.rng()
    a, b = rand_q(rng, (n, n), np.int8), qgemm.pack(rand_q(rng, (n, n), np.int8))
    speed = {}
    for t in sorted({1, cfg.threads}):
        qgemm.set_num_threads(t)
        speed[t] = 2.0 * n ** 3 / timeit(cfg, lambda: qgemm.matmul(a, b)) / 1e9
    qgemm.set_num_threads(cfg.threads)
    table(f"qgemm thread scaling, s8s8 {n}^3 packed", ["threads", "GOPS", "speed-up"],
          [[str(t), g, g / speed[1]] for t, g in speed.items()])
    if cfg.threads > 1:
        targets.add(f"{n}^3: {cfg.threads} threads / 1 thread", speed[cfg.threads] / speed[1], ">=", 1.8)
