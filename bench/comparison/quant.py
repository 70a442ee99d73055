"""Section quant: quantize / dequantize 16M float32 per tensor against every peer."""

from __future__ import annotations

import numpy as np

import qgemm

from .config import Config
from .peers import as_numpy, ort, ort_node, torch
from .report import Targets, table
from .timing import timeit_many


def quant_peers(cfg: Config, x, q, s, z, dtype):
    """name -> (quantize x, dequantize q) callables, one pair per library."""
    info = np.iinfo(dtype)
    z_np = np.asarray(z, dtype)
    peers = {"qgemm": (lambda: qgemm.quantize(x, s, z, dtype=dtype), lambda: qgemm.dequantize(q, s, z))}
    if ort is not None:
        oq = ort_node(cfg, "QuantizeLinear", {"x": x}, {"s": np.float32(s), "z": z_np}, dtype)
        od = ort_node(cfg, "DequantizeLinear", {"q": q}, {"s": np.float32(s), "z": z_np}, np.float32)
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


def run(cfg: Config, targets: Targets):
    n = 1 << 20 if cfg.quick else 1 << 24
    x = (cfg.rng().standard_normal(n) * 3).astype(np.float32)
    s = 0.05
    fns, refs = {}, {}
    for dtype, z in ((np.int8, 3), (np.uint8, 128)):
        dt = np.dtype(dtype).name
        q = qgemm.quantize(x, s, z, dtype=dtype)
        refs["quantize", dt], refs["dequantize", dt] = q, qgemm.dequantize(q, s, z)
        for name, pair in quant_peers(cfg, x, q, s, z, dtype).items():
            fns["quantize", dt, name], fns["dequantize", dt, name] = pair
    secs = timeit_many(cfg, fns)  # all side by side, int8 and uint8 alike
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
            targets.add(f"{op} {dt} {n >> 20}M / fastest peer", speed[op, dt, "qgemm"] / fastest, ">=", 1.0)
        targets.add(f"{op}: uint8 / int8 speed", speed[op, "uint8", "qgemm"] / speed[op, "int8", "qgemm"], ">=", 0.9)
