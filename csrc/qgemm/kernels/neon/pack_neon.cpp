// The packing loops on NEON (every AArch64 CPU has it): B panels, A's groups
// of 4 bytes and the largest byte of A, the same results as the SSE2 loops
// (kernels/sse2/pack_sse2.cpp). The contract is Packers (kernels.h).
#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

// Rows [0, k) x columns [0, width) of B into the panel layout, 16 columns at
// a time: byte zips put each column's kr values side by side, each 16-byte
// store (16 / kr columns) into its panel. Column sums go vertically in int16
// first (64 groups of at most 4 values of |v| <= 128 fit), then to int32. As
// Packers::b_block; `stream` is only a hint, and plain stores serve here.
void pack_b_block(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int kr, int nr,
                  size_t panel_stride, bool /*stream*/, uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  const size_t group_bytes = static_cast<size_t>(nr) * kr;
  const uint8x16_t vflip = vdupq_n_u8(flip), sign = vdupq_n_u8(0x80);
  uint8x16_t umin = sign, umax = sign;  // stored values flipped to unsigned: 128 is 0
  for (int j = 0; j < width; j += 16) {
    int8_t* out[4];  // the v-th store's first column j + v * 16 / kr, group 0
    for (int v = 0; v < kr; ++v) {
      const int c = j + v * (16 / kr);
      out[v] = dst + static_cast<size_t>(c / nr) * panel_stride + (c % nr) * kr;
    }
    int16x8_t s16_lo = vdupq_n_s16(0), s16_hi = vdupq_n_s16(0);
    int32x4_t s32[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (size_t g = 0; g < k / kr; ++g) {
      int8x16_t r[4];
      for (int i = 0; i < kr; ++i) {
        const uint8x16_t u = veorq_u8(vld1q_u8(src + static_cast<ptrdiff_t>(g * kr + i) * row_stride + j), vflip);
        r[i] = vreinterpretq_s8_u8(u);
        s16_lo = vaddw_s8(s16_lo, vget_low_s8(r[i]));
        s16_hi = vaddw_high_s8(s16_hi, r[i]);
        umin = vminq_u8(umin, veorq_u8(u, sign));
        umax = vmaxq_u8(umax, veorq_u8(u, sign));
      }
      const size_t at = g * group_bytes;
      if (kr == 2) {
        vst1q_s8(out[0] + at, vzip1q_s8(r[0], r[1]));
        vst1q_s8(out[1] + at, vzip2q_s8(r[0], r[1]));
      } else {
        const int16x8_t t0 = vreinterpretq_s16_s8(vzip1q_s8(r[0], r[1]));
        const int16x8_t t1 = vreinterpretq_s16_s8(vzip1q_s8(r[2], r[3]));
        const int16x8_t t2 = vreinterpretq_s16_s8(vzip2q_s8(r[0], r[1]));
        const int16x8_t t3 = vreinterpretq_s16_s8(vzip2q_s8(r[2], r[3]));
        vst1q_s8(out[0] + at, vreinterpretq_s8_s16(vzip1q_s16(t0, t1)));
        vst1q_s8(out[1] + at, vreinterpretq_s8_s16(vzip2q_s16(t0, t1)));
        vst1q_s8(out[2] + at, vreinterpretq_s8_s16(vzip1q_s16(t2, t3)));
        vst1q_s8(out[3] + at, vreinterpretq_s8_s16(vzip2q_s16(t2, t3)));
      }
      if ((g + 1) % 64 == 0 || g + 1 == k / kr) {
        s32[0] = vaddw_s16(s32[0], vget_low_s16(s16_lo));
        s32[1] = vaddw_high_s16(s32[1], s16_lo);
        s32[2] = vaddw_s16(s32[2], vget_low_s16(s16_hi));
        s32[3] = vaddw_high_s16(s32[3], s16_hi);
        s16_lo = s16_hi = vdupq_n_s16(0);
      }
    }
    for (int q = 0; q < 4; ++q) {  // wrapping, as the scalar loop's uint32 sums
      int32_t* at = sums + j + 4 * q;
      vst1q_s32(at, vreinterpretq_s32_u32(vaddq_u32(vreinterpretq_u32_s32(vld1q_s32(at)),
                                                    vreinterpretq_u32_s32(s32[q]))));
    }
  }
  *max_abs = std::max({*max_abs, 128 - int(vminvq_u8(umin)), int(vmaxvq_u8(umax)) - 128});
}

// Four rows at once, four groups at a time: a 4x4 transpose of 32-bit words
// puts each group's four rows into one 16-byte store.
size_t a_four_rows_c4(const uint8_t* const* src, size_t full, int mr, uint32_t flip, uint32_t to_unsigned,
                      uint8_t* out, uint32_t* sums) {
  const uint8x16_t vflip = vreinterpretq_u8_u32(vdupq_n_u32(flip));
  const uint8x16_t vto_u = vreinterpretq_u8_u32(vdupq_n_u32(to_unsigned));
  uint32x4_t s[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
  size_t g = 0;
  for (; g + 4 <= full; g += 4) {
    uint32x4_t r[4];
    for (int i = 0; i < 4; ++i) {
      const uint8x16_t v = veorq_u8(vld1q_u8(src[i] + 4 * g), vflip);
      r[i] = vreinterpretq_u32_u8(v);
      s[i] = vpadalq_u16(s[i], vpaddlq_u8(veorq_u8(v, vto_u)));
    }
    const uint64x2_t t0 = vreinterpretq_u64_u32(vzip1q_u32(r[0], r[1]));
    const uint64x2_t t1 = vreinterpretq_u64_u32(vzip1q_u32(r[2], r[3]));
    const uint64x2_t t2 = vreinterpretq_u64_u32(vzip2q_u32(r[0], r[1]));
    const uint64x2_t t3 = vreinterpretq_u64_u32(vzip2q_u32(r[2], r[3]));
    uint8_t* o = out + g * mr * 4;
    vst1q_u8(o, vreinterpretq_u8_u64(vzip1q_u64(t0, t1)));
    vst1q_u8(o + mr * 4, vreinterpretq_u8_u64(vzip2q_u64(t0, t1)));
    vst1q_u8(o + 2 * mr * 4, vreinterpretq_u8_u64(vzip1q_u64(t2, t3)));
    vst1q_u8(o + 3 * mr * 4, vreinterpretq_u8_u64(vzip2q_u64(t2, t3)));
  }
  for (int i = 0; i < 4; ++i) sums[i] = vaddvq_u32(s[i]);
  return g;
}

int max_byte(const uint8_t* row, size_t n, uint8_t flip) {
  const uint8x16_t vflip = vdupq_n_u8(flip);
  uint8x16_t vmax = vdupq_n_u8(0);
  for (size_t k = 0; k + 16 <= n; k += 16) vmax = vmaxq_u8(vmax, veorq_u8(vld1q_u8(row + k), vflip));
  return vmaxvq_u8(vmax);
}

}  // namespace

// No range-proven kernel on AArch64: B never changes from pairs to quads.
const Packers& baseline_packers() {
  static const Packers p = {pack_b_block, 16, a_four_rows_c4, nullptr, max_byte, nullptr};
  return p;
}

}  // namespace qgemm
