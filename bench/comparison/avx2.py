"""Section avx2: qgemm's AVX2 kernels beside fbgemm's, both forced to AVX2
(QGEMM_ISA=avx2, FBGEMM_ENABLE_INSTRUCTIONS=AVX2) in a child process
(bench/compare.py --avx2-child). On a CPU with AVX-512 VNNI, ONNX Runtime
cannot be kept off VNNI, so this is how qgemm's AVX2 path, the one AVX2-only
CPUs run, gets a peer in the same run. fbgemm's AVX2 u8s8 path multiplies with
vpmaddubsw, as ONNX Runtime's does: on full-range activations it saturates
(the exactness column says where), so there the exact kernel is slower by
design; on 7-bit activations both are exact."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import qgemm

from .config import Config
from .gemm import exact_acc, fbgemm_out_params, requant_ref
from .peers import as_numpy, torch, torch_qlinear
from .report import Targets, code_exactness, exactness, ratio, table
from .timing import timeit_many

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compare.py")
SHAPES = [(1024, 1024, 1024), (128, 4096, 4096), (256, 256, 256), (512, 64, 512), (16, 4096, 4096)]
QUICK_SHAPES = [(64, 64, 64), (16, 512, 512)]
ACTIVATIONS = (("8-bit", 255, 128), ("7-bit", 127, 64))  # (name, largest code, zero point)


def child(cfg: Config):
    """In the child, both libraries on AVX2: GOPS of qgemm with B packed and B at run
    time, and of fbgemm's quantized Linear (prepacked weights, requantized uint8 out)."""
    print(f"qgemm kernel: {qgemm.cpu_info()['gemm_kernel']}; FBGEMM_ENABLE_INSTRUCTIONS="
          f"{os.environ.get('FBGEMM_ENABLE_INSTRUCTIONS')}")
    rng = cfg.rng()
    rows = []
    for m, k, n in QUICK_SHAPES if cfg.quick else SHAPES:
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        packed = qgemm.pack(b)
        for name, hi, za in ACTIVATIONS:
            a = rng.integers(0, hi + 1, (m, k)).astype(np.uint8)
            ys, zy = fbgemm_out_params(k)
            fns = {"packed": lambda: qgemm.matmul(a, packed, za), "runtime": lambda: qgemm.matmul(a, b, za),
                   "fbgemm": torch_qlinear(a, 0.02, za, b, 0.01, ys, zy)}
            t = timeit_many(cfg, fns)
            acc = exact_acc(a, za, b)
            exact = [exactness(fns["packed"](), acc), exactness(fns["runtime"](), acc),
                     code_exactness(as_numpy(fns["fbgemm"]()), requant_ref(acc, 0.02, 0.01, ys, zy, np.uint8))]
            gops = {key: 2.0 * m * k * n / v / 1e9 for key, v in t.items()}
            rows.append([f"{m}x{k}x{n}", name, gops["packed"], gops["runtime"], gops["fbgemm"],
                         ratio(gops["packed"], gops["fbgemm"]), ratio(gops["runtime"], gops["fbgemm"]),
                         exact[0] if exact[0] == exact[1] else f"{exact[0]} / {exact[1]}", exact[2]])
    table("qgemm's AVX2 path beside fbgemm's AVX2 path, both forced to AVX2 (GOPS; fbgemm: quantized Linear "
          "on prepacked weights, requantized to uint8)",
          ["M x K x N", "A", "qgemm packed B", "qgemm runtime B", "fbgemm", "packed / fbgemm",
           "runtime / fbgemm", "qgemm exact", "fbgemm exact"], rows)


def run(cfg: Config, targets: Targets):
    if torch is None or "fbgemm" not in torch.backends.quantized.supported_engines:
        print("\n### AVX2 paths: skipped (needs PyTorch with fbgemm)")
        return
    if "avx2" not in qgemm.cpu_info()["available"]:
        print("\n### AVX2 paths: skipped (this CPU has no AVX2)")
        return
    args = [sys.executable, SCRIPT, "--avx2-child", "--threads", str(cfg.threads), "--repeat", str(cfg.repeat)]
    env = dict(os.environ, QGEMM_ISA="avx2", FBGEMM_ENABLE_INSTRUCTIONS="AVX2")
    p = subprocess.run(args + (["--quick"] if cfg.quick else []), capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError("the AVX2 section's child failed: " + (p.stderr.strip().splitlines() or ["?"])[-1])
    print(p.stdout, end="")
    sys.stdout.flush()
