#include "qgemm/gemm_batched.h"

#include "qgemm/pack.h"
#include "qgemm/thread_pool.h"

namespace qgemm {
namespace {

// Items this small run one per task (each packs its B and multiplies on one
// thread); larger ones run one after the other, each spread over the threads.
constexpr size_t kMaxMacsPerItemTask = size_t(1) << 23;

}  // namespace

void gemm_batched(const GemmKernel& kern, const MatrixBatch& a, int32_t za, const int32_t* za_rows,
                  const MatrixBatch& b, const int32_t* zb, bool zb_per_column, const GemmOutput& out) {
  const size_t m = a.rows, k = a.cols, n = b.cols;
  if (a.count == 0 || m == 0 || n == 0) return;
  auto item = [&](size_t i) {
    const ByteMatrix bi{b.data + b.offset[i], k, n, b.row_stride, b.col_stride, b.is_u8};
    AOperand ai{a.data + a.offset[i], a.is_u8, 1, m, k, 0, a.row_stride, a.col_stride};
    ai.row_zero_point = za_rows ? za_rows + i * m : nullptr;
    GemmOutput oi = out;
    oi.data = static_cast<uint8_t*>(out.data) + i * m * out.ldc * output_element_bytes(out.kind);
    if (out.row_scale) oi.row_scale = out.row_scale + i * m;
    gemm_plain_b(kern, ai, za, bi, zb, zb_per_column, oi);
  };
  const size_t threads = static_cast<size_t>(usable_threads());
  if (a.count >= threads && m * n * k <= kMaxMacsPerItemTask) {
    parallel_for(a.count, item);  // the nested packing and gemm run on the task's thread
  } else {
    for (size_t i = 0; i < a.count; ++i) item(i);
  }
}

}  // namespace qgemm
