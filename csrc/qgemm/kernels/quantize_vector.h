// Quantize, dequantize and minmax on vectors, written once over a per-ISA
// set Q, bit-exact with the scalar reference (scalar/quantize_scalar.cpp).
// Q is the ISA's output-stage primitive set (output_stage_vector.h: load,
// store, dup, add, sub, mul, div, to_float, round, max_or_low, min_or_high)
// plus the memory operations of one step of kVectors vectors:
//   store_bytes<T, kStream>(T* y, const Int (&q)[kVectors])  in-range int32 -> bytes
//   widen_bytes(const T* q, Int (&v)[kVectors])               bytes -> int32
//   prefetch(const float* x)            quantize's input, ahead of a step (may do nothing)
//   kStreamMin                          elements from which an output aligned
//                                       to a vector is written with
//                                       non-temporal stores: stream(float*,
//                                       Float), stream_fence(); 0: never
//   kMinmaxAccumulators                 independent min/max chains (latency)
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qgemm/kernels.h"
#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/minmax_fold.h"

namespace qgemm {
namespace {

// One vector's quantization parameters: scale, the clamp bounds in float
// relative to the zero point (so that nothing overflows), the zero point.
// quantize(x): divide, clamp in float (NaN -> lo: max_or_low keeps the bound
// unless x > lo), round half to even, add the zero point, as the reference.
template <class V, class T>
struct QuantizeLanes {
  using Int = typename V::Int;
  using Float = typename V::Float;
  static constexpr int kQmin = std::is_same<T, uint8_t>::value ? 0 : -128;
  static constexpr int kQmax = std::is_same<T, uint8_t>::value ? 255 : 127;
  Float scale, lo, hi;
  Int zp;
  QGEMM_INLINE QuantizeLanes(Float s, Int z)
      : scale(s), lo(V::to_float(V::sub(V::dup(kQmin), z))), hi(V::to_float(V::sub(V::dup(kQmax), z))), zp(z) {}
  // One scale and zero point in every lane (per tensor).
  QGEMM_INLINE QuantizeLanes(float s, int32_t z)
      : scale(V::dup(s)), lo(V::dup(static_cast<float>(kQmin - z))), hi(V::dup(static_cast<float>(kQmax - z))),
        zp(V::dup(z)) {}
  QGEMM_INLINE Int quantize(Float x) const {
    return V::add(V::round(V::min_or_high(V::max_or_low(V::div(x, scale), lo), hi)), zp);
  }
};

// The drivers: whole steps of kVectors vectors, then the tail through a
// padded stack buffer (x 0, scale 1, zero point 0 in the unused lanes).
template <class Q>
struct VectorQuantize {
  using Int = typename Q::Int;
  using Float = typename Q::Float;
  static constexpr int kLanes = Q::kLanes, kVectors = 4;
  static constexpr size_t kStep = kVectors * kLanes;

  // step(x, scale, zero_point, y, stream) on every step of kStep elements;
  // scale and zero_point are nullptr unless kVec. kPrefetch: Q::prefetch(x)
  // before each whole step.
  template <bool kVec, bool kPrefetch, class In, class Out, class Step>
  static QGEMM_INLINE void for_each_step(const In* x, Out* y, size_t n, const float* scale, const int32_t* zp,
                                         Step&& step) {
    size_t i = 0;
    if constexpr (Q::kStreamMin != 0) {
      // Large outputs bypass the caches (no read-for-ownership of lines that
      // are only written): the input stream then has the memory bandwidth to itself.
      if (n >= Q::kStreamMin && reinterpret_cast<uintptr_t>(y) % sizeof(Int) == 0) {
        for (; i + kStep <= n; i += kStep) {
          if constexpr (kPrefetch) Q::prefetch(x + i);
          step(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, std::true_type());
        }
        Q::stream_fence();
      }
    }
    for (; i + kStep <= n; i += kStep) {
      if constexpr (kPrefetch) Q::prefetch(x + i);
      step(x + i, kVec ? scale + i : nullptr, kVec ? zp + i : nullptr, y + i, std::false_type());
    }
    if (i == n) return;
    const size_t rest = n - i;
    In xs[kStep] = {};
    float ss[kStep];
    int32_t zs[kStep] = {};
    Out out[kStep];
    std::memcpy(xs, x + i, rest * sizeof(In));
    if (kVec) {
      for (size_t j = 0; j < kStep; ++j) ss[j] = 1.0f;
      std::memcpy(ss, scale + i, rest * sizeof(float));
      std::memcpy(zs, zp + i, rest * sizeof(int32_t));
    }
    step(xs, ss, zs, out, std::false_type());
    std::memcpy(y + i, out, rest * sizeof(Out));
  }

  template <class T, bool kVec>
  static void quantize(const float* x, T* y, size_t n, const float* scale, const int32_t* zp) {
    using Lanes = QuantizeLanes<Q, T>;
    // Per-element arrays may be empty (n == 0): never read them here.
    const Lanes fixed(kVec ? 1.0f : scale[0], kVec ? 0 : zp[0]);
    auto step = [&](const float* xs, const float* ss, const int32_t* zs, T* out, auto stream) {
      Int q[kVectors];
#pragma GCC unroll 4
      for (int j = 0; j < kVectors; ++j) {
        const Lanes p = kVec ? Lanes(Q::load(ss + kLanes * j), Q::load(zs + kLanes * j)) : fixed;
        q[j] = p.quantize(Q::load(xs + kLanes * j));
      }
      Q::template store_bytes<T, decltype(stream)::value>(out, q);
    };
    for_each_step<kVec, true>(x, y, n, scale, zp, step);
  }

  template <class T, bool kVec>
  static void dequantize(const T* q, float* y, size_t n, const float* scale, const int32_t* zp) {
    const Float s1 = Q::dup(kVec ? 1.0f : scale[0]);
    const Int z1 = Q::dup(kVec ? 0 : zp[0]);
    auto step = [&](const T* qs, const float* ss, const int32_t* zs, float* out, auto stream) {
      Int v[kVectors];
      Q::widen_bytes(qs, v);
#pragma GCC unroll 4
      for (int j = 0; j < kVectors; ++j) {
        const Float s = kVec ? Q::load(ss + kLanes * j) : s1;
        const Int z = kVec ? Q::load(zs + kLanes * j) : z1;
        const Float r = Q::mul(Q::to_float(Q::sub(v[j], z)), s);
        if constexpr (decltype(stream)::value) Q::stream(out + kLanes * j, r);
        else Q::store(out + kLanes * j, r);
      }
    };
    for_each_step<kVec, false>(q, y, n, scale, zp, step);
  }

  // min_or_high(x, m) keeps m unless x < m, so NaN never replaces the running
  // value (the scalar rule) and the accumulators never hold NaN.
  static void minmax(const float* x, size_t n, float* lo, float* hi) {
    constexpr int kAcc = Q::kMinmaxAccumulators;
    Float l[kAcc], h[kAcc];
    for (int u = 0; u < kAcc; ++u) {
      l[u] = Q::dup(INFINITY);
      h[u] = Q::dup(-INFINITY);
    }
    size_t i = 0;
    for (; i + kAcc * kLanes <= n; i += kAcc * kLanes)
#pragma GCC unroll 4
      for (int u = 0; u < kAcc; ++u) {
        const Float v = Q::load(x + i + kLanes * u);
        l[u] = Q::min_or_high(v, l[u]);
        h[u] = Q::max_or_low(v, h[u]);
      }
    for (int u = 1; u < kAcc; ++u) {
      l[0] = Q::min_or_high(l[u], l[0]);
      h[0] = Q::max_or_low(h[u], h[0]);
    }
    float ls[kLanes], hs[kLanes];
    Q::store(ls, l[0]);
    Q::store(hs, h[0]);
    *lo = fold_min(x + i, n - i, fold_min(ls, kLanes, INFINITY));
    *hi = fold_max(x + i, n - i, fold_max(hs, kLanes, -INFINITY));
  }
};

// The kernel table of a set K with static quantize<T, kVec>,
// dequantize<T, kVec> and minmax (per tensor: the per-element forms on one
// scale and zero point).
template <class K>
struct QuantizeTable {
  template <class T>
  static void quantize_tensor(const float* x, T* y, size_t n, float scale, int32_t zp) {
    K::template quantize<T, false>(x, y, n, &scale, &zp);
  }
  template <class T>
  static void dequantize_tensor(const T* q, float* y, size_t n, float scale, int32_t zp) {
    K::template dequantize<T, false>(q, y, n, &scale, &zp);
  }
  static QuantizeKernels kernels() {
    return {quantize_tensor<int8_t>,          quantize_tensor<uint8_t>,
            K::template quantize<int8_t, true>,   K::template quantize<uint8_t, true>,
            dequantize_tensor<int8_t>,        dequantize_tensor<uint8_t>,
            K::template dequantize<int8_t, true>, K::template dequantize<uint8_t, true>,
            K::minmax};
  }
};

}  // namespace
}  // namespace qgemm
