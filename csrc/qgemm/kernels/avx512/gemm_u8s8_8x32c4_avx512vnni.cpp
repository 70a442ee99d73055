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
#include "qgemm/kernels/dot_tile.h"
#include "qgemm/kernels/live_rows.h"

namespace qgemm {
namespace {

struct Avx512Vnni {
  using Vector = VectorAvx512;
  using Int = __m512i;
  using AType = uint8_t;
  struct B {
    __m512i lo, hi;
  };
  static constexpr int kMr = 8, kNr = 32, kKr = 4;
  static constexpr int kAStep = kMr * kKr, kBStep = kNr * kKr;
  static constexpr FewRows kFewRows = FewRows::two_chains;
  static QGEMM_INLINE Int zero() { return _mm512_setzero_si512(); }
  static QGEMM_INLINE Int add(Int x, Int y) { return _mm512_add_epi32(x, y); }
  static QGEMM_INLINE B load_b(const int8_t* b) { return {_mm512_loadu_si512(b), _mm512_loadu_si512(b + 64)}; }
  static QGEMM_INLINE Int broadcast(const uint8_t* a, int i) {  // 4 bytes of row i to every lane
    int32_t v;
    std::memcpy(&v, a + 4 * i, 4);
    return _mm512_set1_epi32(v);
  }
  static QGEMM_INLINE Int dot(Int acc, Int a, const B& b, int half) {
    return _mm512_dpbusd_epi32(acc, a, half ? b.hi : b.lo);
  }
};

}  // namespace

const GemmKernel& avx512vnni_gemm_kernel() {
  using K = Avx512Vnni;
  static const GemmKernel k = {"gemm_u8s8_8x32c4_avx512vnni", K::kMr, K::kNr, K::kKr, 1,
                               gemm_live_rows<K::kMr, K::AType, DotTile<K>>,
                               VectorEpilogue<K::Vector, K::kNr>::final_block, true};
  return k;
}

}  // namespace qgemm
