"""The command line of bench/compare.py: options, the header, the sections in turn,
the targets and the plot."""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import qgemm

from . import avx2, e2e, gemm, gil, linear, memory, perrow, persist, qlinear, quant, runtime, threads
from .config import Config
from .machine import cpu_flags, cpu_name, load, source_commit, usable_cpus
from .peers import onnx, ort, torch
from .report import Targets

# name -> run(cfg, targets); gemm's returns its GOPS for the plot
SECTIONS = {"quant": quant.run, "gemm": gemm.run, "threads": threads.run, "qlinear": qlinear.run,
            "linear": linear.run, "perrow": perrow.run, "gil": gil.run, "memory": memory.run, "e2e": e2e.run,
            "persist": persist.run, "runtime": runtime.run, "avx2": avx2.run}


def header(cfg: Config):
    def version(mod):
        return getattr(mod, "__version__", "?") if mod is not None else "not installed (skipped)"
    print("# qgemm comparison\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, host CPU: {cpu_name()}, "
          f"{usable_cpus()} CPUs usable, flags: {' '.join(cpu_flags()) or '?'}")
    print(f"- threads for every library: {cfg.threads}; timing: {cfg.stat} of {cfg.repeat} samples"
          f"{' (--quick)' if cfg.quick else ''}; {load()}")
    print(f"- qgemm {qgemm.__version__} ({os.path.dirname(qgemm.__file__)}{source_commit()}): {qgemm.cpu_info()}")
    print(f"- onnxruntime {version(ort)}, onnx {version(onnx)}, torch {version(torch)}"
          f"{' (quantized engine ' + torch.backends.quantized.engine + ')' if torch is not None else ''}, "
          f"numpy {np.__version__}, python {platform.python_version()}")
    blas = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
            if k in os.environ}
    if blas:
        print(f"- note: {blas} is set; for fair NumPy numbers run with "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="qgemm against every installed peer, side by side, in one process.",
                                epilog="For fair NumPy numbers: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                                       "python bench/compare.py")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run, from: {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (a CI smoke run)")
    p.add_argument("--threads", type=int, default=None, help="threads for every library (default: usable CPUs)")
    p.add_argument("--repeat", type=int, default=None, help="timing samples per measurement (default 9, quick 1)")
    p.add_argument("--stat", choices=["best", "median"], default="best",
                   help="statistic over the samples (default best: the noise of a shared machine only adds time)")
    p.add_argument("--plot", metavar="PATH.png", help="write a GOPS-vs-size plot (needs the gemm section)")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--avx2-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def config(args) -> Config:
    return Config(
        threads=args.threads if args.threads is not None else usable_cpus(),
        quick=args.quick,
        repeat=args.repeat if args.repeat is not None else (1 if args.quick else 9),
        stat=args.stat,
        min_sample=0.002 if args.quick else 0.02,
        # ONNX Runtime's and PyTorch's worker threads spin after a call; with a 20 ms
        # pause they still took CPU from the next library's samples (qgemm variants
        # on identical kernels measured 1000-1500 GOPS); 200 ms makes runs agree.
        pause=0.0 if args.quick else 0.2,
    )


def main(argv=None):
    args = parse_args(argv)
    cfg = config(args)
    qgemm.set_num_threads(cfg.threads)
    if torch is not None:
        torch.set_num_threads(cfg.threads)
    if args.memory_child:
        return memory.child(cfg, args.memory_child, args.size)
    if args.avx2_child:
        return avx2.child(cfg)
    header(cfg)
    t0 = time.perf_counter()
    targets = Targets()
    results = {}
    for name in args.only.split(","):
        results[name] = SECTIONS[name](cfg, targets)
    targets.print(cfg.quick)
    if args.plot:
        if "gemm" in results:
            gemm.plot(results["gemm"], args.plot, cfg.threads)
        else:
            print("\n--plot needs the gemm section; no plot written")
    print(f"\n(total {time.perf_counter() - t0:.0f} s; {load()} at the end: with {cfg.threads} CPUs, a load "
          "above ~0.5 from other processes makes the multi-threaded numbers unreliable)")
