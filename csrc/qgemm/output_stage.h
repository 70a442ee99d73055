// The output stage: what a GEMM (or requantize) writes from its exact int32
// accumulators, described once. Every kernel's epilogue reads this
// description; output_stage_scalar.h is its bit-exact reference and
// kernels/output_stage_vector.h the one vector implementation (over small
// per-ISA primitive sets).
//
// First the zero-point algebra, on the exact accumulator (int32 modulo 2^32):
//   acc[i][j] = sum_k a*b - col_term[j] - col_zb[j] * row_term[i] [- row_za[i] * col_sum[j]]
// with an int32 bias folded into col_term. Then, by kind:
//   int32:                  C = acc
//   float32:                C = clamp(float(acc) * scale[j] + offset[j], fmin, fmax)
//   requantize_float:       C = clamp(rint((float(acc) + offset[j]) * scale[j]) + zp, qmin, qmax)
//   requantize_fixed_point: C = clamp(MultiplyByQuantizedMultiplier(acc, multiplier[j], shift[j]) + zp, qmin, qmax)
// With per-row scales (row_scale, float32 and requantize_float only), scale
// is b_scale[j] and the per-tensor formulas apply element by element with
// a_scale = row_scale[i], all in float32:
//   float32:          scale = row_scale[i] * scale[j]
//   requantize_float: ab = row_scale[i] * scale[j], scale = ab / y_scale,
//                     offset = offset[j] / ab (offset: a bias in real units)
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace qgemm {

enum class OutputKind : int32_t {
  int32 = 0,
  float32 = 1,
  requantize_float = 2,
  requantize_fixed_point = 3,
};

// Bytes per output element: 4 (int32, float32) or 1 (int8, uint8).
inline size_t output_element_bytes(OutputKind kind) {
  return kind == OutputKind::requantize_float || kind == OutputKind::requantize_fixed_point ? 1 : 4;
}

// One call's output stage. Per-column arrays hold one value per output column
// (nullptr: unused); row_scale one per output row.
struct OutputStage {
  OutputKind kind = OutputKind::int32;
  const int32_t* bias = nullptr;        // int32 bias, in units of the accumulator
  const float* scale = nullptr;         // float32: a_scale * b_scale; requantize_float: multiplier
  const float* offset = nullptr;        // float32: bias after scaling; requantize_float: before
  const int32_t* multiplier = nullptr;  // requantize_fixed_point: Q31 multiplier
  const int32_t* shift = nullptr;       // requantize_fixed_point: > 0 left, < 0 right
  const float* row_scale = nullptr;     // per-row a_scale (see above)
  int32_t zero_point = 0, qmin = -128, qmax = 127;  // quantized outputs; clamp includes the activation
  bool out_u8 = false;                  // quantized outputs: uint8 (else int8)
  float fmin = -INFINITY, fmax = INFINITY;  // float32 clamp (activation)
  float y_scale = 1.0f;                 // requantize_float with row_scale
};

// Checks that a stage is complete and consistent (the arrays its kind needs
// are present, zero point and clamp within the output dtype, per-row scales
// only on the float kinds); throws std::invalid_argument saying what is wrong.
void check_output_stage(const OutputStage& s);

// TFLite's QuantizeMultiplier: real ~= multiplier * 2^(shift - 31) with
// multiplier in [2^30, 2^31) (0 for 0). Throws std::invalid_argument for a
// real that is negative, not finite, or >= 2^30; one below 2^-32 (after
// rounding) becomes (0, 0).
struct QuantizedMultiplier {
  int32_t multiplier;
  int32_t shift;  // > 0: left shift
};
QuantizedMultiplier quantize_multiplier(double real);
// The same for n values (one per column).
void quantize_multipliers(const double* real, size_t n, int32_t* multiplier, int32_t* shift);

}  // namespace qgemm
