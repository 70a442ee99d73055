// AVX2 GEMM microkernel, exact for every int8/uint8 input: a 6x16 int32 tile,
// K in pairs. A arrives packed as int16 pairs (u8 zero-extended, s8
// sign-extended); B as int8 pairs widened in registers with vpmovsxbw (packed
// B stays 1 byte per element). vpmaddwd on int16 never saturates here
// (|a*b| <= 255*128, two of them fit int32 easily), unlike vpmaddubsw.
// Compiled with -mavx2 -mfma: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/dot_tile.h"

namespace qgemm {
namespace {

struct Avx2Exact {
  using Vector = VectorAvx2;
  using Int = __m256i;
  using AType = int32_t;  // a pair (a[k], a[k+1]) of int16
  struct B {
    __m256i lo, hi;
  };
  static constexpr PackedA kPackedA = PackedA::int16;
  static constexpr int kMr = 6, kNr = 16, kKr = 2;
  static constexpr int kAStep = kMr, kBStep = kNr * kKr;
  static constexpr FewRows kFewRows = FewRows::unroll4;
  static QGEMM_INLINE Int zero() { return _mm256_setzero_si256(); }
  static QGEMM_INLINE Int add(Int x, Int y) { return _mm256_add_epi32(x, y); }
  static QGEMM_INLINE B load_b(const int8_t* b) {
    return {_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b))),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)))};
  }
  static QGEMM_INLINE Int broadcast(const int32_t* a, int i) { return _mm256_set1_epi32(a[i]); }
  static QGEMM_INLINE Int dot(Int acc, Int a, const B& b, int half) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, half ? b.hi : b.lo));
  }
};

}  // namespace

const GemmKernel& avx2_gemm_kernel() {
  static const GemmKernel k = dot_kernel_record<Avx2Exact>("gemm_s16s8_6x16c2_avx2", avx2_packers(),
                                                      &avx2_assuming_int16_pair_sums_gemm_kernel());
  return k;
}

}  // namespace qgemm
