"""Section persist: packed weights saved to a file, loaded (mapped or read) against
packing the raw array, in time and in resident memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
from reference import rand_q

import qgemm

from .config import Config
from .report import Targets, table
from .timing import timeit_many

CHILD = """
import sys, numpy as np, qgemm
def rss():  # KiB: anonymous memory, file pages (shared with the page cache)
    with open("/proc/self/status") as f:
        kv = dict(line.split(":", 1) for line in f)
    return int(kv["RssAnon"].split()[0]), int(kv["RssFile"].split()[0])
how, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = np.ones((1, n), np.int8)
b = np.load(path) if how == "pack" else None
r0 = rss()
w = qgemm.pack(b) if how == "pack" else qgemm.load_packed(path, mmap=how == "mmap")
r1 = rss()
qgemm.matmul(a, w)  # a GEMV reads every byte of B
r2 = rss()
print(*r0, *r1, *r2)
"""


def run(cfg: Config, targets: Targets):
    n = 512 if cfg.quick else 4096
    b = rand_q(cfg.rng(), (n, n), np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        raw, path = os.path.join(tmp, "b.npy"), os.path.join(tmp, "b.qpk")
        np.save(raw, b)
        qgemm.pack(b).save(path)
        info = qgemm.cpu_info()
        fns = {"pack(b)": lambda: qgemm.pack(b),
               "load_packed(mmap=True)": lambda: qgemm.load_packed(path),
               "load_packed(mmap=False)": lambda: qgemm.load_packed(path, mmap=False)}
        other = next((isa for isa in ("avx2", "scalar") if isa in info["available"] and isa != info["isa"]), None)
        if other:  # a file of another CPU's layout: unpacked and packed for this one
            foreign = os.path.join(tmp, "other.qpk")
            code = f"import numpy as np, qgemm; qgemm.pack(np.load({raw!r})).save({foreign!r})"
            subprocess.run([sys.executable, "-c", code], env=dict(os.environ, QGEMM_ISA=other), check=True)
            fns[f"load_packed, file from QGEMM_ISA={other} (repack)"] = lambda: qgemm.load_packed(foreign)
        secs = timeit_many(cfg, fns)
        for fn in fns.values():  # every way gives the same matrix
            assert np.array_equal(qgemm.matmul(b[:3], fn()), qgemm.matmul(b[:3], qgemm.pack(b)))
        table(f"packed weights {n}x{n} int8 ({n * n / 2**20:g} MiB): packing the raw array against loading a "
              f"saved packed file (page cache warm)", ["way", "us", "pack / this"],
              [[name, 1e6 * t, secs["pack(b)"] / t] for name, t in secs.items()])
        targets.add(f"pack / load_packed(mmap=True), {n}x{n}", secs["pack(b)"] / secs["load_packed(mmap=True)"],
                    ">=", 50)

        rows = []
        for how, label in (("pack", "pack(b)"), ("mmap", "load_packed(mmap=True)"),
                           ("read", "load_packed(mmap=False)")):
            p = subprocess.run([sys.executable, "-c", CHILD, how, raw if how == "pack" else path, str(n)],
                               capture_output=True, text=True)
            if p.returncode:
                rows.append([label, "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:60]] + [""] * 3)
                continue
            a0, f0, a1, f1, a2, f2 = (int(v) / 1024 for v in p.stdout.split())
            rows.append([label, a1 - a0, f1 - f0, a2 - a1, f2 - f1])
    table(f"resident memory (MiB) of a fresh process: growth when B ({n * n / 2**20:g} MiB) is made ready, then "
          "during a first GEMV that reads all of it; anonymous (private) and file pages (the page cache, "
          "shared by every process that maps the file)",
          ["way", "ready: anon", "ready: file", "first use: anon", "first use: file"], rows)
