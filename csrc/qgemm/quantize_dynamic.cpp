#include "qgemm/quantize_dynamic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "qgemm/thread_pool.h"

namespace qgemm {
namespace {

constexpr size_t kMinParallelElements = size_t(1) << 16;  // as quantize(): below, one thread
constexpr size_t kTasksPerThread = 4;

// Narrows codes to [qmin, qmax] where fewer than 8 bits are kept: a value
// rounded exactly onto the range's edge can land one code past it (the scale
// is itself rounded), and 7-bit activations must stay within 7 bits.
// Blocks of 16 codes with a fixed trip count, which -O2 vectorizes (the
// data is the row just quantized, still in L1).
template <class T>
void clamp_block_wise(T* p, size_t n, T lo, T hi) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (size_t j = i; j < i + 16; ++j) p[j] = p[j] < lo ? lo : p[j] > hi ? hi : p[j];
  for (; i < n; ++i) p[i] = p[i] < lo ? lo : p[i] > hi ? hi : p[i];
}

void clamp_codes(void* q, size_t n, QDtype dtype, int32_t qmin, int32_t qmax) {
  if (dtype == QDtype::u8 && qmax < 255)
    clamp_block_wise(static_cast<uint8_t*>(q), n, uint8_t(0), static_cast<uint8_t>(qmax));
  else if (dtype == QDtype::s8 && (qmin > -128 || qmax < 127))
    clamp_block_wise(static_cast<int8_t*>(q), n, static_cast<int8_t>(qmin), static_cast<int8_t>(qmax));
}

// Whether every code in [qmin, qmax] (the codes are clamped to them)
// dequantizes to a finite float32 with p.
bool finite_params(float lo, float hi, const AffineParams& p, int32_t qmin, int32_t qmax) {
  const double steps = std::max(p.zero_point - qmin, qmax - p.zero_point);
  const double f32_overflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);  // rounds to infinity
  return std::isfinite(lo) && std::isfinite(hi) && double(p.scale) * steps < f32_overflow;
}

}  // namespace

void bits_range(QDtype dtype, int bits, int32_t* qmin, int32_t* qmax) {
  if (dtype == QDtype::u8) {
    *qmin = 0;
    *qmax = (1 << bits) - 1;
  } else {
    *qmin = -(1 << (bits - 1));
    *qmax = (1 << (bits - 1)) - 1;
  }
}

AffineParams range_qparams(float lo, float hi, int32_t qmin, int32_t qmax, bool symmetric) {
  if (lo > hi) lo = hi = 0.0f;
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const float eps = std::numeric_limits<float>::epsilon();
  if (symmetric) {
    const float half = static_cast<float>((qmax - qmin) / 2.0);  // exact: 127.5, 63.5, ...
    const float scale = std::max(std::max(-lo, hi) / half, eps);
    return {scale, (qmin + qmax + 1) >> 1};
  }
  const float scale = std::max((hi - lo) / static_cast<float>(qmax - qmin), eps);
  const int32_t zp = qmin - static_cast<int32_t>(std::nearbyint(lo / scale));
  return {scale, std::min(qmax, std::max(qmin, zp))};
}

DynamicStatus quantize_dynamic(const float* x, size_t rows, size_t k, const DynamicScheme& s, void* q,
                      float* scale, int32_t* zero_point, const QuantizeKernels& kern) {
  int32_t qmin, qmax;
  bits_range(s.dtype, s.bits, &qmin, &qmax);
  const size_t n = rows * k;
  const size_t esize = 1;
  auto quantize_run = [&](const float* src, void* dst, size_t len, const AffineParams& p) {
    if (s.dtype == QDtype::u8) kern.f32_to_u8(src, static_cast<uint8_t*>(dst), len, p.scale, p.zero_point);
    else kern.f32_to_s8(src, static_cast<int8_t*>(dst), len, p.scale, p.zero_point);
    clamp_codes(dst, len, s.dtype, qmin, qmax);
  };
  if (!s.per_row) {
    float lo = 0, hi = 0;
    minmax(x, n, &lo, &hi, kern);
    if (lo > hi) {  // no number at all
      if (n) return DynamicStatus::no_number;
      lo = hi = 0.0f;
    }
    const AffineParams p = range_qparams(lo, hi, qmin, qmax, s.symmetric);
    *scale = p.scale;
    *zero_point = p.zero_point;
    if (!finite_params(lo, hi, p, qmin, qmax)) return DynamicStatus::not_finite;
    quantize(x, q, s.dtype, {n, 1, 1}, &p.scale, &p.zero_point, kern);
    clamp_codes(q, n, s.dtype, qmin, qmax);
    return DynamicStatus::ok;
  }
  // Per row: range, parameters and codes of one row while it is in cache.
  const size_t threads = static_cast<size_t>(usable_threads());
  const size_t tasks = n < kMinParallelElements || threads == 1 ? 1 : std::min(rows, threads * kTasksPerThread);
  std::atomic<DynamicStatus> status{DynamicStatus::ok};  // any failure (which one does not matter)
  parallel_for(tasks, [&](size_t t) {
    for (size_t r = rows * t / tasks; r < rows * (t + 1) / tasks; ++r) {
      const float* row = x + r * k;
      float lo = INFINITY, hi = -INFINITY;
      if (k) kern.minmax_f32(row, k, &lo, &hi);
      if (lo > hi) {
        if (k) status.store(DynamicStatus::no_number, std::memory_order_relaxed);
        lo = hi = 0.0f;
      }
      const AffineParams p = range_qparams(lo, hi, qmin, qmax, s.symmetric);
      scale[r] = p.scale;
      zero_point[r] = p.zero_point;
      if (!finite_params(lo, hi, p, qmin, qmax)) {
        status.store(DynamicStatus::not_finite, std::memory_order_relaxed);
        continue;
      }
      quantize_run(row, static_cast<uint8_t*>(q) + r * k * esize, k, p);
    }
  });
  return status.load();
}

}  // namespace qgemm
