// The GEMM epilogue on AVX2 registers: one tile row of 16 int32 lanes (two
// ymm), bit-exact with epilogue_scalar.h. Shared by the AVX2 and AVX-VNNI
// kernels (nr = 16); each includes it into its own translation unit with its
// own flags, so everything here has internal linkage.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

constexpr int kEpilogueCols = 16;

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
  const bool full = n == kEpilogueCols;
  alignas(32) int32_t tmp[kEpilogueCols];
  if (flags & kGemmAccumulate) {  // int32 output only
    const int32_t* row = static_cast<const int32_t*>(c) + i * ldc;
    if (!full) {
      for (int j = 0; j < kEpilogueCols; ++j) tmp[j] = j < n ? row[j] : 0;
      row = tmp;
    }
    v0 = _mm256_add_epi32(v0, load8(row));
    v1 = _mm256_add_epi32(v1, load8(row + 8));
  }
  const int kind = (flags & kGemmFinal) ? ep->kind : kOutInt32;
  if (flags & kGemmFinal) {
    v0 = _mm256_sub_epi32(v0, load8(ep->col_term));
    v1 = _mm256_sub_epi32(v1, load8(ep->col_term + 8));
    if (ep->row_za) {
      const __m256i za = _mm256_set1_epi32(ep->row_za[i]);
      v0 = _mm256_sub_epi32(v0, _mm256_mullo_epi32(load8(ep->col_sum), za));
      v1 = _mm256_sub_epi32(v1, _mm256_mullo_epi32(load8(ep->col_sum + 8), za));
    }
    if (ep->col_zb) {
      const __m256i rt = _mm256_set1_epi32(ep->row_term[i]);
      v0 = _mm256_sub_epi32(v0, _mm256_mullo_epi32(load8(ep->col_zb), rt));
      v1 = _mm256_sub_epi32(v1, _mm256_mullo_epi32(load8(ep->col_zb + 8), rt));
    }
  }
  if (kind == kOutInt32 || kind == kOutFloat32) {
    __m256i w0 = v0, w1 = v1;
    if (kind == kOutFloat32) {
      __m256 s0 = load8(ep->col_scale), s1 = load8(ep->col_scale + 8);
      if (ep->row_scale) {
        const __m256 rs = _mm256_set1_ps(ep->row_scale[i]);
        s0 = _mm256_mul_ps(rs, s0);
        s1 = _mm256_mul_ps(rs, s1);
      }
      __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), s0);
      __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(v1), s1);
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
    __m256 s0 = load8(ep->col_scale), s1 = load8(ep->col_scale + 8);
    __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps();
    if (ep->col_offset) {
      o0 = load8(ep->col_offset);
      o1 = load8(ep->col_offset + 8);
    }
    if (ep->row_scale) {  // kernels.h: per-tensor numerics element by element
      const __m256 rs = _mm256_set1_ps(ep->row_scale[i]), ys = _mm256_set1_ps(ep->y_scale);
      const __m256 ab0 = _mm256_mul_ps(rs, s0), ab1 = _mm256_mul_ps(rs, s1);
      s0 = _mm256_div_ps(ab0, ys);
      s1 = _mm256_div_ps(ab1, ys);
      if (ep->col_offset) {
        o0 = _mm256_div_ps(o0, ab0);
        o1 = _mm256_div_ps(o1, ab1);
      }
    }
    __m256 f0 = _mm256_cvtepi32_ps(v0), f1 = _mm256_cvtepi32_ps(v1);
    if (ep->col_offset) {
      f0 = _mm256_add_ps(f0, o0);
      f1 = _mm256_add_ps(f1, o1);
    }
    f0 = _mm256_mul_ps(f0, s0);
    f1 = _mm256_mul_ps(f1, s1);
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

// The epilogue of an m x n block of accumulators in memory (n <= 16, rows
// lda apart): a tile's, or the standalone requantize's.
inline void epilogue_rows(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                          int flags, const GemmEpilogue* ep) {
  const bool final = flags & kGemmFinal;
  if (n == kEpilogueCols && (!final || (ep->kind == kOutInt32 && !ep->col_zb))) {
    // Plain int32 on whole rows (matmul's common case, and every K block but
    // the last), kept short: the epilogue is a few percent of a tile's time.
    const __m256i zero = _mm256_setzero_si256();
    const __m256i t0 = final ? load8(ep->col_term) : zero, t1 = final ? load8(ep->col_term + 8) : zero;
    const bool per_row = final && ep->row_za;
    const __m256i s0 = per_row ? load8(ep->col_sum) : zero, s1 = per_row ? load8(ep->col_sum + 8) : zero;
    int32_t* row = static_cast<int32_t*>(c);
    for (int i = 0; i < m; ++i, acc += lda, row += ldc) {
      __m256i v0 = _mm256_sub_epi32(load8(acc), t0), v1 = _mm256_sub_epi32(load8(acc + 8), t1);
      if (per_row) {
        const __m256i za = _mm256_set1_epi32(ep->row_za[i]);
        v0 = _mm256_sub_epi32(v0, _mm256_mullo_epi32(s0, za));
        v1 = _mm256_sub_epi32(v1, _mm256_mullo_epi32(s1, za));
      }
      if (flags & kGemmAccumulate) {
        v0 = _mm256_add_epi32(v0, load8(row));
        v1 = _mm256_add_epi32(v1, load8(row + 8));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), v0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 8), v1);
    }
    return;
  }
  alignas(32) int32_t tmp[kEpilogueCols] = {};
  for (int i = 0; i < m; ++i) {
    const int32_t* row = acc + i * lda;
    if (n < kEpilogueCols) {  // never read past the caller's n columns
      for (int j = 0; j < n; ++j) tmp[j] = row[j];
      row = tmp;
    }
    store_row(c, ldc, i, load8(row), load8(row + 8), n, flags, ep);
  }
}

inline void epilogue_rows16(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                            const GemmEpilogue* ep) {
  epilogue_rows(acc, lda, c, ldc, m, n, kGemmFinal, ep);
}

// A microkernel's M x 16 tile to the epilogue, through a stack buffer: with
// the accumulators live across the epilogue's out-of-line calls, the compiler
// would spill them all around every call instead.
template <int M>
inline void epilogue_tile(const __m256i (&acc0)[M], const __m256i (&acc1)[M], void* c, size_t ldc,
                          int n, int flags, const GemmEpilogue* ep) {
  alignas(32) int32_t out[M][kEpilogueCols];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[i]), acc0[i]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[i] + 8), acc1[i]);
  }
  epilogue_rows(out[0], kEpilogueCols, c, ldc, M, n, flags, ep);
}

}  // namespace
}  // namespace qgemm
