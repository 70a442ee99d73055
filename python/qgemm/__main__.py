"""`python -m qgemm`: a short demo of the main job.

Chooses quantization parameters, quantizes two float matrices, multiplies them
exactly in int8 -> int32, checks the result against an int64 reference,
dequantizes it, and compares error and time against NumPy float32.
"""

from __future__ import annotations

import time

import numpy as np

import qgemm


def _best_time(fn, repeats: int = 10) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    info = qgemm.cpu_info()
    print(f"qgemm {qgemm.__version__}: ISA {info['isa']} (available: {', '.join(info['available'])}), "
          f"GEMM kernel {info['gemm_kernel']}, {info['num_threads']} thread(s)")

    rng = np.random.default_rng(0)
    m, k, n = 512, 1024, 1024
    x = rng.standard_normal((m, k), dtype=np.float32)          # activations
    w = rng.standard_normal((k, n), dtype=np.float32) * 0.05   # weights, (K, N)

    # Activations: affine uint8, per tensor. Weights: symmetric int8, per output column.
    xp = qgemm.choose_qparams(x, dtype="uint8")
    wp = qgemm.choose_qparams(w, dtype="int8", symmetric=True, axis=1)
    xq = qgemm.quantize(x, xp.scale, xp.zero_point, dtype="uint8")
    wq = qgemm.quantize(w, wp.scale, wp.zero_point, dtype="int8", axis=1)
    print(f"x {x.shape} -> uint8, scale {float(xp.scale):.5f}, zero point {xp.zero_point}; "
          f"w {w.shape} -> int8 symmetric per column")

    packed = qgemm.pack(wq, wp.zero_point)
    acc = qgemm.matmul(xq, packed, a_zero_point=xp.zero_point)
    ref = (xq.astype(np.int64) - xp.zero_point) @ (wq.astype(np.int64) - wp.zero_point)
    exact = np.array_equal(acc, ref)
    print(f"int32 result exact against int64 reference: {exact}")

    y = acc.astype(np.float32) * (np.float32(xp.scale) * wp.scale)  # dequantize the accumulators
    y_ref = x @ w
    rel = np.linalg.norm(y - y_ref) / np.linalg.norm(y_ref)
    print(f"relative error of the int8 product against float32: {rel:.4f}")

    t_q = _best_time(lambda: qgemm.matmul(xq, packed, a_zero_point=xp.zero_point))
    t_f = _best_time(lambda: x @ w)
    gops = 2.0 * m * n * k
    print(f"{m}x{k} @ {k}x{n}: qgemm int8 {t_q * 1e3:.2f} ms ({gops / t_q / 1e9:.0f} GOPS), "
          f"NumPy float32 {t_f * 1e3:.2f} ms ({gops / t_f / 1e9:.0f} GFLOPS): "
          f"{t_f / t_q:.2f}x NumPy's speed")
    if not exact:
        raise SystemExit("error: the int8 product was not exact")


if __name__ == "__main__":
    main()
