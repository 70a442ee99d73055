// The GEMM driver: C[r, n] = sum_k (A[r, k] - za) * (B[k, n] - zb[n]) in int32,
// then the output stage (int32, float32, or requantized int8/uint8; see
// output_stage.h) in the microkernel's epilogue.
//
// Exact whenever the true result fits int32: every step is int32 arithmetic
// modulo 2^32 (products, sums and the zero-point algebra), so intermediate
// wrap-around cancels. Past that range the result wraps modulo 2^32.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/output_stage.h"
#include "qgemm/pack.h"

namespace qgemm {

// A: batch x m x k, strides in bytes. Rows of all batches are flattened.
struct AOperand {
  const uint8_t* data;
  bool is_u8;
  size_t batch, m, k;
  ptrdiff_t batch_stride, row_stride, col_stride;
  // One zero point per (flattened) row, batch * m values; nullptr: the
  // per-tensor za given to gemm().
  const int32_t* row_zero_point = nullptr;
  // An upper bound of A's values in the unsigned stored domain (uint8 as is,
  // int8 ^ 0x80) when the caller knows one (codes of fewer bits), else -1:
  // choose_kernel then reads A to prove a range-proven kernel exact.
  int max_stored = -1;
};

// Where and what the GEMM writes: (batch * m) rows of n elements, row r at
// data + r * ldc elements, through the output stage (output_stage.h; its
// per-column arrays have n values, row_scale one per output row).
struct GemmOutput : OutputStage {
  void* data = nullptr;
  size_t ldc = 0;
};

// kern, or its range-proven variant (kernels.h) when the ranges of A (read
// here) and of B (recorded when packed) prove that variant exact.
const GemmKernel& choose_kernel(const GemmKernel& kern, const AOperand& a, const PackedB& b);

// The kernel gemm_plain_b runs for a plain B, which it packs in whichever
// layout the kernel wants: kern's range-proven variant whenever A's stored
// values are within 7 bits (read here unless a.max_stored says so), which
// proves it exact for any B (2 * 127 * 128 <= 32767). Unlike choose_kernel
// on a B packed already, there is no second layout to make first, so this
// pays on any number of rows.
const GemmKernel& plain_b_kernel(const GemmKernel& kern, const AOperand& a);

// zb: one zero point per column (n values) if zb_per_column, else zb[0].
// B must have been packed for `kernel` (same nr, kr). The call itself may run
// the kernel's range-proven variant on B's second layout (choose_kernel).
void gemm(const GemmKernel& kernel, const AOperand& a, int32_t za, const PackedB& b,
          const int32_t* zb, bool zb_per_column, const GemmOutput& out);

// The same product with B given plain (a runtime operand, not packed): the
// tasks pack B block by block as they go (or, where that does not pay, B is
// packed whole first). Same results as pack_b + gemm.
void gemm_plain_b(const GemmKernel& kernel, const AOperand& a, int32_t za, const ByteMatrix& b, const int32_t* zb,
                  bool zb_per_column, const GemmOutput& out);

// The output stage alone on int32 accumulators: acc is rows x n, rows lda
// apart (the stage as in GemmOutput; no zero-point algebra).
void requantize(const GemmKernel& kernel, const int32_t* acc, size_t rows, size_t n, size_t lda,
                const GemmOutput& out);

}  // namespace qgemm
