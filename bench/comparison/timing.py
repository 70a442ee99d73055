"""Timing: round-robin samples of wall time, and per-thread CPU time."""

from __future__ import annotations

import statistics
import time

from .config import Config


def timeit_many(cfg: Config, fns: dict) -> dict:
    """Seconds per call of each fn() (name -> fn): the best (or median, --stat) of
    cfg.repeat samples taken round-robin, so that the noise of a shared machine falls on
    all of them alike. Each fn is warmed up first; a sample repeats a fast call until it
    lasts about cfg.min_sample seconds; a short pause between samples of different
    functions lets the previous library's spinning worker threads go idle, and an
    untimed sample's worth of calls then brings the next one's up to speed."""
    number = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        number[name] = max(1, int(cfg.min_sample / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name in fns}
    for _ in range(cfg.repeat):
        for name, fn in fns.items():
            if len(fns) > 1:
                # After the pause, one untimed sample's worth of calls: each
                # library is timed in its steady state (its threads awake,
                # the other's spinning threads gone idle), not on its way in.
                time.sleep(cfg.pause)
                for _ in range(number[name]):
                    fn()
            t0 = time.perf_counter()
            for _ in range(number[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / number[name])
    stat = min if cfg.stat == "best" else statistics.median
    return {name: stat(v) for name, v in samples.items()}


def timeit(cfg: Config, fn) -> float:
    return timeit_many(cfg, {0: fn})[0]


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
