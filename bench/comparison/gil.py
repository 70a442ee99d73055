"""Section gil: two Python threads calling qgemm at once (the GIL is released)."""

from __future__ import annotations

import threading

import numpy as np
from reference import rand_q

import qgemm

from .config import Config
from .report import Targets, table
from .timing import timeit_many


def run(cfg: Config, targets: Targets):
    n, calls = (128, 20) if cfg.quick else (512, 20)
    rng = cfg.rng()
    a, b = rand_q(rng, (n, n), np.int8), qgemm.pack(rand_q(rng, (n, n), np.int8))

    def work():
        for _ in range(calls):
            qgemm.matmul(a, b)

    def run_threads(n_threads):
        ts = [threading.Thread(target=work) for _ in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    qgemm.set_num_threads(1)
    try:
        secs = timeit_many(cfg, {k: (lambda k=k: run_threads(k)) for k in (1, 2)})
        speed = {k: k * calls / t for k, t in secs.items()}
    finally:
        qgemm.set_num_threads(cfg.threads)
    r = speed[2] / speed[1]
    table(f"GIL: Python threads each calling qgemm.matmul {n}^3 with set_num_threads(1)",
          ["Python threads", "calls/s", "ratio"], [["1", speed[1], 1.0], ["2", speed[2], r]])
    targets.add("2 Python threads / 1 (GIL released)", r, ">=", 1.8)
