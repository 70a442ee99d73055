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

#include "qgemm/kernels.h"
#include "qgemm/kernels/avx2/vector_avx2.h"
#include "qgemm/kernels/dot_tile.h"

namespace qgemm {
namespace {

struct AvxVnni : U8S8DotTraits<VectorAvx2, 6> {
  static QGEMM_INLINE Int dot(Int acc, Int a, const B& b, int half) {
    return _mm256_dpbusd_avx_epi32(acc, a, half ? b.hi : b.lo);
  }
};

}  // namespace

const GemmKernel& avx_vnni_gemm_kernel() {
  static const GemmKernel k = dot_kernel_record<AvxVnni>("gemm_u8s8_6x16c4_avx_vnni", avx2_packers());
  return k;
}

}  // namespace qgemm
