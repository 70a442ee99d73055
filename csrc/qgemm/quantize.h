// Quantize / dequantize entry points (ONNX QuantizeLinear / DequantizeLinear).
//
// The array is seen as [outer][channels][inner] in C order; element i uses
// scale[(i / inner) % channels] and zero_point[...]. Per-tensor quantization
// is channels == 1. Both run threaded over large arrays.
#pragma once
#include <cstddef>
#include <cstdint>
#include "qgemm/kernels.h"

namespace qgemm {

enum class QDtype { s8, u8 };

struct ChannelLayout {
  size_t n;         // total elements
  size_t channels;  // number of (scale, zero point) pairs
  size_t inner;     // contiguous elements sharing one pair
};

// q = clamp(round_half_even(x / scale) + zp, qmin, qmax); NaN -> qmin.
void quantize(const float* x, void* q, QDtype dtype, const ChannelLayout& layout,
              const float* scale, const int32_t* zero_point, const QuantizeKernels& k);
// Smallest and largest of x[0..n), NaN ignored; (+inf, -inf) if no number. Threaded.
void minmax(const float* x, size_t n, float* lo, float* hi, const QuantizeKernels& k);
// uint8 affine parameters for data in [lo, hi], in the float32 arithmetic of
// qgemm.qparams_from_range (PyTorch's MinMaxObserver): the range widened to
// contain 0, scale = max((hi - lo) / 255, float32 eps), zp = -round(lo / scale).
struct AffineParams {
  float scale;
  int32_t zero_point;
};
AffineParams affine_u8_params(float lo, float hi);
// x = (q - zp) * scale, in float32.
void dequantize(const void* q, QDtype dtype, float* x, const ChannelLayout& layout,
                const float* scale, const int32_t* zero_point, const QuantizeKernels& k);

}  // namespace qgemm
