// Packing: B once (weights) into the layout a microkernel streams, A per call
// into a small cache-resident block.
//
// Layouts, for a kernel with tile mr x nr and K grouped by kr:
//   B panel p (columns p*nr .. p*nr+nr-1): int8 [k_padded / kr][nr][kr]
//   A block of mr rows:                    [kc_padded / kr][mr][kr], int16, int8 or uint8
// Everything is zero padded to whole groups, panels and tiles.
//
// B is always stored as int8: uint8 values flip their top bit (b ^ 0x80 ==
// b - 128) and the zero point moves with them (zb - 128). A is stored as the
// kernel's record says (GemmKernel::packed_a): widened to int16 (uint8 kept
// as it is), int8 (uint8 flipped), or uint8 for the u8 x s8 dot-product
// instructions (int8 flipped, b ^ 0x80 == b + 128). Every dtype pair then
// runs on each kernel exactly; the driver moves za with the flip
// (stored_zero_point_shift). Both are packed with the loops the kernel names
// (GemmKernel::packers); a B packed for one kernel serves any kernel of the
// same nr and kr.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qgemm/kernels.h"
#include "qgemm/packed_b.h"

namespace qgemm {

// Strided view of a 2-D int8/uint8 matrix; strides in bytes (may be negative).
struct ByteMatrix {
  const uint8_t* data;
  size_t rows, cols;
  ptrdiff_t row_stride, col_stride;
  bool is_u8;
};

// B in kernel's panels (nr, kr), with its packing loops. single_use: B is
// packed for one call (see PackedB::single_use); large panels then come from
// the buffer pool, which spares every call the page faults of fresh memory.
PackedB pack_b(const ByteMatrix& b, const GemmKernel& kernel, bool single_use = false);
// Rows [k_begin, k_end) of the panel of B whose first column is j0 into
// `panel` (that panel's packed storage, row 0 at its start), with the given
// packing loops; k_begin a multiple of kr, k_end too unless it is B's last
// row (the zero-padded last group). Adds the column sums of stored values
// into sums[0..nr) and raises *max_abs to the largest |stored value|.
void pack_b_panel_rows(const ByteMatrix& b, size_t j0, size_t k_begin, size_t k_end, int nr, int kr,
                       const Packers& packers, int8_t* panel, int32_t* sums, int* max_abs);
// The same for panels [p_begin, p_end) at once: panel p's storage at
// panels + p * panel_stride, its column sums at sums[p * nr..]. The vector
// loop reads each row of B across all of them in one pass. stream: the
// panels are not read soon (Packers::b_block).
void pack_b_panels_rows(const ByteMatrix& b, size_t p_begin, size_t p_end, size_t k_begin, size_t k_end, int nr,
                        int kr, const Packers& packers, bool stream, int8_t* panels, size_t panel_stride,
                        int32_t* sums, int* max_abs);
// pack_b streams a weight's panels (non-temporal stores) from this size on.
// Measured, pack() on 2 threads: 4096 x 4096 (16 MiB) streamed 11-14 GB/s,
// plain 6-9; 1024 x 4096 (4 MiB) streamed 18-20, plain 24.
constexpr size_t kStreamPanelsFrom = size_t(8) << 20;
// pack_b's pass: this many rows across every panel of a thread, then the
// next ones (B is read a line at a time, each line while it is in L1).
// Measured as above: streamed, 16 rows beat 64; into the caches, 64 beat 16.
inline size_t pack_b_rows_per_pass(bool stream) { return stream ? 16 : 64; }
// The plain-B path (gemm_plain_b) packs this many panels per call into its
// scratch: as many as B's vector loop takes columns per call (64 on
// AVX-512 and AVX2, 16 on SSE2 and NEON). Measured with matmul on 2
// threads: AVX2's 16-column panels in twos 1.1-1.2x at 16-32 x 4096 x 4096
// (in fours, whole lines: 1.03-1.05x more at 8-16 rows), AVX-512's 32-column
// panels in twos 1.2-1.4x there. SSE2's loop showed no
// gain on 16-column panels in twos, so it keeps one (8-column panels: two,
// else no vectors at all).
inline size_t plain_b_panels_together(const Packers& packers, size_t nr) {
  return std::max<size_t>(1, static_cast<size_t>(packers.b_block_columns) / nr);
}
// Packs rows [0, m) (m <= kernel.mr) and columns [k0, k0 + kc) of A into dst
// as kernel.packed_a says, with its packing loops, and adds each row's sum of
// stored values into rowsum[0..m). row_ptr[i] is row i.
void pack_a(const uint8_t* const* row_ptr, int m, ptrdiff_t col_stride, bool is_u8, size_t k0,
            size_t kc, const GemmKernel& kernel, void* dst, int32_t* rowsum);
// What the flip of A's bytes adds to its zero point in the stored domain.
inline int32_t stored_zero_point_shift(PackedA stored, bool is_u8) {
  if (stored == PackedA::uint8 && !is_u8) return 128;
  if (stored == PackedA::int8 && is_u8) return -128;
  return 0;
}

}  // namespace qgemm
