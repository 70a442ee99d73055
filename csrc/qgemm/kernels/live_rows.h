// Microkernels are compiled once per live row count, so that a partial tile
// (small M, GEMV) carries no dead rows. This is the one place that turns the
// run-time count into the compile-time one, and the one GemmMicroFn wrapper:
// it also walks a call's row tiles (m > MR, see GemmMicroFn), so that the
// driver makes one call per panel, not one per tile.
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <algorithm>
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

// Runs run_tile(rows, ep) on each row tile of an m-row call (full tiles of
// MR, then the rest, rows as an integral_constant) with the tile's
// EpilogueParams: the per-row arrays from its first row, and its per_tile
// prefetch rows; advance() after each full tile.
template <int MR, class Run, class Advance>
inline void each_row_tile(int m, const EpilogueParams* ep, Run&& run_tile, Advance&& advance) {
  const PrefetchRows& all = ep->prefetch;
  if (m <= MR && all.rows <= all.per_tile)  // one tile that takes every row: ep as it is
    return with_live_rows<MR>(m, [&](auto rows) { run_tile(rows, ep); });
  EpilogueParams tile_ep = *ep;
  auto share = [&](size_t tile) {
    const size_t r0 = std::min<size_t>(all.rows, tile * all.per_tile);
    tile_ep.prefetch.first = all.first + static_cast<ptrdiff_t>(r0) * all.stride;
    tile_ep.prefetch.rows = static_cast<uint32_t>(std::min<size_t>(all.rows - r0, all.per_tile));
  };
  size_t tile = 0;
  for (; m > MR; m -= MR, ++tile) {
    share(tile);
    run_tile(std::integral_constant<int, MR>{}, &tile_ep);
    advance();
    if (tile_ep.row_term) tile_ep.row_term += MR;
    if (tile_ep.row_za) tile_ep.row_za += MR;
    if (tile_ep.out.row_scale) tile_ep.out.row_scale += MR;
  }
  share(tile);
  with_live_rows<MR>(m, [&](auto rows) { run_tile(rows, &tile_ep); });
}

inline size_t output_row_bytes(size_t ldc, const EpilogueParams* ep) {
  return ldc * output_element_bytes(ep->out.kind);
}

// The GemmMicroFn of a kernel of MR rows whose tile is
// Tile::run<M>(k_groups, a, b, c, ldc, n, flags, ep), A stored as AType,
// Tile::kAStep of them per K group of a tile.
template <int MR, class AType, class Tile>
void gemm_live_rows(size_t k_groups, const void* a_packed, const int8_t* b, void* c, size_t ldc, int m, int n,
                    int flags, const EpilogueParams* ep) {
  const AType* a = static_cast<const AType*>(a_packed);
  uint8_t* c_row = static_cast<uint8_t*>(c);
  const size_t c_step = MR * output_row_bytes(ldc, ep);
  each_row_tile<MR>(
      m, ep,
      [&](auto rows, const EpilogueParams* tile_ep) {
        Tile::template run<decltype(rows)::value>(k_groups, a, b, c_row, ldc, n, flags, tile_ep);
      },
      [&] {
        a += k_groups * Tile::kAStep;
        c_row += c_step;
      });
}

// The GemmMicroInPlaceFn of such a kernel whose tile also has
// Tile::run_in_place<M, flip>(k_groups, a, lda, b, c, ldc, n, flags, ep)
// (flip: int8 bytes, flipped to uint8 as read).
template <int MR, class Tile>
void gemm_live_rows_in_place(size_t k_groups, const uint8_t* a, ptrdiff_t lda, bool a_int8, const int8_t* b, void* c,
                             size_t ldc, int m, int n, int flags, const EpilogueParams* ep) {
  uint8_t* c_row = static_cast<uint8_t*>(c);
  const size_t c_step = MR * output_row_bytes(ldc, ep);
  auto advance = [&] {
    a += MR * lda;
    c_row += c_step;
  };
  auto run = [&](auto flip) {
    each_row_tile<MR>(
        m, ep,
        [&](auto rows, const EpilogueParams* tile_ep) {
          Tile::template run_in_place<decltype(rows)::value, decltype(flip)::value>(k_groups, a, lda, b, c_row, ldc, n,
                                                                                   flags, tile_ep);
        },
        advance);
  };
  if (a_int8)
    run(std::true_type{});
  else
    run(std::false_type{});
}

}  // namespace
}  // namespace qgemm
