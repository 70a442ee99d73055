#include "qgemm/linear.h"

#include <vector>

#include "qgemm/buffer_pool.h"
#include "qgemm/gemm.h"

namespace qgemm {

DynamicStatus linear_dynamic(const Kernels& kernels, const DynamicLinearWeights& w, const float* x, size_t rows,
                             const DynamicScheme& activations, float* y, size_t ldy) {
  const size_t k = w.packed->k, n = w.packed->n;
  const bool per_row = activations.per_row;
  const ScratchBuffer xq(rows * k);  // from the bounded buffer pool when large
  std::vector<float> sx(per_row ? rows : 1);
  std::vector<int32_t> zx(per_row ? rows : 1);
  const DynamicStatus status =
      quantize_dynamic(x, rows, k, activations, xq.data(), sx.data(), zx.data(), kernels.quant);
  if (status != DynamicStatus::ok) return status;

  const ProductScales scales{sx.data(), sx.size(), per_row, w.scale, n};
  const OutputParams params = dequantize_output(n, scales, StageBias{nullptr, w.bias}, w.clamp);
  GemmOutput out;
  static_cast<OutputStage&>(out) = params.stage();
  out.data = y;
  out.ldc = ldy;
  AOperand a{xq.as<uint8_t>(), true, 1, rows, k, 0, static_cast<ptrdiff_t>(k), 1};
  a.max_stored = (1 << activations.bits) - 1;
  if (per_row) a.row_zero_point = zx.data();
  gemm(kernels.gemm, a, per_row ? 0 : zx[0], *w.packed, w.zero_point, w.zero_point_per_column, out);
  return status;
}

}  // namespace qgemm
