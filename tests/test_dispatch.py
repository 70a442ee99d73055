"""Run-time dispatch: what is detected, what is used, and QGEMM_ISA capping
the choice (tested in subprocesses, since the choice is made once at import)."""

import os
import subprocess
import sys

import numpy as np

import qgemm


def run_with_isa(isa: str, code: str):
    env = dict(os.environ, QGEMM_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_cpu_info_reports_detection_and_choice():
    info = qgemm.cpu_info()
    assert info["isa"] in info["available"]
    assert "scalar" in info["available"]
    assert info["num_threads"] >= 1
    assert info["gemm_kernel"].startswith("gemm_")
    if not os.environ.get("QGEMM_ISA"):
        assert info["isa"] == info["available"][-1]  # the best one by default


def test_every_available_isa_gives_identical_results():
    code = (
        "import numpy as np, qgemm\n"
        "r = np.random.default_rng(0)\n"
        "x = (r.standard_normal(5000) * 9).astype(np.float32)\n"
        "a = r.integers(0, 256, (37, 300)).astype(np.uint8)\n"
        "b = r.integers(-128, 128, (300, 45)).astype(np.int8)\n"
        "c = qgemm.matmul(a, b, 3, 4)\n"
        "q = qgemm.quantize(x, 0.07, 3)\n"
        "print(qgemm.cpu_info()['isa'], c.sum(dtype=np.int64), q.astype(np.int64).sum(),"
        " float(qgemm.dequantize(q, 0.07, 3).sum()))\n"
    )
    outputs = {}
    for isa in qgemm.cpu_info()["available"]:
        r = run_with_isa(isa, code)
        assert r.returncode == 0, r.stderr
        got_isa, *values = r.stdout.split()
        assert got_isa == isa
        outputs[isa] = values
    assert len({tuple(v) for v in outputs.values()}) == 1, outputs


def test_unknown_or_unsupported_isa_is_refused_clearly():
    r = run_with_isa("sse9", "import qgemm")
    assert r.returncode != 0 and "QGEMM_ISA" in r.stderr
    known = ("avx2", "avx_vnni", "avx512_vnni", "neon", "neon_dotprod")
    missing = [i for i in known if i not in qgemm.cpu_info()["available"]]
    r = run_with_isa(missing[0], "import qgemm")
    assert r.returncode != 0 and "not supported" in r.stderr


def test_version():
    assert isinstance(qgemm.__version__, str) and qgemm.__version__.count(".") >= 2
