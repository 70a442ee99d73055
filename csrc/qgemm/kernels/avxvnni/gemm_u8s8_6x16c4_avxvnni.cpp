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
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/dot_tile.h"
#include "qgemm/kernels/live_rows.h"

namespace qgemm {
namespace {

struct AvxVnni {
  using Vector = VectorAvx2;
  using Int = __m256i;
  using AType = uint8_t;
  struct B {
    __m256i lo, hi;
  };
  static constexpr int kMr = 6, kNr = 16, kKr = 4;
  static constexpr int kAStep = kMr * kKr, kBStep = kNr * kKr;
  static constexpr FewRows kFewRows = FewRows::two_chains;
  static QGEMM_INLINE Int zero() { return _mm256_setzero_si256(); }
  static QGEMM_INLINE Int add(Int x, Int y) { return _mm256_add_epi32(x, y); }
  static QGEMM_INLINE B load_b(const int8_t* b) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32))};
  }
  static QGEMM_INLINE Int broadcast(const uint8_t* a, int i) {  // 4 bytes of row i to every lane
    int32_t v;
    std::memcpy(&v, a + 4 * i, 4);
    return _mm256_set1_epi32(v);
  }
  static QGEMM_INLINE Int dot(Int acc, Int a, const B& b, int half) {
    return _mm256_dpbusd_avx_epi32(acc, a, half ? b.hi : b.lo);
  }
};

}  // namespace

const GemmKernel& avxvnni_gemm_kernel() {
  using K = AvxVnni;
  static const GemmKernel k = {"gemm_u8s8_6x16c4_avxvnni", K::kMr, K::kNr, K::kKr, 1,
                               gemm_live_rows<K::kMr, K::AType, DotTile<K>>,
                               VectorEpilogue<K::Vector, K::kNr>::final_block, true};
  return k;
}

}  // namespace qgemm
