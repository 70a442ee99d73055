"""GEMM GOPS per ISA level, side by side: each ISA in its own subprocess
(QGEMM_ISA is read once at import), best of N repeats, interleaved so that
machine noise hits every ISA alike. B is pre-packed (weights); A uint8, B int8;
A full range, and A within 7 bits (where the AVX2 level takes its range-proven
vpmaddubsw kernel, see README).

    python bench/isa_gops.py [--isas avx2,avx_vnni,avx512_vnni] [--threads 1,2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SHAPES = [(1024, 1024, 1024), (128, 4096, 4096), (1, 4096, 4096)]

CHILD = r"""
import json, sys, time
import numpy as np, qgemm
threads, shapes, min_time = json.loads(sys.argv[1])
qgemm.set_num_threads(threads)
r = np.random.default_rng(0)
out = {"kernel": qgemm.cpu_info()["gemm_kernel"]}
for m, k, n in shapes:
    w = qgemm.pack(r.integers(-128, 128, (k, n), dtype=np.int8))
    for act, hi in (("full", 256), ("7-bit", 128)):
        a = r.integers(0, hi, (m, k), dtype=np.uint8)
        c = qgemm.matmul(a, w)  # warm-up
        reps, best, spent = 0, float("inf"), 0.0
        while spent < min_time or reps < 3:
            t = time.perf_counter(); qgemm.matmul(a, w); dt = time.perf_counter() - t
            best, spent, reps = min(best, dt), spent + dt, reps + 1
        out[f"{m}x{k}x{n} {act}"] = 2 * m * k * n / best / 1e9
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--isas", default="avx2,avx_vnni,avx512_vnni")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=5, help="subprocess rounds per ISA (best kept)")
    p.add_argument("--min-time", type=float, default=0.3, help="seconds of repeats per shape and round")
    args = p.parse_args()
    isas, threads = args.isas.split(","), [int(t) for t in args.threads.split(",")]
    best: dict = {}
    kernels: dict = {}
    for _ in range(args.rounds):
        for t in threads:
            for isa in isas:
                env = dict(os.environ, QGEMM_ISA=isa)
                arg = json.dumps([t, SHAPES, args.min_time])
                r = subprocess.run([sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"QGEMM_ISA={isa}: {r.stderr.strip()}")
                res = json.loads(r.stdout)
                kernels[isa] = res.pop("kernel")
                for shape, g in res.items():
                    key = (shape, t, isa)
                    best[key] = max(best.get(key, 0.0), g)
    head = f"{'M x K x N, A':>22} {'thr':>3} " + " ".join(f"{i:>12}" for i in isas)
    if len(isas) > 1:
        head += "  " + " ".join(f"{i + '/' + isas[0]:>20}" for i in isas[1:])
    print("GOPS (2*M*N*K / best time), pre-packed int8 B, uint8 A")
    print(head)
    rows = [(f"{m}x{k}x{n} {act}", t) for m, k, n in SHAPES for act in ("full", "7-bit") for t in threads]
    for shape, t in rows:
        vals = [best[(shape, t, i)] for i in isas]
        line = f"{shape:>22} {t:>3} " + " ".join(f"{v:12.1f}" for v in vals)
        if len(isas) > 1:
            line += "  " + " ".join(f"{v / vals[0]:20.2f}" for v in vals[1:])
        print(line)
    print("kernels: " + ", ".join(f"{i}={kernels[i]}" for i in isas)
          + " (7-bit A on avx2: gemm_u8s8_6x16c4_avx2_assuming_int16_pair_sums, the range-proven kernel)")


if __name__ == "__main__":
    main()
