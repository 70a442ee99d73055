// AVX2 GEMM microkernel, exact for every int8/uint8 input: a 6x16 int32 tile,
// K in pairs. A arrives packed as int16 pairs (u8 zero-extended, s8
// sign-extended); B as int8 pairs widened in registers with vpmovsxbw (packed
// B stays 1 byte per element). vpmaddwd on int16 never saturates here
// (|a*b| <= 255*128, two of them fit int32 easily), unlike vpmaddubsw.
// Compiled with -mavx2 -mfma: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

constexpr int kMr = 6, kNr = 16, kKr = 2;

inline __m256i load8(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }

// gemmlowp's SaturatingRoundingDoublingHighMul on 8 lanes: (x*m + 2^30) >> 31
// in 64 bits (one formula covers both signs), INT32_MIN * INT32_MIN saturated.
inline __m256i srdhm8(__m256i x, __m256i m) {
  const __m256i nudge = _mm256_set1_epi64x(int64_t(1) << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
  const __m256i odd = _mm256_srli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge),
      31);
  const __m256i r = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  const __m256i min = _mm256_set1_epi32(INT32_MIN);
  const __m256i both_min = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(INT32_MAX), both_min);
}

// TFLite's MultiplyByQuantizedMultiplier on 8 lanes with per-lane shifts.
inline __m256i mbqm8(__m256i x, __m256i mult, __m256i shift) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i left = _mm256_max_epi32(shift, zero), right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
  const __m256i p = srdhm8(_mm256_sllv_epi32(x, left), mult);
  // RoundingDivideByPOT: add one where the remainder exceeds half (ties away from zero).
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), right), _mm256_set1_epi32(1));
  const __m256i rem = _mm256_and_si256(p, mask);
  const __m256i threshold = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), _mm256_cmpgt_epi32(zero, p));
  return _mm256_sub_epi32(_mm256_srav_epi32(p, right), _mm256_cmpgt_epi32(rem, threshold));
}

// float -> rounded int32 clamped to [lo, hi] (float clamp first: no overflow, NaN-free).
inline __m256i round_clamped8(__m256 v, __m256 lo, __m256 hi) {
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
}

// The epilogue for one tile row: accumulate / zero-point algebra / output
// stage, then store n <= 16 elements of row i.
inline void store_row(void* c, size_t ldc, int i, __m256i v0, __m256i v1, int n, int flags,
                      const GemmEpilogue* ep) {
  const bool full = n == kNr;
  alignas(32) int32_t tmp[kNr];
  if (flags & kGemmAccumulate) {  // int32 output only
    const int32_t* row = static_cast<const int32_t*>(c) + i * ldc;
    if (!full) {
      for (int j = 0; j < kNr; ++j) tmp[j] = j < n ? row[j] : 0;
      row = tmp;
    }
    v0 = _mm256_add_epi32(v0, load8(row));
    v1 = _mm256_add_epi32(v1, load8(row + 8));
  }
  const int kind = (flags & kGemmFinal) ? ep->kind : kOutInt32;
  if (flags & kGemmFinal) {
    v0 = _mm256_sub_epi32(v0, load8(ep->col_term));
    v1 = _mm256_sub_epi32(v1, load8(ep->col_term + 8));
    if (ep->col_zb) {
      const __m256i rt = _mm256_set1_epi32(ep->row_term[i]);
      v0 = _mm256_sub_epi32(v0, _mm256_mullo_epi32(load8(ep->col_zb), rt));
      v1 = _mm256_sub_epi32(v1, _mm256_mullo_epi32(load8(ep->col_zb + 8), rt));
    }
  }
  if (kind == kOutInt32 || kind == kOutFloat32) {
    __m256i w0 = v0, w1 = v1;
    if (kind == kOutFloat32) {
      __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), load8(ep->col_scale));
      __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(v1), load8(ep->col_scale + 8));
      if (ep->col_offset) {
        f0 = _mm256_add_ps(f0, load8(ep->col_offset));
        f1 = _mm256_add_ps(f1, load8(ep->col_offset + 8));
      }
      const __m256 lo = _mm256_set1_ps(ep->fmin), hi = _mm256_set1_ps(ep->fmax);
      w0 = _mm256_castps_si256(_mm256_min_ps(_mm256_max_ps(f0, lo), hi));
      w1 = _mm256_castps_si256(_mm256_min_ps(_mm256_max_ps(f1, lo), hi));
    }
    int32_t* row = static_cast<int32_t*>(c) + i * ldc;  // int32 and float32 are both 4 bytes
    if (full) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), w0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 8), w1);
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), w0);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), w1);
      for (int j = 0; j < n; ++j) row[j] = tmp[j];
    }
    return;
  }
  const __m256i zp = _mm256_set1_epi32(ep->zero_point);
  __m256i q0, q1;
  if (kind == kOutQuantFloat) {
    __m256 f0 = _mm256_cvtepi32_ps(v0), f1 = _mm256_cvtepi32_ps(v1);
    if (ep->col_offset) {
      f0 = _mm256_add_ps(f0, load8(ep->col_offset));
      f1 = _mm256_add_ps(f1, load8(ep->col_offset + 8));
    }
    f0 = _mm256_mul_ps(f0, load8(ep->col_scale));
    f1 = _mm256_mul_ps(f1, load8(ep->col_scale + 8));
    const __m256 lo = _mm256_set1_ps(static_cast<float>(ep->qmin - ep->zero_point));
    const __m256 hi = _mm256_set1_ps(static_cast<float>(ep->qmax - ep->zero_point));
    q0 = _mm256_add_epi32(round_clamped8(f0, lo, hi), zp);
    q1 = _mm256_add_epi32(round_clamped8(f1, lo, hi), zp);
  } else {  // kOutQuantFixed: clamp before adding the zero point, so nothing overflows
    const __m256i lo = _mm256_set1_epi32(ep->qmin - ep->zero_point);
    const __m256i hi = _mm256_set1_epi32(ep->qmax - ep->zero_point);
    q0 = mbqm8(v0, load8(ep->col_mult), load8(ep->col_shift));
    q1 = mbqm8(v1, load8(ep->col_mult + 8), load8(ep->col_shift + 8));
    q0 = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q0, lo), hi), zp);
    q1 = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q1, lo), hi), zp);
  }
  // 16 int32 in range -> 16 bytes, in order (the packs only narrow).
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
  const __m128i lo16 = _mm256_castsi256_si128(w), hi16 = _mm256_extracti128_si256(w, 1);
  const __m128i bytes = ep->out_u8 ? _mm_packus_epi16(lo16, hi16) : _mm_packs_epi16(lo16, hi16);
  uint8_t* row = static_cast<uint8_t*>(c) + i * ldc;
  if (full) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row), bytes);
  } else {
    alignas(16) uint8_t b[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(b), bytes);
    for (int j = 0; j < n; ++j) row[j] = b[j];
  }
}

// M live rows (1..6) of the tile: fewer rows, fewer accumulators, so the
// small-M / GEMV case streams B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const int32_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const GemmEpilogue* ep) {
  // Fully unrolled so the 2*M accumulators live in registers (checked in the
  // generated code: the loop body is loads, vpmaddwd and vpaddd only).
  __m256i acc0[M], acc1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm256_setzero_si256();
  // Few rows (GEMV): unrolled so loop overhead does not bound the B stream.
  size_t g = 0;
  if (M <= 2) {
    for (; g + 4 <= k_groups; g += 4) {
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) {
        const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
        const __m256i b1 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
#pragma GCC unroll 2
        for (int i = 0; i < M; ++i) {
          const __m256i ai = _mm256_set1_epi32(a[i]);
          acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(ai, b0));
          acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(ai, b1));
        }
        a += kMr;
        b += kNr * kKr;
      }
    }
  }
  for (; g < k_groups; ++g) {
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m256i b1 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256i ai = _mm256_set1_epi32(a[i]);  // (a[k], a[k+1]) as one int32
      acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(ai, b0));
      acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(ai, b1));
    }
    a += kMr;
    b += kNr * kKr;
  }
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) store_row(c, ldc, i, acc0[i], acc1[i], n, flags, ep);
}

void gemm_s8s8_6x16c2_avx2(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                           size_t ldc, int m, int n, int flags, const GemmEpilogue* ep) {
  const int32_t* a = static_cast<const int32_t*>(a_packed);
  switch (m) {
    case 1: return tile<1>(k_groups, a, b, c, ldc, n, flags, ep);
    case 2: return tile<2>(k_groups, a, b, c, ldc, n, flags, ep);
    case 3: return tile<3>(k_groups, a, b, c, ldc, n, flags, ep);
    case 4: return tile<4>(k_groups, a, b, c, ldc, n, flags, ep);
    case 5: return tile<5>(k_groups, a, b, c, ldc, n, flags, ep);
    default: return tile<6>(k_groups, a, b, c, ldc, n, flags, ep);
  }
}

void epilogue_avx2(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                   const GemmEpilogue* ep) {
  alignas(32) int32_t tmp[kNr] = {};
  for (int i = 0; i < m; ++i) {
    const int32_t* row = acc + i * lda;
    if (n < kNr) {  // never read past the caller's n columns
      for (int j = 0; j < n; ++j) tmp[j] = row[j];
      row = tmp;
    }
    store_row(c, ldc, i, load8(row), load8(row + 8), n, kGemmFinal, ep);
  }
}

}  // namespace

const GemmKernel& avx2_gemm_kernel() {
  static const GemmKernel k = {"gemm_s8s8_6x16c2_avx2", kMr, kNr, kKr, 2, gemm_s8s8_6x16c2_avx2,
                               epilogue_avx2};
  return k;
}

}  // namespace qgemm
