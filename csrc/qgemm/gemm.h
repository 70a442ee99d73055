// The GEMM driver: C[r, n] = sum_k (A[r, k] - za) * (B[k, n] - zb[n]) in int32.
//
// Exact whenever the true result fits int32: every step is int32 arithmetic
// modulo 2^32 (products, sums and the zero-point algebra), so intermediate
// wrap-around cancels. Past that range the result wraps modulo 2^32.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/pack.h"

namespace qgemm {

// A: batch x m x k, strides in bytes. Rows of all batches are flattened.
struct AOperand {
  const uint8_t* data;
  bool is_u8;
  size_t batch, m, k;
  ptrdiff_t batch_stride, row_stride, col_stride;
};

// C: (batch * m) rows of n int32, row r at data + r * ldc (elements).
struct COperand {
  int32_t* data;
  size_t ldc;
};

// zb: one zero point per column (n values) if zb_per_column, else zb[0].
// B must have been packed for `kernel` (same nr, kr).
void gemm_s32(const GemmKernel& kernel, const AOperand& a, int32_t za, const PackedB& b,
              const int32_t* zb, bool zb_per_column, const COperand& c);

}  // namespace qgemm
