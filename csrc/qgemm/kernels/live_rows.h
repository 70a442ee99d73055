// Microkernels are compiled once per live row count, so that a partial tile
// (small M, GEMV) carries no dead rows. This is the one place that turns the
// run-time count into the compile-time one, and the one GemmMicroFn wrapper.
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

// Calls f(std::integral_constant<int, M>{}) with M = min(m, MR), m >= 1.
template <int MR, class F>
inline void with_live_rows(int m, F&& f) {
  if constexpr (MR > 1) {
    if (m < MR) return with_live_rows<MR - 1>(m, f);
  }
  f(std::integral_constant<int, MR>{});
}

// The GemmMicroFn of a kernel of MR rows whose tile is
// Tile::run<M>(k_groups, a, b, c, ldc, n, flags, ep), A stored as AType.
template <int MR, class AType, class Tile>
void gemm_live_rows(size_t k_groups, const void* a_packed, const int8_t* b, void* c, size_t ldc, int m, int n,
                    int flags, const EpilogueParams* ep) {
  const AType* a = static_cast<const AType*>(a_packed);
  with_live_rows<MR>(m, [&](auto rows) {
    Tile::template run<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

// The GemmMicroInPlaceFn of such a kernel whose tile also has
// Tile::run_in_place<M>(k_groups, a, lda, b, c, ldc, n, flags, ep).
template <int MR, class Tile>
void gemm_live_rows_in_place(size_t k_groups, const uint8_t* a, ptrdiff_t lda, const int8_t* b, void* c, size_t ldc,
                             int m, int n, int flags, const EpilogueParams* ep) {
  with_live_rows<MR>(m, [&](auto rows) {
    Tile::template run_in_place<decltype(rows)::value>(k_groups, a, lda, b, c, ldc, n, flags, ep);
  });
}

}  // namespace
}  // namespace qgemm
