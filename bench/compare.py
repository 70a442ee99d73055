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
gemm, threads, qlinear, linear, perrow, gil, memory, e2e, persist, runtime, avx2), ``--quick`` (tiny sizes, one
repeat: a CI smoke run), ``--threads N`` (default: the CPUs this process may
use), ``--repeat N``.

Timing: one warm-up call, then the best of ``--repeat`` samples (default 9;
``--stat median``: their median), taken round-robin over the variants of a
measurement and timed with time.perf_counter (a sample loops a fast call until
it lasts >= 20 ms).
Exactness: every integer result is compared with an exact reference
(tests/reference.py's exact_matmul in float64: |C| < 2**53, so it is exact);
requantized outputs with that reference requantized in float32 as ONNX does.

The code is the package bench/comparison/: the command line, timing, the
peers, and one module per section.
"""

from comparison.cli import main

if __name__ == "__main__":
    main()
