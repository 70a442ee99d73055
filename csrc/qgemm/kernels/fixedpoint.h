// gemmlowp's fixed-point arithmetic, written once over a per-ISA primitive
// set V (see output_stage_vector.h for what V provides), bit-exact with the
// scalar reference in output_stage_scalar.h. Internal linkage: each ISA's
// translation unit gets its own copy.
#pragma once
#include <cstdint>

namespace qgemm {
namespace {

// SaturatingRoundingDoublingHighMul for ISAs without the instruction (x86):
// (x*m + 2^30) >> 31 on the even and the odd lanes' 64-bit products (one
// formula covers both signs), INT32_MIN * INT32_MIN saturated.
template <class V>
inline typename V::Int srdhm_from_wide_products(typename V::Int x, typename V::Int m) {
  using Int = typename V::Int;
  const Int even = V::high_q31_of_even_products(x, m);
  const Int odd = V::high_q31_of_even_products(V::odd_lanes_down(x), V::odd_lanes_down(m));
  const Int r = V::join_even_odd(even, odd);
  const Int min = V::dup(INT32_MIN);
  return V::select(V::both(V::equal(x, min), V::equal(m, min)), V::dup(INT32_MAX), r);
}

// RoundingDivideByPOT: x / 2^exponent, ties away from zero (exponent 0..31 per lane).
template <class V>
inline typename V::Int rounding_divide_by_pot(typename V::Int x, typename V::Int exponent) {
  using Int = typename V::Int;
  const Int zero = V::dup(0), one = V::dup(1);
  const Int mask = V::sub(V::shift_left(one, exponent), one);
  const Int remainder = V::bit_and(x, mask);
  const Int threshold = V::increment_where(V::greater(zero, x), V::shift_right(mask, one));
  return V::increment_where(V::greater(remainder, threshold), V::shift_right(x, exponent));
}

// TFLite's MultiplyByQuantizedMultiplier with per-lane shifts (> 0 left; the
// left shift wraps in int32 like the reference).
template <class V>
inline typename V::Int multiply_by_quantized_multiplier(typename V::Int x, typename V::Int multiplier,
                                                        typename V::Int shift) {
  using Int = typename V::Int;
  const Int zero = V::dup(0);
  const Int left = V::max(shift, zero), right = V::max(V::sub(zero, shift), zero);
  return rounding_divide_by_pot<V>(V::srdhm(V::shift_left(x, left), multiplier), right);
}

}  // namespace
}  // namespace qgemm
