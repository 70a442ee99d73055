// The output stage (output_stage.h) for one element, in portable C++: the
// reference the vector epilogue (kernels/output_stage_vector.h) matches bit
// for bit on every ISA. Everything has internal linkage so that
// each ISA's translation unit gets its own copy (no cross-ISA ODR merging).
#pragma once
#include <cmath>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

inline int32_t wrap_sub(int32_t x, int32_t y) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) - static_cast<uint32_t>(y));
}
inline int32_t wrap_mul(int32_t x, int32_t y) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) * static_cast<uint32_t>(y));
}

// gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31), with
// the single overflow case INT32_MIN * INT32_MIN saturated.
inline int32_t srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const int64_t ab = static_cast<int64_t>(a) * b;
  const int64_t nudge = ab >= 0 ? (int64_t(1) << 30) : 1 - (int64_t(1) << 30);
  return static_cast<int32_t>((ab + nudge) / (int64_t(1) << 31));
}

// gemmlowp's RoundingDivideByPOT: x / 2^e rounded half away from zero.
inline int32_t rounding_divide_by_pot(int32_t x, int e) {
  const int32_t mask = static_cast<int32_t>((int64_t(1) << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

// TFLite's MultiplyByQuantizedMultiplier (the left shift wraps in int32).
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t mult, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(srdhm(wrap_mul(x, int32_t(1) << left), mult), right);
}

// Clamp in float to integer bounds (so NaN cannot occur and +-inf or huge
// values saturate), then round half to even: equal to rounding then clamping.
inline int32_t round_clamped(float v, int32_t lo, int32_t hi) {
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  v = v > flo ? v : flo;
  v = v < fhi ? v : fhi;
  return static_cast<int32_t>(std::nearbyint(v));
}

// Writes element (i, j) of the tile: acc is the accumulator (plus old C for
// kGemmAccumulate, already added by the caller), row i, column j of the tile.
inline void store_output(int32_t acc, int i, int j, void* c, size_t ldc, int flags,
                         const EpilogueParams* ep) {
  if (flags & kGemmFinal) {
    acc = wrap_sub(acc, ep->col_term[j]);
    if (ep->row_za) acc = wrap_sub(acc, wrap_mul(ep->col_sum[j], ep->row_za[i]));
    if (ep->col_zb) acc = wrap_sub(acc, wrap_mul(ep->col_zb[j], ep->row_term[i]));
  }
  const OutputStage& o = ep->out;
  const size_t at = static_cast<size_t>(i) * ldc + j;
  if (!(flags & kGemmFinal) || o.kind == OutputKind::int32) {
    static_cast<int32_t*>(c)[at] = acc;
    return;
  }
  if (o.kind == OutputKind::float32) {
    const float scale = o.row_scale ? o.row_scale[i] * o.scale[j] : o.scale[j];
    float v = static_cast<float>(acc) * scale;
    if (o.offset) v = v + o.offset[j];
    v = v > o.fmin ? v : o.fmin;
    v = v < o.fmax ? v : o.fmax;
    static_cast<float*>(c)[at] = v;
    return;
  }
  int32_t q;
  if (o.kind == OutputKind::requantize_float) {
    float scale = o.scale[j], offset = o.offset ? o.offset[j] : 0.0f;
    if (o.row_scale) {
      const float ab = o.row_scale[i] * o.scale[j];
      scale = ab / o.y_scale;
      offset = offset / ab;
    }
    float v = static_cast<float>(acc);
    if (o.offset) v = v + offset;
    v = v * scale;
    q = round_clamped(v, o.qmin - o.zero_point, o.qmax - o.zero_point) + o.zero_point;
  } else {
    // Saturating: the zero point is added in 64 bits, then clamped.
    const int64_t v = int64_t(multiply_by_quantized_multiplier(acc, o.multiplier[j], o.shift[j])) + o.zero_point;
    q = static_cast<int32_t>(v < o.qmin ? o.qmin : v > o.qmax ? o.qmax : v);
  }
  if (o.out_u8) static_cast<uint8_t*>(c)[at] = static_cast<uint8_t>(q);
  else static_cast<int8_t*>(c)[at] = static_cast<int8_t>(q);
}

}  // namespace
}  // namespace qgemm
