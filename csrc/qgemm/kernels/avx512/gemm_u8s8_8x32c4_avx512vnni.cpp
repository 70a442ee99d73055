// AVX-512 VNNI GEMM microkernel: an 8x32 int32 tile (two zmm per row), K in
// groups of 4. vpdpbusd multiplies 4 uint8 x int8 pairs and adds them to an
// int32 lane with no intermediate narrowing, so it is exact for every input
// (|4 * 255 * 128| fits easily; the int32 sum wraps modulo 2^32 like every
// other path). A arrives packed as uint8 (int8 flipped by ^0x80), B as the
// usual int8 panels [k/4][32][4]; the driver's zero-point algebra absorbs the
// flips. Compiled with AVX-512 flags: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"

namespace qgemm {
namespace {

constexpr int kMr = 8, kNr = 32, kKr = 4;

inline __m512i load16(const int32_t* p) { return _mm512_loadu_si512(p); }
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }

// gemmlowp's SaturatingRoundingDoublingHighMul on 16 lanes: (x*m + 2^30) >> 31
// in 64 bits (one formula covers both signs), INT32_MIN * INT32_MIN saturated.
inline __m512i srdhm16(__m512i x, __m512i m) {
  const __m512i nudge = _mm512_set1_epi64(int64_t(1) << 30);
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
  const __m512i odd = _mm512_srli_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge),
      31);
  const __m512i r = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  const __m512i min = _mm512_set1_epi32(INT32_MIN);
  const __mmask16 both_min = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(m, min);
  return _mm512_mask_mov_epi32(r, both_min, _mm512_set1_epi32(INT32_MAX));
}

// TFLite's MultiplyByQuantizedMultiplier on 16 lanes with per-lane shifts.
inline __m512i mbqm16(__m512i x, __m512i mult, __m512i shift) {
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
  const __m512i left = _mm512_max_epi32(shift, zero);
  const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
  const __m512i p = srdhm16(_mm512_sllv_epi32(x, left), mult);
  // RoundingDivideByPOT: add one where the remainder exceeds half (ties away from zero).
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
  const __m512i rem = _mm512_and_si512(p, mask);
  const __m512i threshold = _mm512_mask_add_epi32(_mm512_srli_epi32(mask, 1),
                                                  _mm512_cmplt_epi32_mask(p, zero),
                                                  _mm512_srli_epi32(mask, 1), one);
  const __m512i q = _mm512_srav_epi32(p, right);
  return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, threshold), q, one);
}

// float -> rounded int32 clamped to [lo, hi] (float clamp first: no overflow).
inline __m512i round_clamped16(__m512 v, __m512 lo, __m512 hi) {
  return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
}

// The per-column parameters of 16 columns, loaded once for all rows of a block.
struct Columns16 {
  __m512i term, zb, mult, shift, sum;
  __m512 scale, offset;
};

inline Columns16 load_columns(const GemmEpilogue* ep, int j) {
  const __m512i zi = _mm512_setzero_si512();
  const __m512 zf = _mm512_setzero_ps();
  return {load16(ep->col_term + j), ep->col_zb ? load16(ep->col_zb + j) : zi,
          ep->col_mult ? load16(ep->col_mult + j) : zi, ep->col_shift ? load16(ep->col_shift + j) : zi,
          ep->row_za ? load16(ep->col_sum + j) : zi,
          ep->col_scale ? load16(ep->col_scale + j) : zf, ep->col_offset ? load16(ep->col_offset + j) : zf};
}

// One row's parameters, broadcast: row term (with col_zb), zero point of A
// and scale (per-row activations).
struct Row16 {
  __m512i term, za;
  __m512 scale;
};

// The epilogue for 16 columns of one row: accumulate / zero-point algebra /
// output stage, then a masked store of the live columns.
__attribute__((always_inline)) inline void store16(void* c_row, __m512i v, const Columns16& col, __mmask16 live,
                                                   const Row16& row, int flags, const GemmEpilogue* ep) {
  if (flags & kGemmAccumulate)  // int32 output only
    v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(live, c_row));
  const int kind = (flags & kGemmFinal) ? ep->kind : kOutInt32;
  if (flags & kGemmFinal) {
    v = _mm512_sub_epi32(v, col.term);
    if (ep->row_za) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(col.sum, row.za));
    if (ep->col_zb) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(col.zb, row.term));
  }
  if (kind == kOutInt32) {
    _mm512_mask_storeu_epi32(c_row, live, v);
    return;
  }
  if (kind == kOutFloat32) {
    const __m512 scale = ep->row_scale ? _mm512_mul_ps(row.scale, col.scale) : col.scale;
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale);
    if (ep->col_offset) f = _mm512_add_ps(f, col.offset);
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(ep->fmin)), _mm512_set1_ps(ep->fmax));
    _mm512_mask_storeu_ps(c_row, live, f);
    return;
  }
  __m512i q;
  if (kind == kOutQuantFloat) {
    __m512 scale = col.scale, offset = col.offset;
    if (ep->row_scale) {  // kernels.h: per-tensor numerics element by element
      const __m512 ab = _mm512_mul_ps(row.scale, col.scale);
      scale = _mm512_div_ps(ab, _mm512_set1_ps(ep->y_scale));
      if (ep->col_offset) offset = _mm512_div_ps(offset, ab);
    }
    __m512 f = _mm512_cvtepi32_ps(v);
    if (ep->col_offset) f = _mm512_add_ps(f, offset);
    f = _mm512_mul_ps(f, scale);
    q = round_clamped16(f, _mm512_set1_ps(static_cast<float>(ep->qmin - ep->zero_point)),
                        _mm512_set1_ps(static_cast<float>(ep->qmax - ep->zero_point)));
  } else {  // kOutQuantFixed: clamp before adding the zero point, so nothing overflows
    q = mbqm16(v, col.mult, col.shift);
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(ep->qmin - ep->zero_point)),
                         _mm512_set1_epi32(ep->qmax - ep->zero_point));
  }
  // In [qmin, qmax] now, so truncating to bytes is exact for int8 and uint8.
  q = _mm512_add_epi32(q, _mm512_set1_epi32(ep->zero_point));
  _mm512_mask_cvtepi32_storeu_epi8(c_row, live, q);
}

// The epilogue of an m x n block of accumulators in memory (rows lda apart):
// a tile's, or the standalone requantize's.
void epilogue_rows(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n, int flags,
                   const GemmEpilogue* ep) {
  // Masked loads: never read past the caller's n columns.
  const __mmask16 live0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 live1 = n >= 32 ? __mmask16(0xFFFF) : n > 16 ? __mmask16((1u << (n - 16)) - 1) : 0;
  const bool final = flags & kGemmFinal;
  if (!final || (ep->kind == kOutInt32 && !ep->col_zb)) {
    // Plain int32 (matmul's common case, and every K block but the last),
    // kept short: the epilogue is a few percent of a tile's time at K = 1024.
    const __m512i zero = _mm512_setzero_si512();
    const __m512i t0 = final ? _mm512_loadu_si512(ep->col_term) : zero;
    const __m512i t1 = final ? _mm512_loadu_si512(ep->col_term + 16) : zero;
    const bool per_row = final && ep->row_za;
    const __m512i s0 = per_row ? _mm512_loadu_si512(ep->col_sum) : zero;
    const __m512i s1 = per_row ? _mm512_loadu_si512(ep->col_sum + 16) : zero;
    int32_t* row = static_cast<int32_t*>(c);
    for (int i = 0; i < m; ++i, acc += lda, row += ldc) {
      __m512i v0 = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(live0, acc), t0);
      __m512i v1 = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(live1, acc + 16), t1);
      if (per_row) {
        const __m512i za = _mm512_set1_epi32(ep->row_za[i]);
        v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(s0, za));
        v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(s1, za));
      }
      if (flags & kGemmAccumulate) {
        v0 = _mm512_add_epi32(v0, _mm512_maskz_loadu_epi32(live0, row));
        v1 = _mm512_add_epi32(v1, _mm512_maskz_loadu_epi32(live1, row + 16));
      }
      _mm512_mask_storeu_epi32(row, live0, v0);
      _mm512_mask_storeu_epi32(row + 16, live1, v1);
    }
    return;
  }
  // Every other case: per-column parameters loaded once, not once per row.
  const Columns16 col0 = load_columns(ep, 0), col1 = load_columns(ep, 16);
  const size_t esize = ep->kind == kOutQuantFloat || ep->kind == kOutQuantFixed ? 1 : 4;
  for (int i = 0; i < m; ++i, acc += lda) {
    uint8_t* row = static_cast<uint8_t*>(c) + i * ldc * esize;
    const Row16 r{ep->col_zb ? _mm512_set1_epi32(ep->row_term[i]) : _mm512_setzero_si512(),
                  ep->row_za ? _mm512_set1_epi32(ep->row_za[i]) : _mm512_setzero_si512(),
                  ep->row_scale ? _mm512_set1_ps(ep->row_scale[i]) : _mm512_setzero_ps()};
    store16(row, _mm512_maskz_loadu_epi32(live0, acc), col0, live0, r, flags, ep);
    if (live1) store16(row + 16 * esize, _mm512_maskz_loadu_epi32(live1, acc + 16), col1, live1, r, flags, ep);
  }
}

inline __m512i broadcast4(const uint8_t* a) {  // 4 bytes of A to every lane
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

// M live rows (1..8) of the tile: fewer rows, fewer accumulators, so that
// small-M / GEMV calls stream B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const uint8_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const GemmEpilogue* ep) {
  __m512i acc0[M], acc1[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm512_setzero_si512();
  size_t g = 0;
  if (M <= 2) {
    // Few rows: two K groups at a time into separate accumulators, so the
    // vpdpbusd latency chain does not bound the B stream.
    __m512i odd0[M], odd1[M];
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) odd0[i] = odd1[i] = _mm512_setzero_si512();
    for (; g + 2 <= k_groups; g += 2) {
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
      const __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
#pragma GCC unroll 2
      for (int i = 0; i < M; ++i) {
        const __m512i ae = broadcast4(a + 4 * i), ao = broadcast4(a + kMr * kKr + 4 * i);
        acc0[i] = _mm512_dpbusd_epi32(acc0[i], ae, b0);
        acc1[i] = _mm512_dpbusd_epi32(acc1[i], ae, b1);
        odd0[i] = _mm512_dpbusd_epi32(odd0[i], ao, b2);
        odd1[i] = _mm512_dpbusd_epi32(odd1[i], ao, b3);
      }
      a += 2 * kMr * kKr;
      b += 2 * kNr * kKr;
    }
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) {
      acc0[i] = _mm512_add_epi32(acc0[i], odd0[i]);
      acc1[i] = _mm512_add_epi32(acc1[i], odd1[i]);
    }
  }
  for (; g < k_groups; ++g) {
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512i ai = broadcast4(a + 4 * i);
      acc0[i] = _mm512_dpbusd_epi32(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbusd_epi32(acc1[i], ai, b1);
    }
    a += kMr * kKr;
    b += kNr * kKr;
  }
  // The epilogue reads the tile back from this buffer: with the accumulators
  // live across its calls, the compiler would spill them all instead.
  alignas(64) int32_t out[M][kNr];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    _mm512_store_si512(out[i], acc0[i]);
    _mm512_store_si512(out[i] + 16, acc1[i]);
  }
  epilogue_rows(out[0], kNr, c, ldc, M, n, flags, ep);
}

void gemm_u8s8_8x32c4_avx512vnni(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                                 size_t ldc, int m, int n, int flags, const GemmEpilogue* ep) {
  const uint8_t* a = static_cast<const uint8_t*>(a_packed);
  with_live_rows<kMr>(m, [&](auto rows) {
    tile<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

void epilogue_avx512vnni(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                         const GemmEpilogue* ep) {
  epilogue_rows(acc, lda, c, ldc, m, n, kGemmFinal, ep);
}

}  // namespace

const GemmKernel& avx512vnni_gemm_kernel() {
  static const GemmKernel k = {"gemm_u8s8_8x32c4_avx512vnni", kMr, kNr, kKr, 1,
                               gemm_u8s8_8x32c4_avx512vnni, epilogue_avx512vnni, true};
  return k;
}

}  // namespace qgemm
