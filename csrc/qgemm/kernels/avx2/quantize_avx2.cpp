// AVX2 quantize / dequantize, 32 elements per step. Same arithmetic as the
// scalar reference (divide, clamp in float with maxps/minps, round half to
// even with cvtps2dq under the default rounding mode, add the zero point),
// so results are bit-identical. Tails go through a padded stack buffer.
// Compiled with -mavx2 -mfma: only reached after run-time detection.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qgemm/kernels.h"
#include "qgemm/kernels/minmax_fold.h"

namespace qgemm {
namespace {

constexpr size_t kStep = 32;
constexpr size_t kStreamMin = size_t(1) << 20;  // elements per call
constexpr int kPrefetchBytes = 2048;

// Parameters for 8 lanes: scale, float clamp bounds, zero point.
struct Lanes {
  __m256 scale, lo, hi;
  __m256i zp;
};

template <bool kU8>
inline Lanes lanes_from(__m256 scale, __m256i zp) {
  const __m256i qmin = _mm256_set1_epi32(kU8 ? 0 : -128), qmax = _mm256_set1_epi32(kU8 ? 255 : 127);
  return {scale, _mm256_cvtepi32_ps(_mm256_sub_epi32(qmin, zp)),
          _mm256_cvtepi32_ps(_mm256_sub_epi32(qmax, zp)), zp};
}

inline __m256i quantize8(__m256 x, const Lanes& p) {
  __m256 v = _mm256_div_ps(x, p.scale);
  v = _mm256_max_ps(v, p.lo);  // NaN -> lo (maxps returns its second operand)
  v = _mm256_min_ps(v, p.hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(v), p.zp);
}

// 32 floats -> 32 bytes. Values are already in range: the saturating packs
// only narrow. The permute undoes the packs' per-lane interleaving.
template <bool kU8, bool kStream>
inline void store32(void* y, __m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  const __m256i w01 = _mm256_packs_epi32(q0, q1), w23 = _mm256_packs_epi32(q2, q3);
  const __m256i b = kU8 ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i v = _mm256_permutevar8x32_epi32(b, order);
  if (kStream) _mm256_stream_si256(static_cast<__m256i*>(y), v);
  else _mm256_storeu_si256(static_cast<__m256i*>(y), v);
}

template <class T, bool kVec>
void quantize_f32(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
  constexpr bool kU8 = sizeof(T) == 1 && T(-1) > T(0);
  Lanes p[4];
  if (!kVec)
    for (auto& l : p) l = lanes_from<kU8>(_mm256_set1_ps(scale[0]), _mm256_set1_epi32(zp[0]));
  auto step = [&](const float* xs, const float* ss, const int32_t* zs, void* out, auto stream) {
    __m256i q[4];
    for (int j = 0; j < 4; ++j) {
      if (kVec)
        p[j] = lanes_from<kU8>(_mm256_loadu_ps(ss + 8 * j),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zs + 8 * j)));
      q[j] = quantize8(_mm256_loadu_ps(xs + 8 * j), p[j]);
    }
    _mm_prefetch(reinterpret_cast<const char*>(xs) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(xs) + kPrefetchBytes + 64, _MM_HINT_T0);
    store32<kU8, decltype(stream)::value>(out, q[0], q[1], q[2], q[3]);
  };
  using Plain = std::false_type;
  using Stream = std::true_type;
  size_t i = 0;
  // Large outputs bypass the caches (no read-for-ownership of lines that are
  // only written): the input stream then has the memory bandwidth to itself.
  if (n >= kStreamMin && reinterpret_cast<uintptr_t>(y) % 32 == 0) {
    for (; i + kStep <= n; i += kStep)
      step(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, Stream());
    _mm_sfence();
  }
  for (; i + kStep <= n; i += kStep)
    step(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, Plain());
  if (i < n) {
    const size_t rest = n - i;
    float xs[kStep] = {}, ss[kStep];
    int32_t zs[kStep] = {};
    T out[kStep];
    std::memcpy(xs, x + i, rest * sizeof(float));
    if (kVec) {
      for (size_t j = 0; j < kStep; ++j) ss[j] = 1.0f;
      std::memcpy(ss, scale + i, rest * sizeof(float));
      std::memcpy(zs, zp + i, rest * sizeof(int32_t));
    }
    step(xs, ss, zs, out, Plain());
    std::memcpy(y + i, out, rest * sizeof(T));
  }
}

template <class T>
inline __m256i widen8(const T* q) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q));
  return (T(-1) > T(0)) ? _mm256_cvtepu8_epi32(b) : _mm256_cvtepi8_epi32(b);
}

template <class T, bool kVec>
void dequantize_f32(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
  const __m256 s1 = _mm256_set1_ps(kVec ? 1.0f : scale[0]);
  const __m256i z1 = _mm256_set1_epi32(kVec ? 0 : zp[0]);
  auto step = [&](const T* qs, const float* ss, const int32_t* zs, float* out, auto stream) {
    for (int j = 0; j < 4; ++j) {
      const __m256 s = kVec ? _mm256_loadu_ps(ss + 8 * j) : s1;
      const __m256i z = kVec ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zs + 8 * j)) : z1;
      const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(widen8(qs + 8 * j), z)), s);
      if (decltype(stream)::value) _mm256_stream_ps(out + 8 * j, v);
      else _mm256_storeu_ps(out + 8 * j, v);
    }
  };
  using Plain = std::false_type;
  using Stream = std::true_type;
  size_t i = 0;
  if (n >= kStreamMin && reinterpret_cast<uintptr_t>(y) % 32 == 0) {  // see quantize_f32
    for (; i + kStep <= n; i += kStep)
      step(q + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, Stream());
    _mm_sfence();
  }
  for (; i + kStep <= n; i += kStep)
    step(q + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, Plain());
  if (i < n) {
    const size_t rest = n - i;
    T qs[kStep] = {};
    float ss[kStep] = {}, out[kStep];
    int32_t zs[kStep] = {};
    std::memcpy(qs, q + i, rest * sizeof(T));
    if (kVec) {
      std::memcpy(ss, scale + i, rest * sizeof(float));
      std::memcpy(zs, zp + i, rest * sizeof(int32_t));
    }
    step(qs, ss, zs, out, Plain());
    std::memcpy(y + i, out, rest * sizeof(float));
  }
}

template <class T>
void quantize_tensor(const float* x, T* y, size_t n, float scale, int32_t zp) {
  quantize_f32<T, false>(x, y, n, &scale, &zp);
}
template <class T>
void dequantize_tensor(const T* q, float* y, size_t n, float scale, int32_t zp) {
  dequantize_f32<T, false>(q, y, n, &scale, &zp);
}

// minps(x, m) returns m when x is NaN, so NaN never replaces the running
// value (the scalar rule); four accumulators hide the latency.
void minmax_f32(const float* x, size_t n, float* lo, float* hi) {
  __m256 l[4], h[4];
  for (int u = 0; u < 4; ++u) {
    l[u] = _mm256_set1_ps(INFINITY);
    h[u] = _mm256_set1_ps(-INFINITY);
  }
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int u = 0; u < 4; ++u) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * u);
      l[u] = _mm256_min_ps(v, l[u]);
      h[u] = _mm256_max_ps(v, h[u]);
    }
  alignas(32) float ls[8], hs[8];
  _mm256_store_ps(ls, _mm256_min_ps(_mm256_min_ps(l[0], l[1]), _mm256_min_ps(l[2], l[3])));
  _mm256_store_ps(hs, _mm256_max_ps(_mm256_max_ps(h[0], h[1]), _mm256_max_ps(h[2], h[3])));
  *lo = fold_min(x + i, n - i, fold_min(ls, 8, INFINITY));
  *hi = fold_max(x + i, n - i, fold_max(hs, 8, -INFINITY));
}

}  // namespace

const QuantizeKernels& avx2_quantize_kernels() {
  static const QuantizeKernels k = {
      quantize_tensor<int8_t>,          quantize_tensor<uint8_t>,
      quantize_f32<int8_t, true>,       quantize_f32<uint8_t, true>,
      dequantize_tensor<int8_t>,        dequantize_tensor<uint8_t>,
      dequantize_f32<int8_t, true>,     dequantize_f32<uint8_t, true>,
      minmax_f32,
  };
  return k;
}

}  // namespace qgemm
