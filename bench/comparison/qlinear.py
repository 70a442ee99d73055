"""Section qlinear: qlinear_matmul (requantized output) against ONNX Runtime's
QLinearMatMul and PyTorch's fbgemm quantized Linear, and its epilogue's cost."""

from __future__ import annotations

import numpy as np

import qgemm

from .config import Config
from .gemm import exact_acc, fbgemm_out_params, gemm_operands, requant_ref
from .peers import as_numpy, ort, ort_node, torch, torch_qlinear
from .report import Targets, code_exactness, table
from .timing import timeit_many


def run(cfg: Config, targets: Targets):
    n = 128 if cfg.quick else 1024
    rng = cfg.rng()
    ops = gemm_operands(rng, n, n, n)
    b = ops["b"]
    packed = qgemm.pack(b)
    sa, sb = 0.02, 0.01
    sb_col = rng.uniform(0.005, 0.015, n).astype(np.float32)
    ys, zy8 = fbgemm_out_params(n)
    ys8 = ys  # (a - za) has the same spread for full-range int8 and uint8
    accs = {key: exact_acc(*ops[key], b) for key in ("s8", "u8", "u7")}
    refs = {"s8": requant_ref(accs["s8"], sa, sb, ys8, 0, np.int8),
            "u8": requant_ref(accs["u8"], sa, sb, ys, zy8, np.uint8),
            "u7": requant_ref(accs["u7"], sa, sb, ys, zy8, np.uint8),
            "u8 per-channel": requant_ref(accs["u8"], sa, sb_col, ys, zy8, np.uint8)}
    a8 = ops["s8"][0]
    cases = {"qgemm matmul s8s8 -> int32": (lambda: qgemm.matmul(a8, packed), None),
             "qgemm qlinear s8s8 -> int8": (lambda: qgemm.qlinear_matmul(a8, sa, 0, packed, sb, None, ys8, 0), "s8")}
    for key, label, scale in (("u8", "full range", sb), ("u7", "7-bit", sb), ("u8", "per-channel", sb_col)):
        a, za = ops[key]
        ref = "u8 per-channel" if label == "per-channel" else key
        cases[f"qgemm qlinear u8s8 {label} -> uint8"] = (
            lambda a=a, za=za, scale=scale: qgemm.qlinear_matmul(a, sa, za, packed, scale, None, ys, zy8), ref)
        if ort is not None and label != "per-channel":
            run_ort = ort_node(cfg, "QLinearMatMul", {"a": a}, {
                "sa": np.float32(sa), "za": np.uint8(za), "b": b, "sb": np.float32(sb), "zb": np.int8(0),
                "ys": np.float32(ys), "zy": np.uint8(zy8)}, np.uint8)
            cases[f"ORT QLinearMatMul u8s8 {label}"] = (lambda run_ort=run_ort, a=a: run_ort(a), ref)
        if torch is not None and key == "u8":
            cases[f"torch fbgemm Linear {label}"] = (torch_qlinear(a, sa, za, b, scale, ys, zy8), ref)
    secs = timeit_many(cfg, {name: fn for name, (fn, _) in cases.items()})
    rows = []
    for name, (fn, ref) in cases.items():
        ex = "" if ref is None else code_exactness(as_numpy(fn()), refs[ref])
        rows.append([name, 1e3 * secs[name], 2.0 * n ** 3 / secs[name] / 1e9, ex])
    table(f"qlinear_matmul {n}^3 (B prepacked; exactness vs the exact accumulator requantized as ONNX does)",
          ["variant", "ms", "GOPS", "exact?"], rows)
    t = lambda name: secs.get(name)  # noqa: E731
    pairs = [("qgemm qlinear s8s8 -> int8", "qgemm matmul s8s8 -> int32", "time ratio (epilogue overhead)", "<=", 1.05),
             ("qgemm qlinear u8s8 full range -> uint8", "ORT QLinearMatMul u8s8 full range", "throughput", ">=", 0.85),
             ("qgemm qlinear u8s8 7-bit -> uint8", "ORT QLinearMatMul u8s8 7-bit", "throughput", ">=", 0.85),
             ("qgemm qlinear u8s8 full range -> uint8", "torch fbgemm Linear full range", "throughput", ">=", 0.90),
             ("qgemm qlinear u8s8 per-channel -> uint8", "torch fbgemm Linear per-channel", "throughput", ">=", 0.90)]
    rows = []
    for a, b, kind, op, thr in pairs:
        if t(a) is None or t(b) is None:
            continue
        r = t(a) / t(b) if kind.startswith("time") else t(b) / t(a)
        rows.append([f"{a} / {b}", kind, r])
        targets.add(f"qlinear {n}^3: {a} / {b} ({kind})", r, op, thr)
    table("qlinear_matmul ratios", ["a / b", "ratio of", "value"], rows)
