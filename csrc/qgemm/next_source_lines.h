// The prefetch hint of the plain-B path (gemm_plain_b): which source lines
// of B the tiles on a panel fetch for the panels after it.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/pack.h"

namespace qgemm {

// What the tile calls on panel q prefetch: the rows of the source line after
// the one panel q reads from (the panels that share a line are packed one
// after the other, so the line is read whole), spread over the row tiles of
// those panels and front-loaded, so that the next panels are packed from the
// cache, not from memory: the tiles' dot products leave the memory idle, and
// the packing loop alone keeps too few misses in flight (every row its own
// page on a wide B; measured at 16x4096x4096 on 2 threads: 1.2-1.4x with it
// in most runs). The last byte of the next 64 bytes, so that rows not aligned
// to lines get their second line too. One hint per panel, for the call that
// runs all its row tiles: each tile takes its chunk of the rows.
class NextSourceLines {
 public:
  // rows_k: B's rows of the K block; [n0, n0 + ncols): the task's columns;
  // q: the panel, counted from n0; row_tiles: the row tiles per panel, of
  // k_groups K groups each.
  NextSourceLines(const ByteMatrix& rows_k, size_t n0, size_t ncols, size_t q, size_t row_tiles, size_t nr,
                  size_t k_groups) {
    constexpr size_t kLine = 64;
    const size_t panels_per_line = std::max<size_t>(1, kLine / nr), line = q * nr / kLine * kLine;
    if (rows_k.col_stride != 1 || k_groups == 0 || line + kLine >= ncols) return;
    const size_t tiles = panels_per_line * row_tiles;
    rows_ = rows_k.rows;
    stride_ = rows_k.row_stride;
    chunk_ = (rows_ + tiles - 1) / tiles;
    first_tile_ = q % panels_per_line * row_tiles;
    row_tiles_ = row_tiles;
    // One more per K group than an even spread needs: the rows go out in the
    // first part of the K loop, while the panel is still being computed.
    per_group_ = static_cast<uint32_t>((chunk_ + k_groups - 1) / k_groups + 1);
    last_byte_ = rows_k.data + static_cast<ptrdiff_t>(n0 + std::min(line + 2 * kLine, ncols) - 1);
  }
  // The panel's share: chunk rows per row tile.
  PrefetchRows for_panel() const {
    if (!last_byte_) return {};
    const size_t r0 = std::min(rows_, first_tile_ * chunk_), r1 = std::min(rows_, r0 + row_tiles_ * chunk_);
    if (r0 == r1) return {};  // no share: and no address past B's rows
    return {last_byte_ + static_cast<ptrdiff_t>(r0) * stride_, stride_, static_cast<uint32_t>(r1 - r0), per_group_,
            static_cast<uint32_t>(chunk_)};
  }

 private:
  const uint8_t* last_byte_ = nullptr;  // in row 0 of the block; null: nothing to prefetch
  ptrdiff_t stride_ = 0;
  size_t rows_ = 0, chunk_ = 0, first_tile_ = 0, row_tiles_ = 0;
  uint32_t per_group_ = 0;
};

}  // namespace qgemm
