#include "qgemm/output_params.h"

#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace qgemm {

namespace {

// v's values for the stage; an empty v (no columns) still gives a pointer,
// never read, so that the stage counts as complete.
template <class T>
const T* values(const std::vector<T>& v) {
  static const T none{};
  return v.empty() ? &none : v.data();
}

bool is_normal_positive(float v) { return v >= FLT_MIN && v <= FLT_MAX; }  // NaN fails both

// Refuses a float32 value past the normal range: as a multiplier it would
// become inf or 0 (or lose its precision).
void require_normal(const std::vector<float>& v, const char* what) {
  for (float x : v) {
    if (is_normal_positive(x)) continue;
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "%s = %g in float32: it must be finite and normal (%.3g to %.3g); the scales are out of "
                  "proportion",
                  what, static_cast<double>(x), static_cast<double>(FLT_MIN), static_cast<double>(FLT_MAX));
    throw std::invalid_argument(msg);
  }
}

void require_finite(const std::vector<float>& v, const char* what) {
  for (float x : v)
    if (!std::isfinite(x))
      throw std::invalid_argument(std::string(what) +
                                  " is not finite in float32 (NaN, infinity, or too large for the scales)");
}

// b_scale per column (n values).
std::vector<float> column_scales(size_t n, const ProductScales& s) {
  std::vector<float> b(n);
  for (size_t j = 0; j < n; ++j) b[j] = s.b[s.b_count == 1 ? 0 : j];
  return b;
}

bool per_row(const ProductScales& s) { return s.a_per_row; }

// float32(a_scale * b_scale[j]) per column (a_scale per tensor), refused
// unless normal.
std::vector<float> scale_products(size_t n, const ProductScales& s) {
  std::vector<float> ab = column_scales(n, s);
  for (float& v : ab) v = s.a[0] * v;
  require_normal(ab, "a_scale * b_scale");
  return ab;
}

// With per-row a_scale the epilogue forms a_scale[i] * b_scale[j] (and its
// ratio to y_scale) per element: every one must stay normal, which the
// extremes decide (products of positive values are monotone).
void require_normal_products(size_t n, const ProductScales& s, const float* y_scale) {
  if (n == 0 || s.a_count == 0) return;
  const auto [bmin, bmax] = std::minmax_element(s.b, s.b + s.b_count);
  const auto [amin, amax] = std::minmax_element(s.a, s.a + s.a_count);
  const float lo = *amin * *bmin, hi = *amax * *bmax;
  bool ok = lo >= FLT_MIN && std::isfinite(hi);
  if (ok && y_scale) ok = lo / *y_scale >= FLT_MIN && std::isfinite(hi / *y_scale);
  if (!ok)
    throw std::invalid_argument(
        "a_scale * b_scale (and its ratio to y_scale) must stay within float32's finite normal range for "
        "every row and column");
}

}  // namespace

void quantized_clamp(RealClamp clamp, const QuantizedOutput& y, int32_t* qmin, int32_t* qmax) {
  const int32_t lo = y.is_u8 ? 0 : -128, hi = y.is_u8 ? 255 : 127;
  auto code = [&](float x) -> int32_t {  // as quantize(): float32 division, round half to even
    if (std::isinf(x)) return x < 0 ? lo : hi;
    const float q = std::nearbyint(x / y.scale) + static_cast<float>(y.zero_point);
    return static_cast<int32_t>(std::min(std::max(q, static_cast<float>(lo)), static_cast<float>(hi)));
  };
  *qmin = std::max(lo, code(clamp.lo));
  *qmax = std::min(hi, code(clamp.hi));
}

void OutputParams::set_bias(size_t n, const int32_t* bias) {
  if (!bias) return;
  bias_.assign(bias, bias + n);
  stage_.bias = values(bias_);
}

void OutputParams::set_quantized(const QuantizedOutput& y, RealClamp clamp) {
  stage_.zero_point = y.zero_point;
  stage_.out_u8 = y.is_u8;
  quantized_clamp(clamp, y, &stage_.qmin, &stage_.qmax);
}

void OutputParams::clamp_codes(int32_t lo, int32_t hi) {
  stage_.qmin = std::max(stage_.qmin, lo);
  stage_.qmax = std::min(stage_.qmax, hi);
  check_output_stage(stage_);
}

OutputParams int32_output(size_t n, const int32_t* bias) {
  OutputParams p;
  p.columns_ = n;
  p.set_bias(n, bias);
  return p;
}

OutputParams dequantize_output(size_t n, const ProductScales& s, const StageBias& bias, RealClamp clamp) {
  OutputParams p;
  p.columns_ = n;
  p.stage_.kind = OutputKind::float32;
  if (per_row(s)) {  // scale = b_scale; the epilogue multiplies by row_scale[i]
    require_normal_products(n, s, nullptr);
    p.scale_ = column_scales(n, s);
    p.row_scale_.assign(s.a, s.a + s.a_count);
    p.stage_.row_scale = values(p.row_scale_);
  } else {
    p.scale_ = scale_products(n, s);
  }
  p.stage_.scale = values(p.scale_);
  if (bias.real) {
    p.offset_.assign(bias.real, bias.real + n);
    require_finite(p.offset_, "bias");
    p.stage_.offset = values(p.offset_);
  }
  p.set_bias(n, bias.int32);
  p.stage_.fmin = clamp.lo;
  p.stage_.fmax = clamp.hi;
  check_output_stage(p.stage_);
  return p;
}

OutputParams requantize_float_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                     const StageBias& bias, RealClamp clamp) {
  OutputParams p;
  p.columns_ = n;
  p.stage_.kind = OutputKind::requantize_float;
  p.set_quantized(y, clamp);
  if (per_row(s)) {  // divided per element by y_scale (output_stage.h)
    require_normal_products(n, s, &y.scale);
    p.scale_ = column_scales(n, s);
    p.row_scale_.assign(s.a, s.a + s.a_count);
    p.stage_.row_scale = values(p.row_scale_);
    p.stage_.y_scale = y.scale;
    if (bias.real) {
      p.offset_.assign(bias.real, bias.real + n);
      require_finite(p.offset_, "bias");
    }
  } else {
    const std::vector<float> ab = scale_products(n, s);
    p.scale_.resize(n);
    for (size_t j = 0; j < n; ++j) p.scale_[j] = ab[j] / y.scale;
    require_normal(p.scale_, "a_scale * b_scale / y_scale");
    if (bias.real) {
      p.offset_.resize(n);
      for (size_t j = 0; j < n; ++j) p.offset_[j] = bias.real[j] / ab[j];
      require_finite(p.offset_, "bias / (a_scale * b_scale)");
    }
  }
  p.stage_.scale = values(p.scale_);
  if (bias.real) p.stage_.offset = values(p.offset_);
  p.set_bias(n, bias.int32);
  check_output_stage(p.stage_);
  return p;
}

OutputParams requantize_fixed_point_output(size_t n, const ProductScales& s, const QuantizedOutput& y,
                                           const int32_t* bias, RealClamp clamp) {
  if (per_row(s))
    throw std::invalid_argument("requant='fixed_point' takes a per-tensor a_scale (TFLite semantics); per-row "
                                "a_scale needs requant='float' or out_dtype='float32'");
  OutputParams p;
  p.columns_ = n;
  p.stage_.kind = OutputKind::requantize_fixed_point;
  p.set_quantized(y, clamp);
  const std::vector<float> ab = scale_products(n, s);
  std::vector<double> real(n);
  std::vector<float> real32(n);
  for (size_t j = 0; j < n; ++j) {
    real[j] = static_cast<double>(ab[j]) / static_cast<double>(y.scale);
    real32[j] = static_cast<float>(real[j]);
  }
  require_normal(real32, "a_scale * b_scale / y_scale");
  p.multiplier_.resize(n);
  p.shift_.resize(n);
  quantize_multipliers(real.data(), n, p.multiplier_.data(), p.shift_.data());
  p.stage_.multiplier = values(p.multiplier_);
  p.stage_.shift = values(p.shift_);
  p.set_bias(n, bias);
  check_output_stage(p.stage_);
  return p;
}

OutputParams requantize_by_multiplier(size_t n, const double* multiplier, size_t count, bool per_row,
                                      bool fixed_point, const QuantizedOutput& y, const int32_t* bias) {
  if (per_row && fixed_point)
    throw std::invalid_argument("a per-row multiplier needs requant='float' (the fixed-point scheme has one "
                                "input scale)");
  if (!per_row && count != 1 && count != n)
    throw std::invalid_argument("multiplier needs one value, one per column or one per row");
  std::vector<float> m32(multiplier, multiplier + count);  // rounded once to float32
  require_normal(m32, "multiplier");
  OutputParams p;
  p.columns_ = n;
  p.set_quantized(y, RealClamp{});
  p.set_bias(n, bias);
  if (fixed_point) {
    p.stage_.kind = OutputKind::requantize_fixed_point;
    std::vector<double> real(n);
    for (size_t j = 0; j < n; ++j) real[j] = multiplier[count == 1 ? 0 : j];
    p.multiplier_.resize(n);
    p.shift_.resize(n);
    quantize_multipliers(real.data(), n, p.multiplier_.data(), p.shift_.data());
    p.stage_.multiplier = values(p.multiplier_);
    p.stage_.shift = values(p.shift_);
  } else {
    p.stage_.kind = OutputKind::requantize_float;
    if (per_row) {  // row_scale * 1 / 1 in the epilogue: each row's float32 multiplier exactly
      p.row_scale_ = std::move(m32);
      p.stage_.row_scale = values(p.row_scale_);
      p.scale_.assign(n, 1.0f);
    } else {
      p.scale_.resize(n);
      for (size_t j = 0; j < n; ++j) p.scale_[j] = m32[count == 1 ? 0 : j];
    }
    p.stage_.scale = values(p.scale_);
  }
  check_output_stage(p.stage_);
  return p;
}

}  // namespace qgemm
