// NEON quantize / dequantize, 16 elements per step. Same arithmetic as the
// scalar reference (true float32 division, clamp in float, round half to
// even, add the zero point), so results are bit-identical. Tails go through
// a padded stack buffer.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "qgemm/kernels.h"
#include "qgemm/kernels/minmax_fold.h"

namespace qgemm {
namespace {

constexpr size_t kStep = 16;

// Parameters for 4 lanes: scale, float clamp bounds, zero point.
struct Lanes {
  float32x4_t scale, lo, hi;
  int32x4_t zp;
};

template <bool kU8>
inline Lanes lanes_from(float32x4_t scale, int32x4_t zp) {
  const int32x4_t qmin = vdupq_n_s32(kU8 ? 0 : -128), qmax = vdupq_n_s32(kU8 ? 255 : 127);
  return {scale, vcvtq_f32_s32(vsubq_s32(qmin, zp)), vcvtq_f32_s32(vsubq_s32(qmax, zp)), zp};
}

inline int32x4_t quantize4(float32x4_t x, const Lanes& p) {
  float32x4_t v = vdivq_f32(x, p.scale);
  // maxnm returns the number when the other operand is a quiet NaN (and a
  // quotient is never a signalling one): NaN -> lo, as in the reference.
  v = vmaxnmq_f32(v, p.lo);
  v = vminnmq_f32(v, p.hi);
  return vaddq_s32(vcvtnq_s32_f32(v), p.zp);  // round half to even, whatever the FPCR mode
}

// 16 int32 already in range -> 16 bytes (the saturating narrows only narrow).
template <bool kU8>
inline void store16(void* y, const int32x4_t (&q)[4]) {
  const int16x8_t w0 = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
  const int16x8_t w1 = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
  if (kU8) vst1q_u8(static_cast<uint8_t*>(y), vcombine_u8(vqmovun_s16(w0), vqmovun_s16(w1)));
  else vst1q_s8(static_cast<int8_t*>(y), vcombine_s8(vqmovn_s16(w0), vqmovn_s16(w1)));
}

template <class T, bool kVec>
void quantize_f32(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
  constexpr bool kU8 = T(-1) > T(0);
  // Per-element arrays may be empty (n == 0): never read them here.
  const Lanes fixed =
      lanes_from<kU8>(vdupq_n_f32(kVec ? 1.0f : scale[0]), vdupq_n_s32(kVec ? 0 : zp[0]));
  auto step = [&](const float* xs, const float* ss, const int32_t* zs, T* out) {
    int32x4_t q[4];
    for (int j = 0; j < 4; ++j) {
      const Lanes p = kVec ? lanes_from<kU8>(vld1q_f32(ss + 4 * j), vld1q_s32(zs + 4 * j)) : fixed;
      q[j] = quantize4(vld1q_f32(xs + 4 * j), p);
    }
    store16<kU8>(out, q);
  };
  size_t i = 0;
  for (; i + kStep <= n; i += kStep)
    step(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i);
  if (i < n) {
    const size_t rest = n - i;
    float xs[kStep] = {}, ss[kStep];
    int32_t zs[kStep] = {};
    T out[kStep];
    std::memcpy(xs, x + i, rest * sizeof(float));
    if (kVec) {
      for (size_t j = 0; j < kStep; ++j) ss[j] = 1.0f;
      std::memcpy(ss, scale + i, rest * sizeof(float));
      std::memcpy(zs, zp + i, rest * sizeof(int32_t));
    }
    step(xs, ss, zs, out);
    std::memcpy(y + i, out, rest * sizeof(T));
  }
}

// 16 bytes -> 4 x 4 int32 lanes.
inline void widen16(const int8_t* q, int32x4_t (&v)[4]) {
  const int8x16_t b = vld1q_s8(q);
  const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
  v[0] = vmovl_s16(vget_low_s16(lo));
  v[1] = vmovl_high_s16(lo);
  v[2] = vmovl_s16(vget_low_s16(hi));
  v[3] = vmovl_high_s16(hi);
}
inline void widen16(const uint8_t* q, int32x4_t (&v)[4]) {
  const uint8x16_t b = vld1q_u8(q);
  const uint16x8_t lo = vmovl_u8(vget_low_u8(b)), hi = vmovl_high_u8(b);
  v[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo)));
  v[1] = vreinterpretq_s32_u32(vmovl_high_u16(lo));
  v[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi)));
  v[3] = vreinterpretq_s32_u32(vmovl_high_u16(hi));
}

template <class T, bool kVec>
void dequantize_f32(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
  const float32x4_t s1 = vdupq_n_f32(kVec ? 1.0f : scale[0]);
  const int32x4_t z1 = vdupq_n_s32(kVec ? 0 : zp[0]);
  auto step = [&](const T* qs, const float* ss, const int32_t* zs, float* out) {
    int32x4_t v[4];
    widen16(qs, v);
    for (int j = 0; j < 4; ++j) {
      const float32x4_t s = kVec ? vld1q_f32(ss + 4 * j) : s1;
      const int32x4_t z = kVec ? vld1q_s32(zs + 4 * j) : z1;
      vst1q_f32(out + 4 * j, vmulq_f32(vcvtq_f32_s32(vsubq_s32(v[j], z)), s));
    }
  };
  size_t i = 0;
  for (; i + kStep <= n; i += kStep)
    step(q + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i);
  if (i < n) {
    const size_t rest = n - i;
    T qs[kStep] = {};
    float ss[kStep] = {}, out[kStep];
    int32_t zs[kStep] = {};
    std::memcpy(qs, q + i, rest * sizeof(T));
    if (kVec) {
      std::memcpy(ss, scale + i, rest * sizeof(float));
      std::memcpy(zs, zp + i, rest * sizeof(int32_t));
    }
    step(qs, ss, zs, out);
    std::memcpy(y + i, out, rest * sizeof(float));
  }
}

template <class T>
void quantize_tensor(const float* x, T* y, size_t n, float scale, int32_t zp) {
  quantize_f32<T, false>(x, y, n, &scale, &zp);
}
template <class T>
void dequantize_tensor(const T* q, float* y, size_t n, float scale, int32_t zp) {
  dequantize_f32<T, false>(q, y, n, &scale, &zp);
}

// Compare and select, not fminnm: a signalling NaN must not reset the
// running value either (the scalar rule: NaN never replaces it).
void minmax_f32(const float* x, size_t n, float* lo, float* hi) {
  float32x4_t l[2] = {vdupq_n_f32(INFINITY), vdupq_n_f32(INFINITY)};
  float32x4_t h[2] = {vdupq_n_f32(-INFINITY), vdupq_n_f32(-INFINITY)};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 2; ++u) {
      const float32x4_t v = vld1q_f32(x + i + 4 * u);
      l[u] = vbslq_f32(vcltq_f32(v, l[u]), v, l[u]);
      h[u] = vbslq_f32(vcgtq_f32(v, h[u]), v, h[u]);
    }
  float ls[8], hs[8];
  vst1q_f32(ls, l[0]);
  vst1q_f32(ls + 4, l[1]);
  vst1q_f32(hs, h[0]);
  vst1q_f32(hs + 4, h[1]);
  *lo = fold_min(x + i, n - i, fold_min(ls, 8, INFINITY));
  *hi = fold_max(x + i, n - i, fold_max(hs, 8, -INFINITY));
}

}  // namespace

const QuantizeKernels& neon_quantize_kernels() {
  static const QuantizeKernels k = {
      quantize_tensor<int8_t>,      quantize_tensor<uint8_t>,
      quantize_f32<int8_t, true>,   quantize_f32<uint8_t, true>,
      dequantize_tensor<int8_t>,    dequantize_tensor<uint8_t>,
      dequantize_f32<int8_t, true>, dequantize_f32<uint8_t, true>,
      minmax_f32,
  };
  return k;
}

}  // namespace qgemm
