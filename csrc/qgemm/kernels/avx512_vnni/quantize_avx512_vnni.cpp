// AVX-512 quantize / dequantize, 64 elements (one output cache line of
// bytes) per step. The arithmetic is quantize_vector.h's QuantizeLanes over
// the AVX-512 primitive set (true division, clamp in float with maxps/minps,
// NaN -> lower bound, round half to even with cvtps2dq under the default
// rounding mode, then add the zero point), so results are bit-identical
// with the scalar reference. The drivers are this ISA's own, not
// quantize_vector.h's: tails use masked loads and stores, and large
// calls are DRAM bound, not divider bound (in L1 one core quantizes ~19
// Gelem/s): they prefetch far ahead and stream the output past the caches.
// Compiled with AVX-512 F/BW/DQ/VL flags: only reached after run-time detection.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx512_vnni/vector_avx512_vnni.h"
#include "qgemm/kernels/quantize_vector.h"

namespace qgemm {
namespace {

constexpr size_t kStep = 64;
// Large outputs are written with non-temporal stores (elements per call).
constexpr size_t kStreamMin = size_t(1) << 20;
// Software prefetch distance for the input stream. One core's read rate from
// DRAM is bound by how many cache-line misses it has in flight, and the
// hardware prefetcher alone keeps too few: measured on Zen 4 (16M floats,
// one thread), quantize ran 8.8 Gelem/s without and 12.5-14 with 16 KiB ahead.
constexpr size_t kPrefetchBytes = 16384;
// Below this many input bytes per call the data is likely cached, and the
// prefetch instructions only cost load slots (~15% in L1).
constexpr size_t kPrefetchMinBytes = size_t(256) << 10;

// Prefetches [p, p + bytes) to L1, one cache line at a time.
inline void prefetch_range(const void* p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64)
    _mm_prefetch(static_cast<const char*>(p) + o, _MM_HINT_T0);
}

template <class T>
using Lanes = QuantizeLanes<VectorAvx512Vnni, T>;

// 64 int32 codes (already in range: the saturating packs only narrow) -> 64
// bytes. The packs interleave per 128-bit lane: dword 4L+j of b holds codes
// 4L..4L+3 of q_j; the permute puts them back in order.
template <bool kU8>
inline __m512i pack64(__m512i q0, __m512i q1, __m512i q2, __m512i q3) {
  const __m512i w01 = _mm512_packs_epi32(q0, q1), w23 = _mm512_packs_epi32(q2, q3);
  const __m512i b = kU8 ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23);
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(order, b);
}

// Up to 16 elements with masks (tails, and the head that aligns the
// input of large calls). Masked-off lanes are neither read nor written;
// they hold x 0 and scale 1 (per element), so they raise no floating-point flags.
template <class T, bool kVec>
inline void quantize_masked(const float* x, T* y, size_t n, const float* scale, const int32_t* zp,
                            const Lanes<T>& p1) {
  constexpr bool kU8 = std::is_same<T, uint8_t>::value;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    Lanes<T> p = p1;
    if (kVec)
      p = Lanes<T>(_mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, scale + i), _mm512_maskz_loadu_epi32(m, zp + i));
    const __m512i q = p.quantize(_mm512_maskz_loadu_ps(m, x + i));
    // In range already: the saturating narrows only narrow.
    if (kU8) _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, q);
    else _mm512_mask_cvtsepi32_storeu_epi8(y + i, m, q);
  }
}

template <class T, bool kVec>
inline __m512i quantize64(const float* x, const float* scale, const int32_t* zp, const Lanes<T>& p1) {
  __m512i q[4];
  for (int j = 0; j < 4; ++j) {
    const Lanes<T> p = kVec ? Lanes<T>(_mm512_loadu_ps(scale + 16 * j), _mm512_loadu_si512(zp + 16 * j)) : p1;
    q[j] = p.quantize(_mm512_loadu_ps(x + 16 * j));
  }
  return pack64<std::is_same<T, uint8_t>::value>(q[0], q[1], q[2], q[3]);
}

// Bytes [s, s + 64) of the 128-byte concatenation (lo, hi), 0 < s < 64, with
// F/BW instructions only: two dword permutes and a funnel shift by s % 4 bytes.
class ByteShift {
 public:
  explicit ByteShift(size_t s)
      : idx_(_mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32(static_cast<int>(s / 4)))),
        right_(_mm_cvtsi32_si128(static_cast<int>(8 * (s % 4)))),
        left_(_mm_cvtsi32_si128(static_cast<int>(32 - 8 * (s % 4)))) {}
  __m512i operator()(__m512i lo, __m512i hi) const {
    const __m512i a = _mm512_permutex2var_epi32(lo, idx_, hi);
    const __m512i b = _mm512_permutex2var_epi32(lo, _mm512_add_epi32(idx_, _mm512_set1_epi32(1)), hi);
    return _mm512_or_si512(_mm512_srl_epi32(a, right_), _mm512_sll_epi32(b, left_));  // << 32 gives 0
  }

 private:
  __m512i idx_;
  __m128i right_, left_;
};

enum Store { kPlain, kStream, kStreamShifted };

// n is a multiple of kStep. kStream needs y 64-byte aligned; kStreamShifted
// takes any other y and streams whole aligned lines, each made of the end of
// one step's 64 codes and the start of the next (first and last partial
// lines with masked stores). The prefetches stay inside [x, x + n): past the
// end they would only fetch lines nobody reads.
template <class T, bool kVec, Store kStore, bool kPrefetch>
inline void quantize_body(const float* x, T* y, size_t n, const float* scale, const int32_t* zp,
                          const Lanes<T>& p1) {
  constexpr size_t ahead = kPrefetchBytes / sizeof(float);
  if (n == 0) return;
  if (kPrefetch) prefetch_range(x, std::min(n, ahead) * sizeof(float));
  const size_t r = reinterpret_cast<uintptr_t>(y) % 64;
  const ByteShift shift(kStore == kStreamShifted ? 64 - r : 1);
  T* const line = y - r;  // y + i - r is aligned
  __m512i prev = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += kStep) {
    if (kPrefetch && i + ahead + kStep <= n) prefetch_range(x + i + ahead, kStep * sizeof(float));
    const __m512i b = quantize64<T, kVec>(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, p1);
    if (kStore == kPlain) {
      _mm512_storeu_si512(y + i, b);
    } else if (kStore == kStream) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(y + i), b);
    } else {
      if (i == 0) _mm512_mask_storeu_epi8(y, ~0ull >> r, b);
      else _mm512_stream_si512(reinterpret_cast<__m512i*>(line + i), shift(prev, b));
      prev = b;
    }
  }
  if (kStore == kStreamShifted)
    _mm512_mask_storeu_epi8(line + n, (1ull << r) - 1, shift(prev, _mm512_setzero_si512()));
}

template <class T, bool kVec>
void quantize_f32(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
  // Per-element arrays may be empty (n == 0): never read them here.
  const Lanes<T> p1(kVec ? 1.0f : scale[0], kVec ? 0 : zp[0]);
  const float* ss = kVec ? scale : nullptr;
  const int32_t* zs = kVec ? zp : nullptr;
  size_t i = 0;
  if (n >= kStreamMin) {
    // Non-temporal stores skip the read-for-ownership of output lines that
    // are only written. A head aligns the input: loads that straddle two
    // cache lines (NumPy's large arrays start 16 bytes into a page) cost ~20%
    // at one core's DRAM rate. The output then goes through kStreamShifted
    // unless it happens to be aligned too.
    const uintptr_t xa = reinterpret_cast<uintptr_t>(x);
    i = xa % 4 ? (64 - reinterpret_cast<uintptr_t>(y) % 64) % 64 : (64 - xa % 64) % 64 / 4;
    quantize_masked<T, kVec>(x, y, i, ss, zs, p1);
    const size_t body = (n - i) / kStep * kStep;
    if (reinterpret_cast<uintptr_t>(y + i) % 64 == 0)
      quantize_body<T, kVec, kStream, true>(x + i, y + i, body, kVec ? ss + i : nullptr, kVec ? zs + i : nullptr, p1);
    else
      quantize_body<T, kVec, kStreamShifted, true>(x + i, y + i, body, kVec ? ss + i : nullptr,
                                                   kVec ? zs + i : nullptr, p1);
    _mm_sfence();
    i += body;
  } else {
    const size_t body = n / kStep * kStep;
    if (n * sizeof(float) >= kPrefetchMinBytes) quantize_body<T, kVec, kPlain, true>(x, y, body, ss, zs, p1);
    else quantize_body<T, kVec, kPlain, false>(x, y, body, ss, zs, p1);
    i = body;
  }
  quantize_masked<T, kVec>(x + i, y + i, n - i, kVec ? ss + i : nullptr, kVec ? zs + i : nullptr, p1);
}

template <class T>
inline __m512i widen16(__m128i b) {
  return std::is_same<T, uint8_t>::value ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b);
}

template <class T, bool kVec, bool kStream, bool kMasked, bool kPrefetch = false>
inline void dequantize_body(const T* q, float* y, size_t n, const float* scale, const int32_t* zp,
                            __m512 s1, __m512i z1) {
  constexpr size_t step = kMasked ? 16 : kStep, ahead = kPrefetchBytes / 4;  // see quantize_body
  if (kPrefetch) prefetch_range(q, std::min(n, ahead));
  for (size_t i = 0; kMasked ? i < n : i + step <= n; i += step) {
    if (kPrefetch && i + ahead + step <= n) _mm_prefetch(reinterpret_cast<const char*>(q + i + ahead), _MM_HINT_T0);
    for (size_t j = 0; j < step; j += 16) {
      const size_t o = i + j;
      const __mmask16 m =
          !kMasked || n - o >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - o)) - 1);
      const __m128i b = kMasked ? _mm_maskz_loadu_epi8(m, q + o)
                                : _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + o));
      __m512 s = s1;
      __m512i z = z1;
      if (kVec) {
        s = kMasked ? _mm512_maskz_loadu_ps(m, scale + o) : _mm512_loadu_ps(scale + o);
        z = kMasked ? _mm512_maskz_loadu_epi32(m, zp + o) : _mm512_loadu_si512(zp + o);
      }
      const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(widen16<T>(b), z)), s);
      if (kMasked) _mm512_mask_storeu_ps(y + o, m, v);
      else if (kStream) _mm512_stream_ps(y + o, v);
      else _mm512_storeu_ps(y + o, v);
    }
  }
}

template <class T, bool kVec>
void dequantize_f32(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
  const __m512 s1 = _mm512_set1_ps(kVec ? 1.0f : scale[0]);
  const __m512i z1 = _mm512_set1_epi32(kVec ? 0 : zp[0]);
  const float* ss = kVec ? scale : nullptr;
  const int32_t* zs = kVec ? zp : nullptr;
  size_t i = 0;
  if (n >= kStreamMin && reinterpret_cast<uintptr_t>(y) % 4 == 0) {  // see quantize_f32
    i = (64 - reinterpret_cast<uintptr_t>(y) % 64) % 64 / 4;
    dequantize_body<T, kVec, false, true>(q, y, i, ss, zs, s1, z1);
    const size_t body = (n - i) / kStep * kStep;
    dequantize_body<T, kVec, true, false, true>(q + i, y + i, body, kVec ? ss + i : nullptr,
                                          kVec ? zs + i : nullptr, s1, z1);
    _mm_sfence();
    i += body;
  } else {
    const size_t body = n / kStep * kStep;
    dequantize_body<T, kVec, false, false>(q, y, body, ss, zs, s1, z1);
    i = body;
  }
  dequantize_body<T, kVec, false, true>(q + i, y + i, n - i, kVec ? ss + i : nullptr,
                                        kVec ? zs + i : nullptr, s1, z1);
}

// minps(x, m) returns m when x is NaN, so NaN never replaces the running
// value (the scalar rule) and the accumulators never hold NaN; four of them
// hide the latency. Masked-off tail lanes keep their accumulator.
void minmax_f32(const float* x, size_t n, float* lo, float* hi) {
  __m512 l[4], h[4];
  for (int u = 0; u < 4; ++u) {
    l[u] = _mm512_set1_ps(INFINITY);
    h[u] = _mm512_set1_ps(-INFINITY);
  }
  // A masked head makes the loop's loads aligned (see quantize_f32).
  const uintptr_t xa = reinterpret_cast<uintptr_t>(x);
  size_t i = std::min(n, xa % 4 ? 0 : (64 - xa % 64) % 64 / 4);
  if (i) {
    const __mmask16 m = __mmask16((1u << i) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x);
    l[0] = _mm512_mask_min_ps(l[0], m, v, l[0]);
    h[0] = _mm512_mask_max_ps(h[0], m, v, h[0]);
  }
  constexpr size_t ahead = kPrefetchBytes / sizeof(float);  // see quantize_body
  const bool pf = n * sizeof(float) >= kPrefetchMinBytes;
  if (pf) prefetch_range(x + i, std::min(n - i, ahead) * sizeof(float));
  for (; i + kStep <= n; i += kStep) {
    if (pf && i + ahead + kStep <= n) prefetch_range(x + i + ahead, kStep * sizeof(float));
#pragma GCC unroll 4  // the accumulators in registers (-O2 left this loop rolled, them in memory)
    for (int u = 0; u < 4; ++u) {
      const __m512 v = _mm512_loadu_ps(x + i + 16 * u);
      l[u] = _mm512_min_ps(v, l[u]);
      h[u] = _mm512_max_ps(v, h[u]);
    }
  }
  for (; i < n; i += 16) {  // the tail
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    l[0] = _mm512_mask_min_ps(l[0], m, v, l[0]);
    h[0] = _mm512_mask_max_ps(h[0], m, v, h[0]);
  }
  // The accumulators hold no NaN (a NaN never replaces a running value), so
  // the lanes reduce in any order to the same value: with vectors, not a
  // serial fold of 64 lanes, which cost more than the loop on a row of a
  // few hundred values (per-token quantization).
  const __m512 l01 = _mm512_min_ps(l[0], l[1]), l23 = _mm512_min_ps(l[2], l[3]);
  const __m512 h01 = _mm512_max_ps(h[0], h[1]), h23 = _mm512_max_ps(h[2], h[3]);
  *lo = _mm512_reduce_min_ps(_mm512_min_ps(l01, l23));
  *hi = _mm512_reduce_max_ps(_mm512_max_ps(h01, h23));
}

// This ISA's drivers in the shape QuantizeTable takes.
struct QuantizeAvx512 {
  template <class T, bool kVec>
  static void quantize(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
    quantize_f32<T, kVec>(x, y, n, scale, zp);
  }
  template <class T, bool kVec>
  static void dequantize(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
    dequantize_f32<T, kVec>(q, y, n, scale, zp);
  }
  static void minmax(const float* x, size_t n, float* lo, float* hi) { minmax_f32(x, n, lo, hi); }
};

}  // namespace

const QuantizeKernels& avx512_vnni_quantize_kernels() {
  static const QuantizeKernels k = QuantizeTable<QuantizeAvx512>::kernels();
  return k;
}

}  // namespace qgemm
