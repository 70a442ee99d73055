// NEON quantize / dequantize / minmax, 16 elements per step: the drivers of
// quantize_vector.h over the NEON primitive set, with NEON's memory
// operations below. Bit-identical with the scalar reference (true float32
// division, clamp in float by compare and select, round half to even with
// fcvtns whatever the FPCR mode, add the zero point).
#include <arm_neon.h>

#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/neon/vector_neon.h"
#include "qgemm/kernels/quantize_vector.h"

namespace qgemm {
namespace {

struct QuantizeNeon : VectorNeon {
  static constexpr size_t kStreamMin = 0;  // no non-temporal stores
  static constexpr int kMinmaxAccumulators = 2;

  static QGEMM_INLINE void prefetch(const float*) {}
  // 16 int32 in range -> 16 bytes (the saturating narrows only narrow).
  template <class T, bool>
  static QGEMM_INLINE void store_bytes(T* y, const Int (&q)[4]) {
    const int16x8_t w0 = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
    const int16x8_t w1 = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
    if (std::is_same<T, uint8_t>::value)
      vst1q_u8(reinterpret_cast<uint8_t*>(y), vcombine_u8(vqmovun_s16(w0), vqmovun_s16(w1)));
    else vst1q_s8(reinterpret_cast<int8_t*>(y), vcombine_s8(vqmovn_s16(w0), vqmovn_s16(w1)));
  }
  static QGEMM_INLINE void widen_bytes(const int8_t* q, Int (&v)[4]) {
    const int8x16_t b = vld1q_s8(q);
    const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
    v[0] = vmovl_s16(vget_low_s16(lo));
    v[1] = vmovl_high_s16(lo);
    v[2] = vmovl_s16(vget_low_s16(hi));
    v[3] = vmovl_high_s16(hi);
  }
  static QGEMM_INLINE void widen_bytes(const uint8_t* q, Int (&v)[4]) {
    const uint8x16_t b = vld1q_u8(q);
    const uint16x8_t lo = vmovl_u8(vget_low_u8(b)), hi = vmovl_high_u8(b);
    v[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo)));
    v[1] = vreinterpretq_s32_u32(vmovl_high_u16(lo));
    v[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi)));
    v[3] = vreinterpretq_s32_u32(vmovl_high_u16(hi));
  }
};

}  // namespace

const QuantizeKernels& neon_quantize_kernels() {
  static const QuantizeKernels k = QuantizeTable<VectorQuantize<QuantizeNeon>>::kernels();
  return k;
}

}  // namespace qgemm
