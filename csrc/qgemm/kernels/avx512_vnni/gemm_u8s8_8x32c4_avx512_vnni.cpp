// AVX-512 VNNI GEMM microkernel: an 8x32 int32 tile (two zmm per row), K in
// groups of 4. vpdpbusd multiplies 4 uint8 x int8 pairs and adds them to an
// int32 lane with no intermediate narrowing, so it is exact for every input
// (|4 * 255 * 128| fits easily; the int32 sum wraps modulo 2^32 like every
// other path). A arrives packed as uint8 (int8 flipped by ^0x80), B as the
// usual int8 panels [k/4][32][4]; the driver's zero-point algebra absorbs the
// flips. Compiled with AVX-512 flags: only reached after run-time detection.
#include <immintrin.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx512_vnni/vector_avx512_vnni.h"
#include "qgemm/kernels/dot_tile.h"

namespace qgemm {
namespace {

struct Avx512Vnni : U8S8DotTraits<VectorAvx512Vnni, 8> {
  static QGEMM_INLINE Int dot(Int acc, Int a, const B& b, int half) {
    return _mm512_dpbusd_epi32(acc, a, half ? b.hi : b.lo);
  }
};

}  // namespace

const GemmKernel& avx512_vnni_gemm_kernel() {
  static const GemmKernel k = dot_kernel_record<Avx512Vnni>("gemm_u8s8_8x32c4_avx512_vnni", avx512_packers());
  return k;
}

}  // namespace qgemm
