// Portable quantize / dequantize: the reference every vector kernel must match.
#include <cmath>

#include "qgemm/kernels.h"
#include "qgemm/kernels/minmax_fold.h"

namespace qgemm {
namespace {

template <class T>
struct Range;
template <>
struct Range<int8_t> { static constexpr int lo = -128, hi = 127; };
template <>
struct Range<uint8_t> { static constexpr int lo = 0, hi = 255; };

// Divide, clamp in float (as ONNX Runtime does, so NaN -> qmin and +-inf
// saturate), round half to even, add the zero point. The clamp bounds are
// integers, so clamping before rounding equals clamping after.
template <class T>
inline T quantize_one(float x, float scale, int32_t zp) {
  const float lo = static_cast<float>(Range<T>::lo - zp), hi = static_cast<float>(Range<T>::hi - zp);
  float v = x / scale;
  v = v > lo ? v : lo;  // same operand order as x86 maxps: NaN -> lo
  v = v < hi ? v : hi;
  return static_cast<T>(static_cast<int32_t>(std::nearbyint(v)) + zp);
}

template <class T>
void quantize_tensor(const float* x, T* y, size_t n, float scale, int32_t zp) {
  for (size_t i = 0; i < n; ++i) y[i] = quantize_one<T>(x[i], scale, zp);
}

template <class T>
void quantize_vec(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
  for (size_t i = 0; i < n; ++i) y[i] = quantize_one<T>(x[i], scale[i], zp[i]);
}

template <class T>
void dequantize_tensor(const T* q, float* y, size_t n, float scale, int32_t zp) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zp) * scale;
}

template <class T>
void dequantize_vec(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
  for (size_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zp[i]) * scale[i];
}

void minmax_f32(const float* x, size_t n, float* lo, float* hi) {
  *lo = fold_min(x, n, INFINITY);
  *hi = fold_max(x, n, -INFINITY);
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k = {
      "scalar",
      {quantize_tensor<int8_t>, quantize_tensor<uint8_t>, quantize_vec<int8_t>,
       quantize_vec<uint8_t>, dequantize_tensor<int8_t>, dequantize_tensor<uint8_t>,
       dequantize_vec<int8_t>, dequantize_vec<uint8_t>, minmax_f32},
      scalar_gemm_kernel(),
  };
  return k;
}

}  // namespace qgemm
