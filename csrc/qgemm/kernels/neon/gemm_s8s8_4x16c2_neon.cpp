// ARMv8 baseline NEON GEMM microkernel, exact for every int8/uint8 input: a
// 4x16 int32 tile, K in pairs, A and B both packed as int8 (uint8 flipped by
// ^0x80; the driver moves the zero points). smull multiplies the pair
// (a[k], a[k+1]) by 8 (b[k], b[k+1]) pairs into int16 (|a*b| <= 2^14, exact)
// and sadalp adds each pair of products into an int32 lane (<= 2^15, exact).
// smlal-then-sadalp would be faster but overflows int16 at (-128)*(-128) twice.
#include <arm_neon.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/neon/vector_neon.h"
#include "qgemm/kernels/output_stage_vector.h"
#include "qgemm/kernels/neon/static_for.h"

namespace qgemm {
namespace {

constexpr int kMr = 4, kNr = 16, kKr = 2;
using Epilogue = VectorEpilogue<VectorNeon, kNr>;

// One K pair for the M live rows: a4 holds the 4 rows' pairs as int16 lanes.
template <int M>
QGEMM_INLINE void step(int32x4_t (&acc)[M][4], int16x4_t a4, int8x16_t b0, int8x16_t b1) {
  static_for<M>([&](auto I) {
    constexpr int i = decltype(I)::value;
    const int8x16_t ai = vreinterpretq_s8_s16(vdupq_lane_s16(a4, i));
    acc[i][0] = vpadalq_s16(acc[i][0], vmull_s8(vget_low_s8(ai), vget_low_s8(b0)));
    acc[i][1] = vpadalq_s16(acc[i][1], vmull_high_s8(ai, b0));
    acc[i][2] = vpadalq_s16(acc[i][2], vmull_s8(vget_low_s8(ai), vget_low_s8(b1)));
    acc[i][3] = vpadalq_s16(acc[i][3], vmull_high_s8(ai, b1));
  });
}

// M live rows (1..4): fewer rows, fewer multiplies (small M / GEMV).
struct Tile {
  static constexpr int kAStep = kMr * kKr;  // A's int8 values per K group
  template <int M>
  static void run(size_t k_groups, const int8_t* a, const int8_t* b, void* c, size_t ldc, int n, int flags,
                  const EpilogueParams* ep) {
    int32x4_t acc[M][4];
    static_for<M>([&](auto I) {
      for (int q = 0; q < 4; ++q) acc[decltype(I)::value][q] = vdupq_n_s32(0);
    });
    size_t g = 0;
    // Two K pairs per iteration: one 16-byte load of A, less loop overhead.
    for (; g + 2 <= k_groups; g += 2) {
      const int16x8_t a8 = vreinterpretq_s16_s8(vld1q_s8(a));
      step<M>(acc, vget_low_s16(a8), vld1q_s8(b), vld1q_s8(b + 16));
      step<M>(acc, vget_high_s16(a8), vld1q_s8(b + 32), vld1q_s8(b + 48));
      a += 2 * kMr * kKr;
      b += 2 * kNr * kKr;
    }
    if (g < k_groups)
      step<M>(acc, vreinterpret_s16_s8(vld1_s8(a)), vld1q_s8(b), vld1q_s8(b + 16));
    Epilogue::tile<M>(acc, c, ldc, n, flags, ep);
  }
};

}  // namespace

const GemmKernel& neon_gemm_kernel() {
  static const GemmKernel k = {"gemm_s8s8_4x16c2_neon", kMr, kNr, kKr, PackedA::int8, &baseline_packers(),
                               gemm_live_rows<kMr, int8_t, Tile>,
                               Epilogue::final_block};
  return k;
}

}  // namespace qgemm
