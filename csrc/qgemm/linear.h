// A dynamically quantized linear layer in one call: y = x @ W + bias with x
// quantized from its own range (per row, or per tensor) and W pre-packed.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/output_params.h"
#include "qgemm/packed_b.h"
#include "qgemm/quantize_dynamic.h"

namespace qgemm {

// The layer's quantized weights: W (k x n) packed for the kernel, its zero
// points (n values if per_column, else one) and scales (n values), an
// optional real bias (n values), and the clamp of the outputs (activation).
struct DynamicLinearWeights {
  const PackedB* packed = nullptr;
  const int32_t* zero_point = nullptr;
  bool zero_point_per_column = false;
  const float* scale = nullptr;
  const float* bias = nullptr;
  RealClamp clamp;
};

// x: rows x k floats, C order; y: rows x n floats, rows ldy apart. The
// activations get uint8 affine parameters of `activations.bits` bits chosen
// exactly as quantize_dynamic chooses them (NaN ignored), per row when
// activations.per_row; then the exact GEMM with the dequantizing epilogue
// y = acc * float32(sx * w_scale[j]) + bias[j], clamped. Codes of at most 7
// bits prove the range-proven kernel exact without reading them again.
// Anything but DynamicStatus::ok leaves y unwritten.
DynamicStatus linear_dynamic(const Kernels& kernels, const DynamicLinearWeights& w, const float* x, size_t rows,
                             const DynamicScheme& activations, float* y, size_t ldy);

}  // namespace qgemm
