"""End to end: train a small MLP on scikit-learn's digits (shipped with it, no
download), convert its layers to qgemm int8 Linear layers, and compare
accuracy and inference time against the float32 model.

    pip install ".[examples]" && python examples/digits_mlp.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import qgemm
from qgemm.nn import Linear


def best_time(fn, repeats: int = 20) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=300, random_state=0)
    mlp.fit(x_train, y_train)

    # float32 forward pass with the trained weights (sklearn keeps W as (in, out)).
    weights = [w.astype(np.float32) for w in mlp.coefs_]
    biases = [b.astype(np.float32) for b in mlp.intercepts_]

    def forward_fp32(inp):
        h = inp
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if i < len(weights) - 1:
                h = np.maximum(h, 0)
        return h

    # int8: one dynamic Linear per layer (weights (out, in), symmetric per channel), ReLU fused.
    layers = [Linear.from_float(w.T, b, activation="relu" if i < len(weights) - 1 else None)
              for i, (w, b) in enumerate(zip(weights, biases))]

    def forward_int8(inp):
        h = inp
        for layer in layers:
            h = layer(h)
        return h

    acc_fp32 = np.mean(forward_fp32(x_test).argmax(1) == y_test)
    acc_int8 = np.mean(forward_int8(x_test).argmax(1) == y_test)
    agree = np.mean(forward_fp32(x_test).argmax(1) == forward_int8(x_test).argmax(1))
    t_fp32 = best_time(lambda: forward_fp32(x_test))
    t_int8 = best_time(lambda: forward_int8(x_test))
    print(f"qgemm {qgemm.__version__} ({qgemm.cpu_info()['isa']}); digits test set: {len(y_test)} images")
    print(f"accuracy: float32 {acc_fp32 * 100:.2f}%   int8 {acc_int8 * 100:.2f}%   "
          f"(predictions agree on {agree * 100:.2f}%)")
    print(f"inference of the test set: float32 {t_fp32 * 1e3:.3f} ms   int8 {t_int8 * 1e3:.3f} ms")
    if abs(acc_fp32 - acc_int8) > 0.01:
        raise SystemExit("error: int8 accuracy is more than 1 point away from float32")


if __name__ == "__main__":
    main()
