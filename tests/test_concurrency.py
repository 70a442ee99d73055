"""Many Python threads at once get the same results as serial calls (the GIL
is released in every kernel and the thread pool is shared safely); memory does
not grow over thousands of calls."""

import gc
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import qgemm
from qgemm.nn import Linear


def _jobs(rng):
    a = rng.integers(-128, 128, (150, 300)).astype(np.int8)
    b = rng.integers(0, 256, (300, 90)).astype(np.uint8)
    packed = qgemm.pack(b, 7)
    x = rng.standard_normal((40, 300)).astype(np.float32)
    lin = Linear.from_float(rng.standard_normal((64, 300)).astype(np.float32), rng.standard_normal(64).astype(np.float32))
    big = rng.standard_normal(300_000).astype(np.float32)
    return [
        lambda: qgemm.matmul(a, packed, 3),
        lambda: qgemm.matmul(a, b, -3, 9),
        lambda: qgemm.qlinear_matmul(a, 0.02, 0, packed, 0.01, None, 0.5, 1),
        lambda: qgemm.qlinear_matmul(a, 0.02, 0, b, 0.01, 4, 0.5, 1, requant="fixed_point"),
        lambda: qgemm.quantize(big, 0.01, 3),
        lambda: qgemm.dequantize(qgemm.quantize(big, 0.02, -1), 0.02, -1),
        lambda: lin(x),
    ]


@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_calls_match_serial(rng, threads):
    before = qgemm.get_num_threads()
    qgemm.set_num_threads(threads)
    try:
        jobs = _jobs(rng)
        serial = [job() for job in jobs]
        work = [i % len(jobs) for i in range(8 * len(jobs))]
        with ThreadPoolExecutor(max_workers=6) as ex:
            results = list(ex.map(lambda i: (i, jobs[i]()), work))
        for i, r in results:
            np.testing.assert_array_equal(r, serial[i])
    finally:
        qgemm.set_num_threads(before)


def test_concurrent_first_calls_on_a_fresh_packed_matrix(rng):
    # 7-bit activations: where the range-proven kernel exists (AVX2), the
    # first calls race to make B's second layout; it must be made once, right.
    b = rng.integers(-128, 128, (700, 300)).astype(np.int8)
    xs = [rng.integers(0, 128, (20 + i, 700)).astype(np.uint8) for i in range(12)]
    want = [x.astype(np.int64) @ b.astype(np.int64) for x in xs]
    for _ in range(3):
        packed = qgemm.pack(b)
        with ThreadPoolExecutor(max_workers=6) as ex:
            got = list(ex.map(lambda x: qgemm.matmul(x, packed), xs))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_no_memory_growth_over_thousands_of_calls(rng):
    jobs = _jobs(rng)
    for job in jobs * 20:  # warm up: pools, thread-local buffers, allocator caches
        job()
    gc.collect()
    start = _rss_bytes()
    for _ in range(300):
        for job in jobs:
            job()
    gc.collect()
    grown = _rss_bytes() - start
    assert grown < 32 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 2100 calls"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_children_run_calls():
    """A child forked right after a multi-threaded call (as multiprocessing and
    data loaders do on Linux) runs calls of its own: its pool is its own, not a
    copy of the parent's whose helper threads do not exist there (that hung
    about 1 child in 15)."""
    import signal

    import time

    jobs = _jobs(np.random.default_rng(7))
    want = [job() for job in jobs]
    failed = 0
    threads = qgemm.get_num_threads()
    qgemm.set_num_threads(4)  # more helpers than this machine has cores: some asleep, some on their way
    try:
        for trial in range(60):
            jobs[trial % len(jobs)]()  # the helpers busy, spinning or going to sleep at the fork
            time.sleep(trial % 6 * 50e-6)
            pid = os.fork()
            if pid == 0:  # the child: every job, or exit 3; a hang ends by SIGALRM
                signal.alarm(10)
                ok = all(np.array_equal(job(), w) for job, w in zip(jobs, want))
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            failed += not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
    finally:
        qgemm.set_num_threads(threads)
    assert failed == 0, f"{failed} of 60 forked children failed or hung"
