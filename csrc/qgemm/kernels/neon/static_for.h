// static_for<N>(f): f(std::integral_constant<int, 0>{}) ... f(<N - 1>{}).
// The microkernels index registers and NEON lanes by row; lane numbers must
// be compile-time constants, so the row loop is unrolled by the type system
// rather than left to the optimizer.
#pragma once
#include <type_traits>
#include <utility>

namespace qgemm {
namespace {

template <class F, int... I>
inline __attribute__((always_inline)) void static_for_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}

template <int N, class F>
inline __attribute__((always_inline)) void static_for(F&& f) {
  static_for_impl(f, std::make_integer_sequence<int, N>{});
}

}  // namespace
}  // namespace qgemm
