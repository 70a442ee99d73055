"""Section memory: the peak memory of one GEMM call beyond its output, each variant
measured in a fresh process (bench/compare.py --memory-child)."""

from __future__ import annotations

import os
import subprocess
import sys

from .config import Config
from .gemm import gemm_operands, gemm_variants
from .peers import as_numpy
from .report import Targets, table

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compare.py")


def vm_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def child(cfg: Config, name, n):
    """In a fresh process: build the inputs and the call, then twice (the second call while
    the first result is still held, so it cannot reuse that memory) reset the peak RSS
    (clear_refs 5), call, and print the peak RSS growth and the output's size, in KiB."""
    ops = gemm_operands(cfg.rng(), n, n, n)
    fn = gemm_variants(cfg, ops, (n, n, n))[name][0]
    held = []
    for _ in range(2):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = vm_kib("VmRSS")
        held.append(as_numpy(fn()))
        print(vm_kib("VmHWM") - before, held[-1].nbytes // 1024)


def run(cfg: Config, targets: Targets):
    n = 256 if cfg.quick else 1024
    names = ["qgemm s8s8", "qgemm s8s8 unpacked B", "ORT u8s8", "ORT s8s8", "torch fbgemm Linear (+requant)",
             "NumPy f32"]
    avail = gemm_variants(cfg, gemm_operands(cfg.rng(), 4, 4, 4), (4, 4, 4))
    rows = []
    for name in [nm for nm in names if nm in avail]:
        p = subprocess.run([sys.executable, SCRIPT, "--memory-child", name, "--size", str(n),
                            "--threads", str(cfg.threads)], capture_output=True, text=True,
                           env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
        vals = [int(v) / 1024 for v in p.stdout.split()]
        if p.returncode or len(vals) != 4:
            rows.append([name, "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:60], "", "", ""])
        else:
            grow1, out, grow2, _ = vals
            rows.append([name, out, grow1 - out, grow2 - out])
    table(f"peak memory of a {n}^3 call beyond its output, MiB: peak RSS growth during the call (VmHWM, "
          "reset via /proc/self/clear_refs, minus VmRSS before) minus the output's size; a fresh process per "
          "variant, inputs/packed weights/sessions built first, glibc told to return blocks >= 64 KiB to the "
          "OS on free (MALLOC_MMAP_THRESHOLD_) so that freed memory is not silently reused; the second call "
          "runs while the first result is still held", ["variant", "output", "first call", "second call"], rows)
