"""Section gemm: int8 GEMM and GEMV throughput, ratios and exactness against every
peer; the shared operands and references of the GEMM-based sections; the plot."""

from __future__ import annotations

import numpy as np
from reference import exact_matmul, rand_q, requantize_float

import qgemm

from .config import Config
from .machine import cpu_flags, cpu_name
from .peers import as_numpy, ort, ort_node, torch, torch_qlinear
from .report import Targets, code_exactness, exactness, ratio, table
from .timing import timeit_many

GEMM_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
               (128, 4096, 4096), (1, 4096, 4096), (4, 4096, 4096), (8, 4096, 4096), (16, 4096, 4096)]
QUICK_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (1, 512, 512), (16, 512, 512)]
INT_MM_SHAPES = {(64, 64, 64), (256, 256, 256), (1024, 1024, 1024)}
PLOT_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
               (128, 4096, 4096)]
ZA_U8, ZA_U7 = 128, 64  # activation zero points: full-range uint8, 7-bit uint8


def gemm_operands(rng, m, k, n):
    return {"s8": (rand_q(rng, (m, k), np.int8), 0),
            "u8": (rand_q(rng, (m, k), np.uint8), ZA_U8),
            "u7": (rand_q(rng, (m, k), np.uint8, hi=127), ZA_U7),
            "b": rand_q(rng, (k, n), np.int8)}


def gemm_variants(cfg: Config, ops, shape):
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
            run_ort = ort_node(cfg, "MatMulInteger", {"a": a}, {"b": b, "za": np.asarray(za, a.dtype),
                                                                "zb": np.int8(0)}, np.int32)
            v[label] = (lambda run_ort=run_ort, a=a: run_ort(a)), key
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


def exact_acc(a, za, b):
    """The exact accumulator (A - za) @ B, in float64 for BLAS speed (exact: |C| < 2**53)."""
    return exact_matmul(a, b, za, dtype=np.float64)


def requant_ref(acc, sa, sb, ys, zy, dtype):
    """ONNX QLinearMatMul's float requantization of an exact accumulator."""
    info = np.iinfo(dtype)
    m = (np.float32(sa) * np.asarray(sb, np.float32)).astype(np.float32) / np.float32(ys)
    return requantize_float(acc, m, zy, info.min, info.max)


def gemm_reference(ops, shape):
    ys, zy = fbgemm_out_params(shape[1])
    refs = {key: exact_acc(*ops[key], ops["b"]) for key in ("s8", "u8", "u7")}
    refs["fbgemm"] = requant_ref(refs["u8"], 0.02, 0.01, ys, zy, np.uint8)
    return refs


def run(cfg: Config, targets: Targets):
    """Returns GOPS by (variant, shape), for the plot."""
    shapes = QUICK_SHAPES if cfg.quick else GEMM_SHAPES
    rng = cfg.rng()
    gops, exact = {}, {}
    for shape in shapes:
        m, k, n = shape
        ops = gemm_operands(rng, *shape)
        refs = gemm_reference(ops, shape)
        variants = gemm_variants(cfg, ops, shape)
        secs = timeit_many(cfg, {name: fn for name, (fn, _) in variants.items()})
        for name, (fn, key) in variants.items():
            gops[name, shape] = 2.0 * m * k * n / secs[name] / 1e9
            check = code_exactness if key == "fbgemm" else exactness
            exact.setdefault(name, []).append((shape, check(as_numpy(fn()), refs[key])))
    names = list(dict.fromkeys(name for name, _ in gops))
    label = lambda s: "x".join(map(str, s))  # noqa: E731
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
    gemm_targets(targets, gops, shapes)
    return gops


def gemm_targets(targets: Targets, gops, shapes):
    g = lambda name, s: gops.get((name, s))  # noqa: E731
    for s in [(1024, 1024, 1024), (128, 4096, 4096)]:
        if s not in shapes:
            continue
        lab = "x".join(map(str, s))
        targets.add(f"GEMM {lab} s8s8 / ORT u8s8", ratio(g("qgemm s8s8", s), g("ORT u8s8", s)), ">=", 0.85)
        targets.add(f"GEMM {lab} s8s8 / ORT s8s8", ratio(g("qgemm s8s8", s), g("ORT s8s8", s)), ">=", 5.0)
        targets.add(f"GEMM {lab} u8s8 / s8s8 speed", ratio(g("qgemm u8s8", s), g("qgemm s8s8", s)), ">=", 0.9)
        targets.add(f"GEMM {lab} 7-bit u8s8 / ORT u8s8 (7-bit data)",
                    ratio(g("qgemm u8s8 7-bit", s), g("ORT u8s8 7-bit", s)), ">=", 1.0)
        targets.add(f"GEMM {lab} 7-bit u8s8 / ORT u8s8 (full-range data)",
                    ratio(g("qgemm u8s8 7-bit", s), g("ORT u8s8", s)), ">=", 1.0)
    s = (1, 4096, 4096)
    if s in shapes:
        targets.add("GEMV 1x4096x4096 s8s8 / torch fbgemm Linear",
                    ratio(g("qgemm s8s8", s), g("torch fbgemm Linear (+requant)", s)), ">=", 1.0)
    s = (64, 64, 64)
    targets.add("64^3 call time / NumPy f32 time", ratio(g("NumPy f32", s), g("qgemm s8s8", s)), "<=", 2.0)


def plot(gops, path, threads):
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
    ax.set_title(f"int8 GEMM throughput, {threads} threads, {cpu_name()} ({', '.join(flags)}); higher is better",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    print(f"\nplot written to {path}")
