"""Printing: Markdown tables, exactness of a result, and the targets summary."""

from __future__ import annotations

import sys

import numpy as np


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


class Targets:
    """The ratios the sections measured, each with its target, printed together at the end."""

    def __init__(self):
        self.rows = []  # (what, value, "<=" or ">=", threshold)

    def add(self, what: str, value, op: str, threshold: float) -> None:
        self.rows.append((what, value, op, threshold))

    def print(self, quick: bool) -> None:
        rows = []
        for what, value, op, thr in self.rows:
            ok = None if value is None else (value >= thr if op == ">=" else value <= thr)
            digits = max(2, len(str(thr).partition(".")[2]) + 1)  # 0.995 needs 4 digits to be judged
            rows.append([what, "-" if value is None else f"{value:.{digits}f}", f"{op} {thr}",
                         "n/a" if ok is None else ("pass" if ok else "MISS")])
        if rows:
            table("targets" + (" (--quick: tiny sizes, one sample: not meaningful)" if quick else ""),
                  ["ratio", "measured", "target", ""], rows)
