"""Section linear: the dynamic Linear layer (float32 in and out) against PyTorch's
dynamic quantization, ONNX Runtime's DynamicQuantizeMatMul and NumPy float32."""

from __future__ import annotations

import numpy as np

import qgemm

from .config import Config
from .peers import ort, ort_dynamic_matmul, torch
from .report import Targets, ratio, table
from .timing import timeit_many

LINEAR_SHAPES = [(1, 4096, 4096), (16, 4096, 4096), (128, 4096, 4096), (128, 768, 3072), (640, 384, 1536)]
QUICK_LINEAR_SHAPES = [(1, 256, 256), (16, 256, 512)]
HEAVY_COLUMNS = 8  # heavy-tailed activations: this many columns 50x larger, as real transformers have


def linear_peers(cfg: Config, x, w, bias):
    """name -> f(x) for qgemm's schemes and every installed peer, same weights (x: the
    activations' shape and dtype)."""
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
        run_ort = ort_dynamic_matmul(cfg, x, default.weight_q, default._w_scale, bias)
        if run_ort is not None:
            peers["ORT DynamicQuantizeMatMul"] = run_ort
    peers["NumPy f32"] = lambda x: x @ w.T + bias
    return peers


def max_rel_error(y, x, w, bias):
    """max |y - y_64| / max |y_64| against the float64 product."""
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    return float(np.abs(np.asarray(y, np.float64) - ref).max() / np.abs(ref).max())


def run(cfg: Config, targets: Targets):
    """Speed on random activations, and the max relative error against float64 on
    random and on heavy-tailed activations, each as a ratio to torch's."""
    rows = []
    rng = cfg.rng()
    torch_name, numpy_name = "torch dynamic", "NumPy f32"
    for m, kin, kout in (QUICK_LINEAR_SHAPES if cfg.quick else LINEAR_SHAPES):
        x = rng.standard_normal((m, kin)).astype(np.float32)
        heavy = x.copy()
        heavy[:, rng.choice(kin, HEAVY_COLUMNS, replace=False)] *= 50
        w = (rng.standard_normal((kout, kin)) / np.sqrt(kin)).astype(np.float32)
        bias = rng.standard_normal(kout).astype(np.float32) * 0.1
        peers = linear_peers(cfg, x, w, bias)
        secs = timeit_many(cfg, {name: (lambda f=f: f(x)) for name, f in peers.items()})
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
        targets.add(f"Linear {shape} default / torch dynamic (speed)", speed(d), ">=", 1.15 if m >= 16 else 1.0)
        targets.add(f"Linear {shape} act_bits=8 / torch dynamic (speed)", speed(q8), ">=", 0.9)
        if m >= 16:
            targets.add(f"Linear {shape} default / NumPy f32 (speed)", ratio(secs[numpy_name], secs[d]), ">=", 1.6)
            targets.add(f"Linear {shape} default error / torch's (heavy)", e(d, 1), "<=", 0.85)
            targets.add(f"Linear {shape} act_bits=8 error / torch's (heavy)", e(q8, 1), "<=", 0.5)
        else:
            targets.add(f"Linear {shape} default error / torch's (random)", e(d, 0), "<=", 1.1)
            targets.add(f"Linear {shape} act_bits=8 error / torch's (random)", e(q8, 0), "<=", 0.75)
    table("dynamic Linear, float32 in/out (M x in x out; ms on random activations; speed = peer time / this time; "
          "error = max|y - y_f64| / max|y_f64|, on random and on heavy-tailed activations "
          f"({HEAVY_COLUMNS} columns 50x larger), and as a ratio to torch's)",
          ["shape", "implementation", "ms", "speed vs torch", "speed vs NumPy", "err random", "/ torch",
           "err heavy", "/ torch"], rows)
