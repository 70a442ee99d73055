// Portable GEMM microkernel: a 4x8 tile, K in pairs, A as int16.
// All arithmetic is uint32 so that wrap-around is defined (see gemm.h).
#include "qgemm/output_stage_scalar.h"
#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"

namespace qgemm {
namespace {

constexpr int kMr = 4, kNr = 8, kKr = 2;

// The tile for M live rows (it computes all kMr; only M are stored).
struct Tile {
  static constexpr int kAStep = kMr * kKr;  // A's int16 values per K group
  template <int M>
  static void run(size_t k_groups, const int16_t* a, const int8_t* b, void* c, size_t ldc, int n, int flags,
                  const EpilogueParams* ep) {
    uint32_t acc[kMr][kNr] = {};
    for (size_t g = 0; g < k_groups; ++g) {
      for (int i = 0; i < kMr; ++i)
        for (int j = 0; j < kNr; ++j)
          for (int r = 0; r < kKr; ++r)
            acc[i][j] += static_cast<uint32_t>(int32_t(a[i * kKr + r]) * int32_t(b[j * kKr + r]));
      a += kAStep;
      b += kNr * kKr;
    }
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < n; ++j) {
        uint32_t v = acc[i][j];
        if (flags & kGemmAccumulate) v += static_cast<uint32_t>(static_cast<int32_t*>(c)[i * ldc + j]);
        store_output(static_cast<int32_t>(v), i, j, c, ldc, flags, ep);
      }
  }
};

void epilogue_scalar(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                     const EpilogueParams* ep) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) store_output(acc[i * lda + j], i, j, c, ldc, kGemmFinal, ep);
}

}  // namespace

const GemmKernel& scalar_gemm_kernel() {
  static const GemmKernel k = {"gemm_s16s8_4x8c2_scalar", kMr, kNr, kKr, PackedA::int16, &baseline_packers(),
                               gemm_live_rows<kMr, int16_t, Tile>, epilogue_scalar};
  return k;
}

}  // namespace qgemm
