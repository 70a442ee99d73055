// AVX-512 VNNI GEMM microkernel: an 8x32 int32 tile (two zmm per row), K in
// groups of 4. vpdpbusd multiplies 4 uint8 x int8 pairs and adds them to an
// int32 lane with no intermediate narrowing, so it is exact for every input
// (|4 * 255 * 128| fits easily; the int32 sum wraps modulo 2^32 like every
// other path). A arrives packed as uint8 (int8 flipped by ^0x80), B as the
// usual int8 panels [k/4][32][4]; the driver's zero-point algebra absorbs the
// flips. Compiled with AVX-512 flags: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx512/vector_avx512.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/output_stage_vector.h"

namespace qgemm {
namespace {

constexpr int kMr = 8, kNr = 32, kKr = 4;
using Epilogue = VectorEpilogue<VectorAvx512, kNr>;

inline __m512i broadcast4(const uint8_t* a) {  // 4 bytes of A to every lane
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

// M live rows (1..8) of the tile: fewer rows, fewer accumulators, so that
// small-M / GEMV calls stream B without wasted multiplies.
template <int M>
void tile(size_t k_groups, const uint8_t* a, const int8_t* b, void* c, size_t ldc, int n,
          int flags, const EpilogueParams* ep) {
  __m512i acc0[M], acc1[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm512_setzero_si512();
  size_t g = 0;
  if (M <= 2) {
    // Few rows: two K groups at a time into separate accumulators, so the
    // vpdpbusd latency chain does not bound the B stream.
    __m512i odd0[M], odd1[M];
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) odd0[i] = odd1[i] = _mm512_setzero_si512();
    for (; g + 2 <= k_groups; g += 2) {
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
      const __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
#pragma GCC unroll 2
      for (int i = 0; i < M; ++i) {
        const __m512i ae = broadcast4(a + 4 * i), ao = broadcast4(a + kMr * kKr + 4 * i);
        acc0[i] = _mm512_dpbusd_epi32(acc0[i], ae, b0);
        acc1[i] = _mm512_dpbusd_epi32(acc1[i], ae, b1);
        odd0[i] = _mm512_dpbusd_epi32(odd0[i], ao, b2);
        odd1[i] = _mm512_dpbusd_epi32(odd1[i], ao, b3);
      }
      a += 2 * kMr * kKr;
      b += 2 * kNr * kKr;
    }
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) {
      acc0[i] = _mm512_add_epi32(acc0[i], odd0[i]);
      acc1[i] = _mm512_add_epi32(acc1[i], odd1[i]);
    }
  }
  for (; g < k_groups; ++g) {
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512i ai = broadcast4(a + 4 * i);
      acc0[i] = _mm512_dpbusd_epi32(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbusd_epi32(acc1[i], ai, b1);
    }
    a += kMr * kKr;
    b += kNr * kKr;
  }
  Epilogue::tile<M>(acc0, acc1, c, ldc, n, flags, ep);
}

void gemm_u8s8_8x32c4_avx512vnni(size_t k_groups, const void* a_packed, const int8_t* b, void* c,
                                 size_t ldc, int m, int n, int flags, const EpilogueParams* ep) {
  const uint8_t* a = static_cast<const uint8_t*>(a_packed);
  with_live_rows<kMr>(m, [&](auto rows) {
    tile<decltype(rows)::value>(k_groups, a, b, c, ldc, n, flags, ep);
  });
}

}  // namespace

const GemmKernel& avx512vnni_gemm_kernel() {
  static const GemmKernel k = {"gemm_u8s8_8x32c4_avx512vnni", kMr, kNr, kKr, 1,
                               gemm_u8s8_8x32c4_avx512vnni, Epilogue::final_block, true};
  return k;
}

}  // namespace qgemm
