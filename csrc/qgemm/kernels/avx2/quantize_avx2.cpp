// AVX2 quantize / dequantize / minmax, 32 elements per step: the drivers of
// quantize_vector.h over the AVX2 primitive set, with AVX2's memory
// operations below. Bit-identical with the scalar reference (divide, clamp
// in float with maxps/minps, round half to even with cvtps2dq under the
// default rounding mode, add the zero point).
// Compiled with -mavx2 -mfma: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/quantize_vector.h"

namespace qgemm {
namespace {

struct QuantizeAvx2 : VectorAvx2 {
  static constexpr size_t kStreamMin = size_t(1) << 20;  // elements per call
  static constexpr int kMinmaxAccumulators = 4;
  static constexpr int kPrefetchBytes = 2048;

  static QGEMM_INLINE void prefetch(const float* x) {
    _mm_prefetch(reinterpret_cast<const char*>(x) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x) + kPrefetchBytes + 64, _MM_HINT_T0);
  }
  // 32 int32 in range -> 32 bytes: the saturating packs only narrow; the
  // permute undoes their per-128-bit-lane interleaving.
  template <class T, bool kStream>
  static QGEMM_INLINE void store_bytes(T* y, const Int (&q)[4]) {
    const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i b = std::is_same<T, uint8_t>::value ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
    const __m256i v = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    if (kStream) _mm256_stream_si256(reinterpret_cast<__m256i*>(y), v);
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), v);
  }
  template <class T>
  static QGEMM_INLINE void widen_bytes(const T* q, Int (&v)[4]) {
    for (int j = 0; j < 4; ++j) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * j));
      v[j] = std::is_same<T, uint8_t>::value ? _mm256_cvtepu8_epi32(b) : _mm256_cvtepi8_epi32(b);
    }
  }
  static QGEMM_INLINE void stream(float* p, Float v) { _mm256_stream_ps(p, v); }
  static QGEMM_INLINE void stream_fence() { _mm_sfence(); }
};

}  // namespace

const QuantizeKernels& avx2_quantize_kernels() {
  static const QuantizeKernels k = QuantizeTable<VectorQuantize<QuantizeAvx2>>::kernels();
  return k;
}

}  // namespace qgemm
