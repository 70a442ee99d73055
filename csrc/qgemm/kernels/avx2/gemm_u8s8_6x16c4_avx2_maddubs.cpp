// AVX2 GEMM microkernel for range-proven inputs: a 6x16 int32 tile, K in
// groups of 4, A packed as uint8 (int8 flipped by ^0x80) and B as int8 panels
// [k/4][16][4] (the AVX-VNNI layout). vpmaddubsw multiplies uint8 x int8 pairs
// and adds each two into an int16 lane WITH SATURATION, so this kernel is
// exact only when 2 * max(A) * max|B| <= 32767 (for example A within 7 bits,
// as torch's reduce_range gives, or B within [-64, 64]). The driver proves
// that before choosing it (see gemm.cpp); every other input takes the exact
// vpmaddwd kernel. vpmaddwd against ones then widens the pair sums to int32
// exactly. Per 64 products: 2 vpmaddubsw + 2 vpmaddwd multiply uops, where
// the exact kernel needs 4 vpmaddwd plus the vpmovsxbw widening of B.
// Compiled with -mavx2 -mfma: only reached after run-time detection.
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

inline __m256i broadcast4(const uint8_t* a) {  // 4 bytes of A to every lane
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm256_set1_epi32(v);
}

// acc += the four-product sums of a (uint8) and the 32 bytes of B at b.
// B is a memory operand of vpmaddubsw: with 12 accumulators, A, the ones and
// a temporary in registers, two B registers would not fit in 16 (GCC then
// spills accumulators); L1 serves the repeated loads.
inline __m256i dot4(__m256i acc, __m256i a, const int8_t* b, __m256i ones) {
  __m256i pairs;
#if defined(__GNUC__)
  __asm__("vpmaddubsw %2, %1, %0" : "=x"(pairs) : "x"(a), "m"(*reinterpret_cast<const __m256i*>(b)));
#else
  pairs = _mm256_maddubs_epi16(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
#endif
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
}

// M live rows (1..6) of the tile: fewer rows, fewer accumulators, so that
// small-M / GEMV calls stream B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const uint8_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const EpilogueParams* ep) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc0[M], acc1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm256_setzero_si256();
  for (size_t g = 0; g < k_groups; ++g) {
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256i ai = broadcast4(a + 4 * i);
      acc0[i] = dot4(acc0[i], ai, b, ones);
      acc1[i] = dot4(acc1[i], ai, b + 32, ones);
    }
    a += kMr * kKr;
    b += kNr * kKr;
  }
  Epilogue::tile<M>(acc0, acc1, c, ldc, n, flags, ep);
}

void gemm_u8s8_6x16c4_avx2_maddubs(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                                   size_t ldc, int m, int n, int flags, const EpilogueParams* ep) {
  const uint8_t* a = static_cast<const uint8_t*>(a_packed);
  with_live_rows<kMr>(m, [&](auto rows) {
    tile<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

}  // namespace

const GemmKernel& avx2_maddubs_gemm_kernel() {
  static const GemmKernel k = {"gemm_u8s8_6x16c4_avx2_maddubs", kMr, kNr, kKr, 1,
                               gemm_u8s8_6x16c4_avx2_maddubs, Epilogue::final_block, true};
  return k;
}

}  // namespace qgemm
