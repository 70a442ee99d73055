// The GEMM epilogue on NEON registers: one tile row of 4 * V int32 lanes,
// bit-exact with epilogue_scalar.h. Included by each NEON GEMM translation
// unit (compiled with different flags), so everything has internal linkage.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

#define QGEMM_NEON_INLINE inline __attribute__((always_inline))

// int32 arithmetic modulo 2^32 (see gemm.h): arm_neon.h implements the
// signed vaddq/vsubq as C operators, where overflow is undefined, so wrap in
// uint32 lanes (the same add/sub instructions).
QGEMM_NEON_INLINE int32x4_t wrap_add4(int32x4_t x, int32x4_t y) {
  return vreinterpretq_s32_u32(vaddq_u32(vreinterpretq_u32_s32(x), vreinterpretq_u32_s32(y)));
}
QGEMM_NEON_INLINE int32x4_t wrap_sub4(int32x4_t x, int32x4_t y) {
  return vreinterpretq_s32_u32(vsubq_u32(vreinterpretq_u32_s32(x), vreinterpretq_u32_s32(y)));
}

// TFLite's MultiplyByQuantizedMultiplier with per-lane shifts (> 0 left).
QGEMM_NEON_INLINE int32x4_t mbqm4(int32x4_t x, int32x4_t mult, int32x4_t shift) {
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t left = vmaxq_s32(shift, zero);
  const int32x4_t neg_right = vminq_s32(shift, zero);  // vrshl shifts right by negative counts
  // sqrdmulh is exactly gemmlowp's SaturatingRoundingDoublingHighMul; sshl
  // by a positive count wraps like the reference's int32 multiply by 2^left.
  const int32x4_t p = vqrdmulhq_s32(vshlq_s32(x, left), mult);
  // RoundingDivideByPOT rounds ties away from zero, vrshl rounds them up:
  // subtract 1 from negative values first (where the shift is nonzero).
  // Saturating, so INT32_MIN (a multiple of 2^right) stays exact.
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(p, neg_right), 31);
  return vrshlq_s32(vqaddq_s32(p, fixup), neg_right);
}

// One tile row of accumulators; V vectors of 4 columns.
template <int V>
struct AccRow {
  int32x4_t v[V];
};

// The epilogue for tile row i: accumulate (int32 only), the zero-point
// algebra, the output stage, then store n <= 4 * V elements. Partial rows
// go through a stack buffer: nothing outside the n columns is read or written.
template <int V>
QGEMM_NEON_INLINE void store_row(void* c, size_t ldc, int i, AccRow<V> r, int n, int flags,
                                 const GemmEpilogue* ep) {
  static_assert(V % 2 == 0, "rows narrow to bytes 8 lanes at a time");
  constexpr int kNr = 4 * V;
  const bool full = n == kNr;
  int32_t tmp[kNr];
  if (flags & kGemmAccumulate) {
    const int32_t* row = static_cast<const int32_t*>(c) + i * ldc;
    if (!full) {
      for (int j = 0; j < kNr; ++j) tmp[j] = j < n ? row[j] : 0;
      row = tmp;
    }
    for (int q = 0; q < V; ++q) r.v[q] = wrap_add4(r.v[q], vld1q_s32(row + 4 * q));
  }
  const int kind = (flags & kGemmFinal) ? ep->kind : kOutInt32;
  if (flags & kGemmFinal) {
    for (int q = 0; q < V; ++q) r.v[q] = wrap_sub4(r.v[q], vld1q_s32(ep->col_term + 4 * q));
    if (ep->row_za) {
      const int32x4_t za = vdupq_n_s32(ep->row_za[i]);
      for (int q = 0; q < V; ++q) r.v[q] = vmlsq_s32(r.v[q], vld1q_s32(ep->col_sum + 4 * q), za);
    }
    if (ep->col_zb) {
      const int32x4_t rt = vdupq_n_s32(ep->row_term[i]);
      for (int q = 0; q < V; ++q) r.v[q] = vmlsq_s32(r.v[q], vld1q_s32(ep->col_zb + 4 * q), rt);
    }
  }
  if (kind == kOutInt32 || kind == kOutFloat32) {
    if (kind == kOutFloat32) {
      const float32x4_t lo = vdupq_n_f32(ep->fmin), hi = vdupq_n_f32(ep->fmax);
      for (int q = 0; q < V; ++q) {
        float32x4_t s = vld1q_f32(ep->col_scale + 4 * q);
        if (ep->row_scale) s = vmulq_f32(vdupq_n_f32(ep->row_scale[i]), s);
        float32x4_t f = vmulq_f32(vcvtq_f32_s32(r.v[q]), s);
        if (ep->col_offset) f = vaddq_f32(f, vld1q_f32(ep->col_offset + 4 * q));
        // Compare and select, as the reference's ternaries (fmax/fmin
        // differ from them on NaN and on signed zeros).
        f = vbslq_f32(vcgtq_f32(f, lo), f, lo);
        f = vbslq_f32(vcltq_f32(f, hi), f, hi);
        r.v[q] = vreinterpretq_s32_f32(f);
      }
    }
    int32_t* row = static_cast<int32_t*>(c) + i * ldc;  // int32 and float32 are both 4 bytes
    int32_t* dst = full ? row : tmp;
    for (int q = 0; q < V; ++q) vst1q_s32(dst + 4 * q, r.v[q]);
    if (!full)
      for (int j = 0; j < n; ++j) row[j] = tmp[j];
    return;
  }
  const int32x4_t zp = vdupq_n_s32(ep->zero_point);
  int32x4_t qv[V];
  if (kind == kOutQuantFloat) {
    const float32x4_t lo = vdupq_n_f32(static_cast<float>(ep->qmin - ep->zero_point));
    const float32x4_t hi = vdupq_n_f32(static_cast<float>(ep->qmax - ep->zero_point));
    for (int q = 0; q < V; ++q) {
      float32x4_t s = vld1q_f32(ep->col_scale + 4 * q);
      float32x4_t o = ep->col_offset ? vld1q_f32(ep->col_offset + 4 * q) : vdupq_n_f32(0.0f);
      if (ep->row_scale) {  // kernels.h: per-tensor numerics element by element
        const float32x4_t ab = vmulq_f32(vdupq_n_f32(ep->row_scale[i]), s);
        s = vdivq_f32(ab, vdupq_n_f32(ep->y_scale));
        o = vdivq_f32(o, ab);
      }
      float32x4_t f = vcvtq_f32_s32(r.v[q]);
      if (ep->col_offset) f = vaddq_f32(f, o);
      f = vmulq_f32(f, s);
      // Clamp in float (maxnm: NaN -> lo, like the reference), then round
      // half to even whatever the FPCR mode.
      f = vminnmq_f32(vmaxnmq_f32(f, lo), hi);
      qv[q] = vaddq_s32(vcvtnq_s32_f32(f), zp);
    }
  } else {  // kOutQuantFixed: clamp before adding the zero point, so nothing overflows
    const int32x4_t lo = vdupq_n_s32(ep->qmin - ep->zero_point);
    const int32x4_t hi = vdupq_n_s32(ep->qmax - ep->zero_point);
    for (int q = 0; q < V; ++q) {
      const int32x4_t m = mbqm4(r.v[q], vld1q_s32(ep->col_mult + 4 * q),
                                vld1q_s32(ep->col_shift + 4 * q));
      qv[q] = vaddq_s32(vminq_s32(vmaxq_s32(m, lo), hi), zp);
    }
  }
  // Values are in range already: the saturating narrows only narrow.
  uint8_t* row = static_cast<uint8_t*>(c) + i * ldc;
  uint8_t bytes[kNr];
  uint8_t* dst = full ? row : bytes;
  for (int h = 0; h < V / 2; ++h) {
    const int16x8_t w = vcombine_s16(vqmovn_s32(qv[2 * h]), vqmovn_s32(qv[2 * h + 1]));
    const uint8x8_t b = ep->out_u8 ? vqmovun_s16(w) : vreinterpret_u8_s8(vqmovn_s16(w));
    vst1_u8(dst + 8 * h, b);
  }
  if (!full)
    for (int j = 0; j < n; ++j) row[j] = bytes[j];
}

// The standalone output stage (requantize) on accumulators from memory.
template <int V>
void epilogue_rows(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                   const GemmEpilogue* ep) {
  constexpr int kNr = 4 * V;
  int32_t tmp[kNr] = {};
  for (int i = 0; i < m; ++i) {
    const int32_t* row = acc + i * lda;
    if (n < kNr) {  // never read past the caller's n columns
      for (int j = 0; j < n; ++j) tmp[j] = row[j];
      row = tmp;
    }
    AccRow<V> r;
    for (int q = 0; q < V; ++q) r.v[q] = vld1q_s32(row + 4 * q);
    store_row<V>(c, ldc, i, r, n, kGemmFinal, ep);
  }
}

}  // namespace
}  // namespace qgemm
