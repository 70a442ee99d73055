// The output stage's primitive set on NEON (4 int32 / float32 lanes): see
// output_stage_vector.h for the contract. Included by each NEON kernel
// (compiled with different flags).
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/live_by_copy.h"

namespace qgemm {
namespace {

struct VectorNeon {
  using Int = int32x4_t;
  using Float = float32x4_t;
  static constexpr int kLanes = 4;

  static QGEMM_INLINE Int load(const int32_t* p) { return vld1q_s32(p); }
  static QGEMM_INLINE Float load(const float* p) { return vld1q_f32(p); }
  static QGEMM_INLINE void store(int32_t* p, Int v) { vst1q_s32(p, v); }
  static QGEMM_INLINE void store(float* p, Float v) { vst1q_f32(p, v); }
  using Live = int;  // lanes 0..4 (live_by_copy.h)
  static QGEMM_INLINE Live live(int n) { return live_count<VectorNeon>(n); }
  static QGEMM_INLINE Int load_live(const int32_t* p, Live n) { return load_live_by_copy<VectorNeon>(p, n); }
  static QGEMM_INLINE void store_live(int32_t* p, Int v, Live n) { store_live_by_copy<VectorNeon>(p, v, n); }
  template <int NV>
  static QGEMM_INLINE void store_bytes(uint8_t* p, const Int (&q)[NV], const Live (&live)[NV], bool u8) {
    static_assert(NV % 2 == 0, "rows narrow to bytes 8 lanes at a time");
    int n = 0;
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) n += live[i];
    // Values are in range already: the saturating narrows only narrow.
    uint8_t tmp[NV * kLanes];
    uint8_t* dst = n == NV * kLanes ? p : tmp;
#pragma GCC unroll 2
    for (int h = 0; h < NV / 2; ++h) {
      const int16x8_t w = vcombine_s16(vqmovn_s32(q[2 * h]), vqmovn_s32(q[2 * h + 1]));
      vst1_u8(dst + 8 * h, u8 ? vqmovun_s16(w) : vreinterpret_u8_s8(vqmovn_s16(w)));
    }
    if (dst == tmp) std::memcpy(p, tmp, n);
  }

  // int32 arithmetic modulo 2^32: arm_neon.h implements the signed
  // add/sub/mul as C operators, where overflow is undefined, so they run on
  // uint32 lanes (the same instructions).
  static QGEMM_INLINE uint32x4_t u(Int a) { return vreinterpretq_u32_s32(a); }
  static QGEMM_INLINE Int s(uint32x4_t a) { return vreinterpretq_s32_u32(a); }
  static QGEMM_INLINE Int dup(int32_t x) { return vdupq_n_s32(x); }
  static QGEMM_INLINE Int add(Int a, Int b) { return s(vaddq_u32(u(a), u(b))); }
  static QGEMM_INLINE Int sub(Int a, Int b) { return s(vsubq_u32(u(a), u(b))); }
  static QGEMM_INLINE Int mul(Int a, Int b) { return s(vmulq_u32(u(a), u(b))); }
  static QGEMM_INLINE Int min(Int a, Int b) { return vminq_s32(a, b); }
  static QGEMM_INLINE Int max(Int a, Int b) { return vmaxq_s32(a, b); }
  static QGEMM_INLINE Int bit_and(Int a, Int b) { return vandq_s32(a, b); }
  using Mask = uint32x4_t;  // all ones where true
  static QGEMM_INLINE Mask equal(Int a, Int b) { return vceqq_s32(a, b); }
  static QGEMM_INLINE Mask greater(Int a, Int b) { return vcgtq_s32(a, b); }
  static QGEMM_INLINE Mask both(Mask a, Mask b) { return vandq_u32(a, b); }
  static QGEMM_INLINE Int select(Mask m, Int a, Int b) { return vbslq_s32(m, a, b); }
  static QGEMM_INLINE Int increment_where(Mask m, Int x) { return s(vsubq_u32(u(x), m)); }
  // sshl by a positive count wraps like the reference's multiply by 2^n;
  // by a negative count it is an arithmetic right shift.
  static QGEMM_INLINE Int shift_left(Int a, Int n) { return vshlq_s32(a, n); }
  static QGEMM_INLINE Int shift_right(Int a, Int n) { return vshlq_s32(a, vnegq_s32(n)); }
  // sqrdmulh is exactly gemmlowp's SaturatingRoundingDoublingHighMul.
  static QGEMM_INLINE Int saturating_rounding_doubling_high_mul(Int x, Int m) { return vqrdmulhq_s32(x, m); }

  static QGEMM_INLINE Float dup(float x) { return vdupq_n_f32(x); }
  static QGEMM_INLINE Float add(Float a, Float b) { return vaddq_f32(a, b); }
  static QGEMM_INLINE Float mul(Float a, Float b) { return vmulq_f32(a, b); }
  static QGEMM_INLINE Float div(Float a, Float b) { return vdivq_f32(a, b); }
  static QGEMM_INLINE Float to_float(Int a) { return vcvtq_f32_s32(a); }
  static QGEMM_INLINE Int round(Float a) { return vcvtnq_s32_f32(a); }  // half to even, whatever FPCR says
  static QGEMM_INLINE Int bits(Float a) { return vreinterpretq_s32_f32(a); }
  // Compare and select, as the reference's ternaries (fmax/fmin differ from
  // them on NaN and on signed zeros).
  static QGEMM_INLINE Float max_or_low(Float v, Float lo) { return vbslq_f32(vcgtq_f32(v, lo), v, lo); }
  static QGEMM_INLINE Float min_or_high(Float v, Float hi) { return vbslq_f32(vcltq_f32(v, hi), v, hi); }
};

}  // namespace
}  // namespace qgemm
