// ARMv8.2 dotprod GEMM microkernel, exact for every int8/uint8 input: an 8x8
// int32 tile, K in groups of 4, A and B both packed as int8 (uint8 flipped
// by ^0x80; the driver moves the zero points). sdot adds 4 int8 products
// straight into int32 lanes, so nothing narrower than int32 ever holds a
// sum (int32 wraps modulo 2^32 like the rest of the pipeline).
// Compiled with -march=armv8.2-a+dotprod: only reached after HWCAP detection.
#include <arm_neon.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/neon/vector_neon.h"
#include "qgemm/kernels/output_stage_vector.h"
#include "qgemm/kernels/neon/static_for.h"

namespace qgemm {
namespace {

constexpr int kMr = 8, kNr = 8, kKr = 4;
using Epilogue = VectorEpilogue<VectorNeon, kNr>;

// One K group for the M live rows. A group: rows 0-3 then rows 4-7, 4 bytes
// each; B group: columns 0-3 then 4-7. Row i takes lane i % 4 of its half.
template <int M>
QGEMM_INLINE void step(int32x4_t (&acc)[M][2], const int8_t* a, const int8_t* b) {
  const int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16);
  const int8x16_t a0 = vld1q_s8(a);
  const int8x16_t a1 = M > 4 ? vld1q_s8(a + 16) : a0;
  static_for<M>([&](auto I) {
    constexpr int i = decltype(I)::value;
    const int8x16_t ai = i < 4 ? a0 : a1;
    acc[i][0] = vdotq_laneq_s32(acc[i][0], b0, ai, i % 4);
    acc[i][1] = vdotq_laneq_s32(acc[i][1], b1, ai, i % 4);
  });
}

// M live rows (1..8): fewer rows, fewer dot products (small M / GEMV).
struct Tile {
  static constexpr int kAStep = kMr * kKr;  // A's int8 values per K group
  template <int M>
  static void run(size_t k_groups, const int8_t* a, const int8_t* b, void* c, size_t ldc, int n, int flags,
                  const EpilogueParams* ep) {
    int32x4_t acc[M][2];
    static_for<M>([&](auto I) {
      acc[decltype(I)::value][0] = acc[decltype(I)::value][1] = vdupq_n_s32(0);
    });
    size_t g = 0;
    for (; g + 2 <= k_groups; g += 2) {  // two groups per iteration: less loop overhead
      step<M>(acc, a, b);
      step<M>(acc, a + kMr * kKr, b + kNr * kKr);
      a += 2 * kMr * kKr;
      b += 2 * kNr * kKr;
    }
    if (g < k_groups) step<M>(acc, a, b);
    Epilogue::tile<M>(acc, c, ldc, n, flags, ep);
  }
};

}  // namespace

const GemmKernel& neon_dotprod_gemm_kernel() {
  static const GemmKernel k = {"gemm_s8s8_8x8c4_neon_dotprod", kMr, kNr, kKr, PackedA::int8, &baseline_packers(),
                               gemm_live_rows<kMr, int8_t, Tile>, Epilogue::final_block};
  return k;
}

}  // namespace qgemm
