// AVX-VNNI GEMM microkernel: a 6x16 int32 tile (two ymm per row, 12
// accumulators + 2 B + 1 A broadcast = 15 of the 16 ymm registers), K in
// groups of 4. vpdpbusd (VEX-encoded, for CPUs with AVX-VNNI but no AVX-512)
// multiplies 4 uint8 x int8 pairs and adds them to an int32 lane with no
// intermediate narrowing, so it is exact for every input. A arrives packed as
// uint8 (int8 flipped by ^0x80), B as int8 panels [k/4][16][4]; the driver's
// zero-point algebra absorbs the flips. The epilogue is the AVX2 one (same
// 16-column row). Compiled with -mavx2 -mfma -mavxvnni: only reached after
// run-time detection.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/output_stage_vector.h"

namespace qgemm {
namespace {

constexpr int kMr = 6, kNr = 16, kKr = 4;
using Epilogue = VectorEpilogue<VectorAvx2, kNr>;

inline __m256i load32b(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline __m256i broadcast4(const uint8_t* a) {  // 4 bytes of A to every lane
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm256_set1_epi32(v);
}

// M live rows (1..6) of the tile: fewer rows, fewer accumulators, so that
// small-M / GEMV calls stream B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const uint8_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const EpilogueParams* ep) {
  __m256i acc0[M], acc1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm256_setzero_si256();
  if (M <= 2) {
    // Few rows: two K groups at a time into separate accumulators, so the
    // vpdpbusd latency chain does not bound the B stream. A last odd group is
    // one straight-line step: a tail loop over the same accumulators made
    // GCC 12 spill one of them inside the main loop.
    __m256i odd0[M], odd1[M];
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) odd0[i] = odd1[i] = _mm256_setzero_si256();
    for (size_t pairs = k_groups / 2; pairs > 0; --pairs) {
      const __m256i b0 = load32b(b), b1 = load32b(b + 32);
      const __m256i b2 = load32b(b + 64), b3 = load32b(b + 96);
#pragma GCC unroll 2
      for (int i = 0; i < M; ++i) {
        const __m256i ae = broadcast4(a + 4 * i), ao = broadcast4(a + kMr * kKr + 4 * i);
        acc0[i] = _mm256_dpbusd_avx_epi32(acc0[i], ae, b0);
        acc1[i] = _mm256_dpbusd_avx_epi32(acc1[i], ae, b1);
        odd0[i] = _mm256_dpbusd_avx_epi32(odd0[i], ao, b2);
        odd1[i] = _mm256_dpbusd_avx_epi32(odd1[i], ao, b3);
      }
      a += 2 * kMr * kKr;
      b += 2 * kNr * kKr;
    }
    if (k_groups % 2) {
      const __m256i b0 = load32b(b), b1 = load32b(b + 32);
#pragma GCC unroll 2
      for (int i = 0; i < M; ++i) {
        const __m256i ai = broadcast4(a + 4 * i);
        odd0[i] = _mm256_dpbusd_avx_epi32(odd0[i], ai, b0);
        odd1[i] = _mm256_dpbusd_avx_epi32(odd1[i], ai, b1);
      }
    }
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) {
      acc0[i] = _mm256_add_epi32(acc0[i], odd0[i]);
      acc1[i] = _mm256_add_epi32(acc1[i], odd1[i]);
    }
  } else {
    for (size_t g = 0; g < k_groups; ++g) {
      const __m256i b0 = load32b(b), b1 = load32b(b + 32);
#pragma GCC unroll 6
      for (int i = 0; i < M; ++i) {
        const __m256i ai = broadcast4(a + 4 * i);
        acc0[i] = _mm256_dpbusd_avx_epi32(acc0[i], ai, b0);
        acc1[i] = _mm256_dpbusd_avx_epi32(acc1[i], ai, b1);
      }
      a += kMr * kKr;
      b += kNr * kKr;
    }
  }
  Epilogue::tile<M>(acc0, acc1, c, ldc, n, flags, ep);
}

void gemm_u8s8_6x16c4_avxvnni(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                              size_t ldc, int m, int n, int flags, const EpilogueParams* ep) {
  const uint8_t* a = static_cast<const uint8_t*>(a_packed);
  with_live_rows<kMr>(m, [&](auto rows) {
    tile<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

}  // namespace

const GemmKernel& avxvnni_gemm_kernel() {
  static const GemmKernel k = {"gemm_u8s8_6x16c4_avxvnni", kMr, kNr, kKr, 1,
                               gemm_u8s8_6x16c4_avxvnni, Epilogue::final_block, true};
  return k;
}

}  // namespace qgemm
