// The output stage's primitive set on AVX-512 (16 int32 / float32 lanes in a
// zmm register; partial rows through masks): see output_stage_vector.h for
// the contract. Compiled with the AVX-512 kernel's flags (F, BW, DQ, VL).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/fixedpoint.h"

namespace qgemm {
namespace {

struct VectorAvx512Vnni {
  using Int = __m512i;
  using Float = __m512;
  static constexpr int kLanes = 16;

  static QGEMM_INLINE Int load(const int32_t* p) { return _mm512_loadu_si512(p); }
  static QGEMM_INLINE Float load(const float* p) { return _mm512_loadu_ps(p); }
  static QGEMM_INLINE void store(int32_t* p, Int v) { _mm512_storeu_si512(p, v); }
  static QGEMM_INLINE void store(float* p, Float v) { _mm512_storeu_ps(p, v); }
  using Live = __mmask16;  // masked loads and stores: never past the live lanes
  static QGEMM_INLINE Live live(int n) { return n <= 0 ? 0 : n >= kLanes ? 0xFFFF : __mmask16((1u << n) - 1); }
  static QGEMM_INLINE Int load_live(const int32_t* p, Live m) { return _mm512_maskz_loadu_epi32(m, p); }
  static QGEMM_INLINE void store_live(int32_t* p, Int v, Live m) { _mm512_mask_storeu_epi32(p, m, v); }
  template <int NV>
  static QGEMM_INLINE void store_bytes(uint8_t* p, const Int (&q)[NV], const Live (&live)[NV], bool) {
    // In [qmin, qmax] already, so truncating to bytes is exact for int8 and uint8.
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) _mm512_mask_cvtepi32_storeu_epi8(p + i * kLanes, live[i], q[i]);
  }

  static QGEMM_INLINE Int dup(int32_t x) { return _mm512_set1_epi32(x); }
  static QGEMM_INLINE Int add(Int a, Int b) { return _mm512_add_epi32(a, b); }
  static QGEMM_INLINE Int sub(Int a, Int b) { return _mm512_sub_epi32(a, b); }
  static QGEMM_INLINE Int mul(Int a, Int b) { return _mm512_mullo_epi32(a, b); }
  static QGEMM_INLINE Int min(Int a, Int b) { return _mm512_min_epi32(a, b); }
  static QGEMM_INLINE Int max(Int a, Int b) { return _mm512_max_epi32(a, b); }
  static QGEMM_INLINE Int bit_and(Int a, Int b) { return _mm512_and_si512(a, b); }
  static QGEMM_INLINE Int bit_xor(Int a, Int b) { return _mm512_xor_si512(a, b); }
  using Mask = __mmask16;
  static QGEMM_INLINE Mask equal(Int a, Int b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static QGEMM_INLINE Mask greater(Int a, Int b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static QGEMM_INLINE Mask both(Mask a, Mask b) { return a & b; }
  static QGEMM_INLINE Int select(Mask m, Int a, Int b) { return _mm512_mask_mov_epi32(b, m, a); }
  static QGEMM_INLINE Int increment_where(Mask m, Int x) { return _mm512_mask_add_epi32(x, m, x, _mm512_set1_epi32(1)); }
  static QGEMM_INLINE Int shift_left(Int a, Int n) { return _mm512_sllv_epi32(a, n); }
  static QGEMM_INLINE Int shift_right(Int a, Int n) { return _mm512_srav_epi32(a, n); }
  // For saturating_rounding_doubling_high_mul_from_wide_products (fixedpoint.h).
  static QGEMM_INLINE Int high_q31_of_even_products(Int x, Int m) {
    return _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), _mm512_set1_epi64(int64_t(1) << 30)), 31);
  }
  static QGEMM_INLINE Int odd_lanes_down(Int x) { return _mm512_srli_epi64(x, 32); }
  static QGEMM_INLINE Int join_even_odd(Int even, Int odd) {
    return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  }
  static QGEMM_INLINE Int saturating_rounding_doubling_high_mul(Int x, Int m) { return saturating_rounding_doubling_high_mul_from_wide_products<VectorAvx512Vnni>(x, m); }

  static QGEMM_INLINE Float dup(float x) { return _mm512_set1_ps(x); }
  static QGEMM_INLINE Float add(Float a, Float b) { return _mm512_add_ps(a, b); }
  static QGEMM_INLINE Float mul(Float a, Float b) { return _mm512_mul_ps(a, b); }
  static QGEMM_INLINE Float div(Float a, Float b) { return _mm512_div_ps(a, b); }
  static QGEMM_INLINE Float to_float(Int a) { return _mm512_cvtepi32_ps(a); }
  static QGEMM_INLINE Int round(Float a) { return _mm512_cvtps_epi32(a); }  // MXCSR: half to even
  static QGEMM_INLINE Int bits(Float a) { return _mm512_castps_si512(a); }
  // maxps(v, lo) returns its second operand unless v > lo: the reference's compare.
  static QGEMM_INLINE Float max_or_low(Float v, Float lo) { return _mm512_max_ps(v, lo); }
  static QGEMM_INLINE Float min_or_high(Float v, Float hi) { return _mm512_min_ps(v, hi); }
};

}  // namespace
}  // namespace qgemm
