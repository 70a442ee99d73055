// An output stage built from quantization parameters. The init functions
// here own the numerics that make a stage bit-exact with its peers: the
// float32 products of scales, a real bias divided into accumulator units,
// activation bounds quantized like the data, and the Q31 multipliers. Each
// refuses (std::invalid_argument) parameters whose float32 forms overflow or
// underflow, which would silently give every result the same code.
//
// OutputParams owns the per-column and per-row arrays its OutputStage points
// to, so the stage can outlive the caller's arrays.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qgemm/output_stage.h"

namespace qgemm {

// The scales of a product of quantized A and B: a_scale per tensor or one
// per output row (a_per_row, a_count values); b_scale per tensor
// (b_count == 1) or one per output column. All finite and > 0 (checked by
// the caller).
struct ProductScales {
  const float* a = nullptr;
  size_t a_count = 1;
  bool a_per_row = false;
  const float* b = nullptr;
  size_t b_count = 1;
};

// A bias of n values, in accumulator units (int32) or in real units
// (float32), or none.
struct StageBias {
  const int32_t* int32 = nullptr;
  const float* real = nullptr;
};

// A clamp of the real output values (the activation: relu is [0, inf)).
struct RealClamp {
  float lo = -INFINITY, hi = INFINITY;
};

// A quantized output: its scale and zero point, and uint8 or int8.
struct QuantizedOutput {
  float scale = 1.0f;
  int32_t zero_point = 0;
  bool is_u8 = false;
};

class OutputParams {
 public:
  OutputParams() = default;
  OutputParams(OutputParams&&) = default;  // the arrays move with their pointers
  OutputParams& operator=(OutputParams&&) = default;
  OutputParams(const OutputParams&) = delete;
  OutputParams& operator=(const OutputParams&) = delete;

  const OutputStage& stage() const { return stage_; }
  // The output columns its per-column arrays cover.
  size_t columns() const { return columns_; }
  // The output rows its per-row arrays cover (row_scale), or 0 if none.
  size_t rows() const { return row_scale_.size(); }
  // Narrows a quantized output's clamp to codes [lo, hi] (a fused
  // activation given in codes); throws if they leave the output dtype.
  void clamp_codes(int32_t lo, int32_t hi);

  friend OutputParams int32_output(size_t n, const int32_t* bias);
  friend OutputParams dequantize_output(size_t n, const ProductScales& s, const StageBias& bias, RealClamp clamp);
  friend OutputParams requantize_float_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                              const StageBias& bias, RealClamp clamp);
  friend OutputParams requantize_fixed_point_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                                    const int32_t* bias, RealClamp clamp);
  friend OutputParams requantize_by_multiplier(size_t n, const double* multiplier, size_t count, bool per_row,
                                               bool fixed_point, const QuantizedOutput& y, const int32_t* bias);

 private:
  void set_bias(size_t n, const int32_t* bias);
  void set_quantized(const QuantizedOutput& y, RealClamp clamp);

  OutputStage stage_;
  size_t columns_ = 0;
  std::vector<int32_t> bias_, multiplier_, shift_;
  std::vector<float> scale_, offset_, row_scale_;
};

// int32 accumulators, with an int32 bias (n values) or none.
OutputParams int32_output(size_t n, const int32_t* bias);

// float32: y = clamp(acc * float32(a_scale * b_scale[j]) + bias, clamp)
// (the product formed per element with per-row a_scale; a real bias added
// after scaling, an int32 bias before).
OutputParams dequantize_output(size_t n, const ProductScales& s, const StageBias& bias, RealClamp clamp);

// ONNX QLinearMatMul as ONNX Runtime computes it: multiplier
// float32(a_scale * b_scale[j]) / y_scale in float32, round half to even; a
// real bias divided by a_scale * b_scale[j] and added to the accumulator first
// (PyTorch's fbgemm). Per-row a_scale: the same steps per element.
OutputParams requantize_float_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                     const StageBias& bias, RealClamp clamp);

// TFLite: the Q31 form of double(float32(a_scale * b_scale[j])) / double(y_scale).
// a_scale per tensor only; bias int32.
OutputParams requantize_fixed_point_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                           const int32_t* bias, RealClamp clamp);

// requantize() with a real multiplier given directly: count values, 1 (per
// tensor), n (per column) or one per row (per_row, float only). Float: the
// multiplier rounded once to float32; fixed point: its Q31 form.
OutputParams requantize_by_multiplier(size_t n, const double* multiplier, size_t count, bool per_row,
                                      bool fixed_point, const QuantizedOutput& y, const int32_t* bias);

// Codes [qmin, qmax] of a real clamp for output y: each bound quantized as
// quantize() does (round half to even), within the dtype's codes.
void quantized_clamp(RealClamp clamp, const QuantizedOutput& y, int32_t* qmin, int32_t* qmax);

}  // namespace qgemm
