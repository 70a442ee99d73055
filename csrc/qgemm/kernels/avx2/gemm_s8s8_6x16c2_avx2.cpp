// AVX2 GEMM microkernel, exact for every int8/uint8 input: a 6x16 int32 tile,
// K in pairs. A arrives packed as int16 pairs (u8 zero-extended, s8
// sign-extended); B as int8 pairs widened in registers with vpmovsxbw (packed
// B stays 1 byte per element). vpmaddwd on int16 never saturates here
// (|a*b| <= 255*128, two of them fit int32 easily), unlike vpmaddubsw.
// Compiled with -mavx2 -mfma: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/output_stage_vector.h"

namespace qgemm {
namespace {

constexpr int kMr = 6, kNr = 16, kKr = 2;
using Epilogue = VectorEpilogue<VectorAvx2, kNr>;

// M live rows (1..6) of the tile: fewer rows, fewer accumulators, so the
// small-M / GEMV case streams B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const int32_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const EpilogueParams* ep) {
  // Fully unrolled so the 2*M accumulators live in registers (checked in the
  // generated code: the loop body is loads, vpmaddwd and vpaddd only).
  __m256i acc0[M], acc1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm256_setzero_si256();
  // Few rows (GEMV): unrolled so loop overhead does not bound the B stream.
  size_t g = 0;
  if (M <= 2) {
    for (; g + 4 <= k_groups; g += 4) {
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) {
        const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
        const __m256i b1 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
#pragma GCC unroll 2
        for (int i = 0; i < M; ++i) {
          const __m256i ai = _mm256_set1_epi32(a[i]);
          acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(ai, b0));
          acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(ai, b1));
        }
        a += kMr;
        b += kNr * kKr;
      }
    }
  }
  for (; g < k_groups; ++g) {
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m256i b1 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256i ai = _mm256_set1_epi32(a[i]);  // (a[k], a[k+1]) as one int32
      acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(ai, b0));
      acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(ai, b1));
    }
    a += kMr;
    b += kNr * kKr;
  }
  Epilogue::tile<M>(acc0, acc1, c, ldc, n, flags, ep);
}

void gemm_s8s8_6x16c2_avx2(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                           size_t ldc, int m, int n, int flags, const EpilogueParams* ep) {
  const int32_t* a = static_cast<const int32_t*>(a_packed);
  with_live_rows<kMr>(m, [&](auto rows) {
    tile<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

}  // namespace

const GemmKernel& avx2_gemm_kernel() {
  static const GemmKernel k = {"gemm_s8s8_6x16c2_avx2", kMr, kNr, kKr, 2, gemm_s8s8_6x16c2_avx2,
                               Epilogue::final_block, false, &avx2_maddubs_gemm_kernel()};
  return k;
}

}  // namespace qgemm
