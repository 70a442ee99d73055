// Batched products with both operands given at run time (attention's
// Q @ K^T and P @ V): C_i = (A_i - za) (B_i - zb) for every item i, through
// the same output stage as gemm(). Each B_i is packed inside the call
// (gemm_plain_b).
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/gemm.h"

namespace qgemm {

// `count` matrices of rows x cols: item i starts offset[i] bytes past data
// (broadcast operands simply repeat an offset); strides in bytes.
struct MatrixBatch {
  const uint8_t* data;
  const ptrdiff_t* offset;
  size_t count, rows, cols;
  ptrdiff_t row_stride, col_stride;
  bool is_u8;
};

// a: count x (m x k), b: count x (k x n). out holds count * m rows (item i's
// rows from i * m); a.row_zero_point-style per-row arrays (za_rows,
// out.row_scale) have count * m values too. zb as in gemm().
void gemm_batched(const GemmKernel& kernel, const MatrixBatch& a, int32_t za, const int32_t* za_rows,
                  const MatrixBatch& b, const int32_t* zb, bool zb_per_column, const GemmOutput& out);

}  // namespace qgemm
