// The output stage's primitive set on AVX2 (8 int32 / float32 lanes in a
// ymm register): see output_stage_vector.h for the contract. Included by the
// AVX2 and AVX-VNNI kernels, each compiled with its own flags.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/fixedpoint.h"
#include "qgemm/kernels/live_by_copy.h"

namespace qgemm {
namespace {

struct VectorAvx2 {
  using Int = __m256i;
  using Float = __m256;
  static constexpr int kLanes = 8;

  static QGEMM_INLINE Int load(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static QGEMM_INLINE Float load(const float* p) { return _mm256_loadu_ps(p); }
  static QGEMM_INLINE void store(int32_t* p, Int v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static QGEMM_INLINE void store(float* p, Float v) { _mm256_storeu_ps(p, v); }
  using Live = int;  // lanes 0..8 (live_by_copy.h)
  static QGEMM_INLINE Live live(int n) { return live_count<VectorAvx2>(n); }
  static QGEMM_INLINE Int load_live(const int32_t* p, Live n) { return load_live_by_copy<VectorAvx2>(p, n); }
  static QGEMM_INLINE void store_live(int32_t* p, Int v, Live n) { store_live_by_copy<VectorAvx2>(p, v, n); }
  template <int NV>
  static QGEMM_INLINE void store_bytes(uint8_t* p, const Int (&q)[NV], const Live (&live)[NV], bool u8) {
    static_assert(NV == 2, "16 lanes narrow to one 16-byte store");
    // The packs only narrow here (values in range), in order after the permute.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
    const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
    const __m128i bytes = u8 ? _mm_packus_epi16(lo, hi) : _mm_packs_epi16(lo, hi);
    const int n = live[0] + live[1];
    if (n == 2 * kLanes) return _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bytes);
    alignas(16) uint8_t tmp[2 * kLanes];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    std::memcpy(p, tmp, n);
  }

  static QGEMM_INLINE Int dup(int32_t x) { return _mm256_set1_epi32(x); }
  static QGEMM_INLINE Int add(Int a, Int b) { return _mm256_add_epi32(a, b); }
  static QGEMM_INLINE Int sub(Int a, Int b) { return _mm256_sub_epi32(a, b); }
  static QGEMM_INLINE Int mul(Int a, Int b) { return _mm256_mullo_epi32(a, b); }
  static QGEMM_INLINE Int min(Int a, Int b) { return _mm256_min_epi32(a, b); }
  static QGEMM_INLINE Int max(Int a, Int b) { return _mm256_max_epi32(a, b); }
  static QGEMM_INLINE Int bit_and(Int a, Int b) { return _mm256_and_si256(a, b); }
  static QGEMM_INLINE Int bit_xor(Int a, Int b) { return _mm256_xor_si256(a, b); }
  using Mask = __m256i;  // -1 where true
  static QGEMM_INLINE Mask equal(Int a, Int b) { return _mm256_cmpeq_epi32(a, b); }
  static QGEMM_INLINE Mask greater(Int a, Int b) { return _mm256_cmpgt_epi32(a, b); }
  static QGEMM_INLINE Mask both(Mask a, Mask b) { return _mm256_and_si256(a, b); }
  static QGEMM_INLINE Int select(Mask m, Int a, Int b) { return _mm256_blendv_epi8(b, a, m); }
  static QGEMM_INLINE Int increment_where(Mask m, Int x) { return _mm256_sub_epi32(x, m); }
  static QGEMM_INLINE Int shift_left(Int a, Int n) { return _mm256_sllv_epi32(a, n); }
  static QGEMM_INLINE Int shift_right(Int a, Int n) { return _mm256_srav_epi32(a, n); }
  // For saturating_rounding_doubling_high_mul_from_wide_products (fixedpoint.h).
  static QGEMM_INLINE Int high_q31_of_even_products(Int x, Int m) {
    return _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), _mm256_set1_epi64x(int64_t(1) << 30)), 31);
  }
  static QGEMM_INLINE Int odd_lanes_down(Int x) { return _mm256_srli_epi64(x, 32); }
  static QGEMM_INLINE Int join_even_odd(Int even, Int odd) {
    return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  }
  static QGEMM_INLINE Int saturating_rounding_doubling_high_mul(Int x, Int m) { return saturating_rounding_doubling_high_mul_from_wide_products<VectorAvx2>(x, m); }

  static QGEMM_INLINE Float dup(float x) { return _mm256_set1_ps(x); }
  static QGEMM_INLINE Float add(Float a, Float b) { return _mm256_add_ps(a, b); }
  static QGEMM_INLINE Float mul(Float a, Float b) { return _mm256_mul_ps(a, b); }
  static QGEMM_INLINE Float div(Float a, Float b) { return _mm256_div_ps(a, b); }
  static QGEMM_INLINE Float to_float(Int a) { return _mm256_cvtepi32_ps(a); }
  static QGEMM_INLINE Int round(Float a) { return _mm256_cvtps_epi32(a); }  // MXCSR: half to even
  static QGEMM_INLINE Int bits(Float a) { return _mm256_castps_si256(a); }
  // maxps(v, lo) returns its second operand unless v > lo: the reference's compare.
  static QGEMM_INLINE Float max_or_low(Float v, Float lo) { return _mm256_max_ps(v, lo); }
  static QGEMM_INLINE Float min_or_high(Float v, Float hi) { return _mm256_min_ps(v, hi); }
};

}  // namespace
}  // namespace qgemm
