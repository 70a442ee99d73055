// with_live_rows<MR>(m, f): calls f(std::integral_constant<int, M>{}) with
// M = min(m, MR), m >= 1. Microkernels are compiled once per live row count,
// so a partial tile (small M, GEMV) carries no dead rows; this is the one
// place that turns the run-time count into the compile-time one.
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <type_traits>

namespace qgemm {
namespace {

template <int MR, class F>
inline void with_live_rows(int m, F&& f) {
  if constexpr (MR > 1) {
    if (m < MR) return with_live_rows<MR - 1>(m, f);
  }
  f(std::integral_constant<int, MR>{});
}

}  // namespace
}  // namespace qgemm
