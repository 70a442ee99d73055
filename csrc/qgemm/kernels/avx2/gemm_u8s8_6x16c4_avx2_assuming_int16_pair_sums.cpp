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

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/dot_tile.h"

namespace qgemm {
namespace {

struct Avx2AssumingInt16PairSums {
  using Vector = VectorAvx2;
  using Int = __m256i;
  using AType = uint8_t;
  using B = const int8_t*;  // a memory operand of vpmaddubsw (see dot)
  static constexpr PackedA kPackedA = PackedA::uint8;
  static constexpr int kMr = 6, kNr = 16, kKr = 4;
  static constexpr int kAStep = kMr * kKr, kBStep = kNr * kKr;
  static constexpr FewRows kFewRows = FewRows::plain;
  static QGEMM_INLINE Int zero() { return _mm256_setzero_si256(); }
  static QGEMM_INLINE Int add(Int x, Int y) { return _mm256_add_epi32(x, y); }
  static QGEMM_INLINE B load_b(const int8_t* b) { return b; }
  static QGEMM_INLINE Int broadcast(const uint8_t* a, int i) { return _mm256_set1_epi32(a_quad(a + 4 * i)); }
  // acc += the four-product sums of a (uint8) and 32 bytes of B. B is a
  // memory operand of vpmaddubsw: with 12 accumulators, A, the ones and a
  // temporary in registers, two B registers would not fit in 16 (GCC then
  // spills accumulators); L1 serves the repeated loads.
  static QGEMM_INLINE Int dot(Int acc, Int a, B b, int half) {
    __m256i pairs;
#if defined(__GNUC__)
    __asm__("vpmaddubsw %2, %1, %0" : "=x"(pairs) : "x"(a), "m"(*reinterpret_cast<const __m256i*>(b + 32 * half)));
#else
    pairs = _mm256_maddubs_epi16(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * half)));
#endif
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
};

}  // namespace

const GemmKernel& avx2_assuming_int16_pair_sums_gemm_kernel() {
  static const GemmKernel k =
      dot_kernel_record<Avx2AssumingInt16PairSums>("gemm_u8s8_6x16c4_avx2_assuming_int16_pair_sums", avx2_packers());
  return k;
}

}  // namespace qgemm
