// Runs every kernel variant this CPU supports against the scalar reference
// (quantize / dequantize) and an int64 reference (GEMM), over many shapes,
// dtypes, zero points and strides. No Python involved; also built for AArch64
// and run under qemu, and built with sanitizers.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "qgemm/cpu.h"
#include "qgemm/output_stage_scalar.h"
#include "qgemm/gemm.h"
#include "qgemm/next_source_lines.h"
#include "qgemm/pack.h"
#include "qgemm/quantize.h"
#include "qgemm/thread_pool.h"

#include "check.h"

using namespace qgemm;


static std::mt19937 rng(12345);

// Under AddressSanitizer (and under qemu with it) the int64 reference runs
// ~20x slower: the random sweeps that only repeat covered paths run fewer
// cases there, and the largest shapes are smaller or left to the plain
// runs; every path still runs.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

static int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// ---------------------------------------------------------------------------
// quantize / dequantize

static std::vector<float> quantize_inputs(size_t n, float scale) {
  std::vector<float> x(n);
  std::normal_distribution<float> nd(0.0f, 100.0f * scale);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 3.4e38f, -3.4e38f, 1e-45f};
  for (size_t i = 0; i < n; ++i) {
    const int kind = rand_int(0, 9);
    if (kind == 0) x[i] = specials[rand_int(0, 7)];
    else if (kind <= 2) x[i] = (rand_int(-300, 300) + 0.5f) * scale;  // exact ties
    else x[i] = nd(rng);
  }
  return x;
}

static void test_quantize(const Kernels& k, const Kernels& ref) {
  const std::string isa = k.isa;
  for (size_t n : {0, 1, 7, 31, 32, 33, 64, 100, 1000, 4099}) {
    for (QDtype dt : {QDtype::s8, QDtype::u8}) {
      const bool u8 = dt == QDtype::u8;
      const float scale = std::ldexp(1.0f, rand_int(-8, 2)) * (1.0f + rand_int(0, 100) / 101.0f);
      const int32_t zp = u8 ? rand_int(0, 255) : rand_int(-128, 127);
      std::vector<float> x = quantize_inputs(n, scale);
      std::vector<uint8_t> got(n + 1, 0xAB), want(n + 1, 0xAB);
      std::vector<float> sv(n), fgot(n + 1, -7.0f), fwant(n + 1, -7.0f);
      std::vector<int32_t> zv(n);
      for (size_t i = 0; i < n; ++i) {
        sv[i] = scale * (1.0f + (i % 5) * 0.25f);
        zv[i] = u8 ? rand_int(0, 255) : rand_int(-128, 127);
      }
      const std::string tag = isa + (u8 ? " u8" : " s8") + " n=" + std::to_string(n);
      if (u8) {
        k.quant.f32_to_u8(x.data(), got.data(), n, scale, zp);
        ref.quant.f32_to_u8(x.data(), want.data(), n, scale, zp);
      } else {
        k.quant.f32_to_s8(x.data(), (int8_t*)got.data(), n, scale, zp);
        ref.quant.f32_to_s8(x.data(), (int8_t*)want.data(), n, scale, zp);
      }
      check(got == want, "quantize per-tensor " + tag);
      if (u8) {
        k.quant.f32_to_u8_vec(x.data(), got.data(), n, sv.data(), zv.data());
        ref.quant.f32_to_u8_vec(x.data(), want.data(), n, sv.data(), zv.data());
      } else {
        k.quant.f32_to_s8_vec(x.data(), (int8_t*)got.data(), n, sv.data(), zv.data());
        ref.quant.f32_to_s8_vec(x.data(), (int8_t*)want.data(), n, sv.data(), zv.data());
      }
      check(got == want, "quantize per-element " + tag);
      if (u8) {
        k.quant.u8_to_f32(got.data(), fgot.data(), n, scale, zp);
        ref.quant.u8_to_f32(got.data(), fwant.data(), n, scale, zp);
      } else {
        k.quant.s8_to_f32((int8_t*)got.data(), fgot.data(), n, scale, zp);
        ref.quant.s8_to_f32((int8_t*)got.data(), fwant.data(), n, scale, zp);
      }
      check(std::memcmp(fgot.data(), fwant.data(), (n + 1) * 4) == 0, "dequantize per-tensor " + tag);
      if (u8) {
        k.quant.u8_to_f32_vec(got.data(), fgot.data(), n, sv.data(), zv.data());
        ref.quant.u8_to_f32_vec(got.data(), fwant.data(), n, sv.data(), zv.data());
      } else {
        k.quant.s8_to_f32_vec((int8_t*)got.data(), fgot.data(), n, sv.data(), zv.data());
        ref.quant.s8_to_f32_vec((int8_t*)got.data(), fwant.data(), n, sv.data(), zv.data());
      }
      check(std::memcmp(fgot.data(), fwant.data(), (n + 1) * 4) == 0,
            "dequantize per-element " + tag);
    }
  }
  // minmax: NaN ignored, infinities kept, (+inf, -inf) when there is no number.
  for (size_t n : {0, 1, 7, 31, 32, 33, 100, 1000, 4099, 300000, 1500000}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<float> x = quantize_inputs(n, 0.1f);
      if (pattern == 1)  // finite values only
        for (auto& v : x) v = std::isfinite(v) ? v : 0.5f;
      if (pattern == 2)  // NaN only
        for (auto& v : x) v = std::numeric_limits<float>::quiet_NaN();
      float lo = 0, hi = 0, wlo = 0, whi = 0;
      minmax(x.data(), n, &lo, &hi, k.quant);
      ref.quant.minmax_f32(x.data(), n, &wlo, &whi);
      check(lo == wlo && hi == whi,
            isa + " minmax n=" + std::to_string(n) + " pattern=" + std::to_string(pattern));
      float elo = INFINITY, ehi = -INFINITY;  // independent of every kernel
      for (float v : x) {
        if (v == v) elo = std::min(elo, v), ehi = std::max(ehi, v);
      }
      check(wlo == elo && whi == ehi, "scalar minmax n=" + std::to_string(n));
    }
  }
  // One extreme at each position, at a few alignments: every lane and every
  // accumulator must reach the result (random data repeats its extremes).
  for (size_t n : {1, 15, 16, 17, 63, 64, 65, 130, 768, 1000}) {
    for (size_t offset : {0, 1, 5}) {
      std::vector<float> buf(n + offset);
      for (auto& v : buf) v = static_cast<float>(rand_int(-1000, 1000));
      float* x = buf.data() + offset;
      for (size_t p = 0; p < n; p += n > 130 ? 7 : 1) {
        const float keep = x[p];
        float lo = 0, hi = 0;
        x[p] = -5000.0f;
        minmax(x, n, &lo, &hi, k.quant);
        check(lo == -5000.0f, isa + " minmax: min at " + std::to_string(p) + " of " + std::to_string(n));
        x[p] = 5000.0f;
        minmax(x, n, &lo, &hi, k.quant);
        check(hi == 5000.0f, isa + " minmax: max at " + std::to_string(p) + " of " + std::to_string(n));
        x[p] = keep;
      }
    }
  }
  // Large calls take the streaming-store path when the output is 32-byte aligned.
  for (size_t misalign : {0, 1}) {
    const size_t n = (size_t(1) << 20) + 77;
    std::vector<float> x = quantize_inputs(n, 0.05f);
    std::vector<uint8_t> gbuf(n + 64), wbuf(n + 64);
    std::vector<float> fgot_buf(n + 64), fwant(n);
    uint8_t* got = gbuf.data() + (32 - reinterpret_cast<uintptr_t>(gbuf.data()) % 32) % 32 + misalign;
    float* fgot = fgot_buf.data() + (32 - reinterpret_cast<uintptr_t>(fgot_buf.data()) % 32) % 32 / 4 + misalign;
    k.quant.f32_to_u8(x.data(), got, n, 0.05f, 131);
    ref.quant.f32_to_u8(x.data(), wbuf.data(), n, 0.05f, 131);
    check(std::memcmp(got, wbuf.data(), n) == 0, isa + " quantize large, misalign=" + std::to_string(misalign));
    k.quant.u8_to_f32(got, fgot, n, 0.05f, 131);
    ref.quant.u8_to_f32(got, fwant.data(), n, 0.05f, 131);
    check(std::memcmp(fgot, fwant.data(), n * 4) == 0,
          isa + " dequantize large, misalign=" + std::to_string(misalign));
  }
  // Every signedness and the per-element kernels on large calls (streaming
  // stores after a head that aligns the output) and mid-size ones (prefetch,
  // plain stores), input and output at several offsets from a cache line.
  for (size_t n : {(size_t(1) << 20) + 77, size_t(200003)}) {
    for (size_t off : {0, 3, 6, 10, 17}) {
      std::vector<float> xbuf(n + 64), sv(n), fgot_buf(n + 64), fwant(n);
      std::vector<int32_t> zv(n);
      std::vector<uint8_t> gbuf(n + 128), want(n);
      const size_t xpad = (64 - reinterpret_cast<uintptr_t>(xbuf.data()) % 64) % 64 / 4;
      const size_t ypad = (64 - reinterpret_cast<uintptr_t>(gbuf.data()) % 64) % 64;
      const size_t fpad = (64 - reinterpret_cast<uintptr_t>(fgot_buf.data()) % 64) % 64 / 4;
      float* x = xbuf.data() + xpad + (off % 5);
      uint8_t* got = gbuf.data() + ypad + off;
      float* fgot = fgot_buf.data() + fpad + off % 16;
      const std::vector<float> xs = quantize_inputs(n, 0.03f);
      std::copy(xs.begin(), xs.end(), x);
      for (QDtype dt : {QDtype::s8, QDtype::u8}) {
        const bool u8 = dt == QDtype::u8;
        for (size_t i = 0; i < n; ++i) {
          sv[i] = 0.03f * (1.0f + (i % 7) * 0.125f);
          zv[i] = u8 ? rand_int(0, 255) : rand_int(-128, 127);
        }
        const int32_t zp = u8 ? 77 : -9;
        const std::string tag = isa + (u8 ? " u8" : " s8") + " n=" + std::to_string(n) +
                                " offset=" + std::to_string(off);
        for (bool vec : {false, true}) {
          const std::string what = std::string(vec ? " per-element " : " per-tensor ") + tag;
          if (u8 && vec) {
            k.quant.f32_to_u8_vec(x, got, n, sv.data(), zv.data());
            ref.quant.f32_to_u8_vec(x, want.data(), n, sv.data(), zv.data());
          } else if (u8) {
            k.quant.f32_to_u8(x, got, n, 0.03f, zp);
            ref.quant.f32_to_u8(x, want.data(), n, 0.03f, zp);
          } else if (vec) {
            k.quant.f32_to_s8_vec(x, (int8_t*)got, n, sv.data(), zv.data());
            ref.quant.f32_to_s8_vec(x, (int8_t*)want.data(), n, sv.data(), zv.data());
          } else {
            k.quant.f32_to_s8(x, (int8_t*)got, n, 0.03f, zp);
            ref.quant.f32_to_s8(x, (int8_t*)want.data(), n, 0.03f, zp);
          }
          check(std::memcmp(got, want.data(), n) == 0, "quantize" + what);
          if (u8 && vec) {
            k.quant.u8_to_f32_vec(got, fgot, n, sv.data(), zv.data());
            ref.quant.u8_to_f32_vec(got, fwant.data(), n, sv.data(), zv.data());
          } else if (u8) {
            k.quant.u8_to_f32(got, fgot, n, 0.03f, zp);
            ref.quant.u8_to_f32(got, fwant.data(), n, 0.03f, zp);
          } else if (vec) {
            k.quant.s8_to_f32_vec((int8_t*)got, fgot, n, sv.data(), zv.data());
            ref.quant.s8_to_f32_vec((int8_t*)got, fwant.data(), n, sv.data(), zv.data());
          } else {
            k.quant.s8_to_f32((int8_t*)got, fgot, n, 0.03f, zp);
            ref.quant.s8_to_f32((int8_t*)got, fwant.data(), n, 0.03f, zp);
          }
          check(std::memcmp(fgot, fwant.data(), n * 4) == 0, "dequantize" + what);
        }
      }
    }
  }
  // Random float bit patterns: signalling and quiet NaNs of both signs,
  // subnormals, huge values (a vector min/max may treat these differently).
  {
    const size_t n = 1 << 14;
    std::vector<float> x(n);
    for (auto& v : x) {
      const uint32_t bits = static_cast<uint32_t>(rng());
      std::memcpy(&v, &bits, 4);
    }
    for (float scale : {1.0f, 3e-3f, 1e-30f, 1e30f}) {
      std::vector<int8_t> got(n), want(n);
      k.quant.f32_to_s8(x.data(), got.data(), n, scale, -7);
      ref.quant.f32_to_s8(x.data(), want.data(), n, scale, -7);
      check(got == want, isa + " quantize s8 random bit patterns, scale=" + std::to_string(scale));
      std::vector<uint8_t> ugot(n), uwant(n);
      k.quant.f32_to_u8(x.data(), ugot.data(), n, scale, 200);
      ref.quant.f32_to_u8(x.data(), uwant.data(), n, scale, 200);
      check(ugot == uwant, isa + " quantize u8 random bit patterns, scale=" + std::to_string(scale));
    }
  }
  // The threaded, per-channel entry point against element-wise reference.
  // (inner, outer): the last two have 1.4M and 1.5M elements, many tasks.
  const std::pair<size_t, size_t> shapes[] = {{1, 70}, {3, 70}, {64, 70}, {1000, 70}, {4000, 70}, {3, 100000}};
  for (const auto& [inner, outer] : shapes) {
    const size_t channels = 5, n = outer * channels * inner;
    std::vector<float> sc(channels);
    std::vector<int32_t> zs(channels);
    for (size_t c = 0; c < channels; ++c) {
      sc[c] = 0.01f * (c + 1);
      zs[c] = rand_int(-128, 127);
    }
    std::vector<float> x = quantize_inputs(n, 0.02f);
    std::vector<int8_t> got(n), want(n);
    quantize(x.data(), got.data(), QDtype::s8, {n, channels, inner}, sc.data(), zs.data(), k.quant);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = (i / inner) % channels;
      ref.quant.f32_to_s8(&x[i], &want[i], 1, sc[c], zs[c]);
    }
    check(got == want, isa + " quantize per-channel inner=" + std::to_string(inner));
    std::vector<float> fgot(n), fwant(n);
    dequantize(got.data(), QDtype::s8, fgot.data(), {n, channels, inner}, sc.data(), zs.data(),
               k.quant);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = (i / inner) % channels;
      ref.quant.s8_to_f32(&got[i], &fwant[i], 1, sc[c], zs[c]);
    }
    check(std::memcmp(fgot.data(), fwant.data(), n * 4) == 0,
          isa + " dequantize per-channel inner=" + std::to_string(inner));
  }
}

// ---------------------------------------------------------------------------
// GEMM

// Input ranges: full, or ranges that prove a range-proven kernel exact
// (kernels.h): A within 7 bits in its unsigned stored domain (uint8 0..127,
// int8 -128..-1), or B within [-64, 64] stored (int8, or uint8 64..192).
enum Range { kFullRange = 0, kA7bit = 1, kB7bit = 2 };

constexpr OutputKind kAllKinds[] = {OutputKind::int32, OutputKind::float32, OutputKind::requantize_float,
                                    OutputKind::requantize_fixed_point};

struct GemmCase {
  size_t batch, m, n, k;
  bool a_u8, b_u8, a_transposed, zb_per_column, extremes;
  OutputKind kind = OutputKind::int32;
  int range = kFullRange;
  bool single_use = false;  // B packed for one call (choose_kernel's row rule)
  size_t check_every = 1;   // rows checked against the reference: every n-th (big cases)
  bool per_row = false;     // one zero point (and, for float outputs, scale) of A per row
  // B plain, to gemm_plain_b (packed inside the call) instead of pack_b +
  // gemm, stored with rows padded (1) or transposed (2) when b_layout says so.
  bool plain_b = false;
  int b_layout = 0;
  // B's zero point 0 in its stored domain (int8 0, uint8 128): no row sums of
  // A are needed, so a kernel that can reads a uint8 A in place.
  bool zb_stored_zero = false;
};

// The reference output stage for one exact accumulator (independent of the
// kernels' epilogue code except for the shared fixed-point helpers).
// Per-row scales (o.row_scale, row r): the per-tensor formulas with
// a_scale = row_scale[r] (kernels.h).
static void reference_output(int64_t exact, size_t r, size_t j, const GemmOutput& o, void* dst) {
  int32_t acc = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(exact)));
  if (o.bias) acc = static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(o.bias[j]));
  if (o.kind == OutputKind::int32) {
    *static_cast<int32_t*>(dst) = acc;
  } else if (o.kind == OutputKind::float32) {
    const float scale = o.row_scale ? o.row_scale[r] * o.scale[j] : o.scale[j];
    float v = static_cast<float>(acc) * scale;
    if (o.offset) v = v + o.offset[j];
    *static_cast<float*>(dst) = std::min(std::max(v, o.fmin), o.fmax);
  } else {
    long q;
    if (o.kind == OutputKind::requantize_float) {
      const float ab = o.row_scale ? o.row_scale[r] * o.scale[j] : 0.0f;
      const float scale = o.row_scale ? ab / o.y_scale : o.scale[j];
      float v = static_cast<float>(acc);
      if (o.offset) v = v + (o.row_scale ? o.offset[j] / ab : o.offset[j]);
      v = v * scale;
      const float lo = float(o.qmin - o.zero_point), hi = float(o.qmax - o.zero_point);
      q = std::lrint(std::min(std::max(v, lo), hi)) + o.zero_point;
    } else {
      q = long(multiply_by_quantized_multiplier(acc, o.multiplier[j], o.shift[j])) + o.zero_point;
      q = std::min<long>(std::max<long>(q, o.qmin), o.qmax);
    }
    if (o.out_u8) *static_cast<uint8_t*>(dst) = static_cast<uint8_t>(q);
    else *static_cast<int8_t*>(dst) = static_cast<int8_t>(q);
  }
}

static void test_gemm_case(const Kernels& kern, const GemmCase& g) {
  const size_t rows = g.batch * g.m;
  // A stored as batch x m x k, or per batch k x m (transposed view).
  std::vector<uint8_t> a(rows * g.k), b(g.k * g.n);  // exact sizes: ASan sees any over-read
  // Bytes whose stored values (x ^ flip) are in [lo, hi], or all `extreme`.
  auto fill = [&](std::vector<uint8_t>& v, int flip, int extreme, int lo, int hi) {
    for (auto& x : v) x = static_cast<uint8_t>((g.extremes ? extreme : rand_int(lo, hi)) ^ flip);
  };
  // A in its unsigned stored domain (int8 flipped), B in its signed one (uint8
  // flipped). The full-range extremes are A = 255 or -128, B = 255 or -128.
  const int a_flip = g.a_u8 ? 0 : 0x80, b_flip = g.b_u8 ? 0x80 : 0;
  if (g.range == kA7bit) fill(a, a_flip, 127, 0, 127);
  else fill(a, a_flip, g.a_u8 ? 255 : 0, 0, 255);
  if (g.range == kB7bit) fill(b, b_flip, -64, -64, 64);
  else fill(b, b_flip, g.b_u8 ? 127 : -128, -128, 127);
  const int32_t za = g.extremes ? (g.a_u8 ? 0 : 127) : (g.a_u8 ? rand_int(0, 255) : rand_int(-128, 127));
  // Per-row zero points: random, with the dtype's extremes among them.
  std::vector<int32_t> za_rows(rows);
  for (auto& z : za_rows) {
    const int pick = rand_int(0, 5);
    z = pick == 0 ? (g.a_u8 ? 0 : -128) : pick == 1 ? (g.a_u8 ? 255 : 127) : g.a_u8 ? rand_int(0, 255) : rand_int(-128, 127);
  }
  auto za_of = [&](size_t r) { return g.per_row ? za_rows[r] : za; };
  std::vector<int32_t> zb(g.n ? g.n : 1);
  for (auto& z : zb) z = g.extremes ? (g.b_u8 ? 0 : 127) : (g.b_u8 ? rand_int(0, 255) : rand_int(-128, 127));
  if (!g.zb_per_column) for (auto& z : zb) z = zb[0];
  if (g.zb_stored_zero) for (auto& z : zb) z = g.b_u8 ? 128 : 0;

  AOperand A{a.data(), g.a_u8, g.batch, g.m, g.k, 0, 0, 0, g.per_row ? za_rows.data() : nullptr};
  A.batch_stride = static_cast<ptrdiff_t>(g.m * g.k);
  if (g.a_transposed) {
    A.row_stride = 1;
    A.col_stride = static_cast<ptrdiff_t>(g.m);
  } else {
    A.row_stride = static_cast<ptrdiff_t>(g.k);
    A.col_stride = 1;
  }
  auto a_at = [&](size_t r, size_t kk) -> int64_t {
    const uint8_t raw = a[(r / g.m) * A.batch_stride + (r % g.m) * A.row_stride + kk * A.col_stride];
    return g.a_u8 ? int64_t(raw) : int64_t(int8_t(raw));
  };
  auto b_at = [&](size_t kk, size_t j) -> int64_t {
    const uint8_t raw = b[kk * g.n + j];
    return g.b_u8 ? int64_t(raw) : int64_t(int8_t(raw));
  };
  const PackedB pb = pack_b({b.data(), g.k, g.n, static_cast<ptrdiff_t>(g.n), 1, g.b_u8},
                            kern.gemm, g.single_use);
  // Round trip of the packed layout.
  std::vector<uint8_t> unpacked(g.k * g.n);
  unpack_b(pb, unpacked.data());
  check(unpacked.empty() || std::memcmp(unpacked.data(), b.data(), unpacked.size()) == 0,
        std::string(kern.isa) + " unpack_b");

  // Output stage parameters, random per case.
  const size_t n1 = g.n ? g.n : 1;
  std::vector<int32_t> bias(n1), mult(n1), shift(n1);
  std::vector<float> scale(n1), offset(n1);
  for (size_t j = 0; j < n1; ++j) {
    bias[j] = rand_int(-100000, 100000);
    scale[j] = std::ldexp(1.0f + rand_int(0, 1000) / 1000.0f, rand_int(-20, -8));
    offset[j] = rand_int(-50000, 50000) * 0.5f;
    mult[j] = rand_int(1 << 30, 0x7FFFFFFF);
    shift[j] = rand_int(-20, 2);
  }
  GemmOutput out;
  out.kind = g.kind;
  const bool u8_out = rand_int(0, 1);
  out.out_u8 = u8_out;
  out.zero_point = u8_out ? rand_int(0, 255) : rand_int(-128, 127);
  out.qmin = u8_out ? 0 : -128;
  out.qmax = u8_out ? 255 : 127;
  if (rand_int(0, 1)) out.qmin = out.zero_point;  // relu
  if (rand_int(0, 1)) out.bias = bias.data();
  if (g.kind == OutputKind::float32 || g.kind == OutputKind::requantize_float) {
    out.scale = scale.data();
    if (rand_int(0, 1)) out.offset = offset.data();
  }
  if (g.kind == OutputKind::float32 && rand_int(0, 1)) out.fmin = 0.0f;
  if (g.kind == OutputKind::requantize_fixed_point) {
    out.multiplier = mult.data();
    out.shift = shift.data();
  }
  // Per-row scales: `scale` is b_scale, the output scale y_scale and the
  // quantized output's offset a bias in real units.
  std::vector<float> row_scale(rows);
  for (auto& v : row_scale) v = std::ldexp(1.0f + rand_int(0, 1000) / 1000.0f, rand_int(-12, -4));
  if (g.per_row && (g.kind == OutputKind::float32 || g.kind == OutputKind::requantize_float)) {
    out.row_scale = row_scale.data();
    out.y_scale = std::ldexp(1.0f + rand_int(0, 1000) / 1000.0f, rand_int(-20, -8));
    for (auto& v : offset) v *= 1e-5f;
  }
  const size_t esize = (g.kind == OutputKind::requantize_float || g.kind == OutputKind::requantize_fixed_point) ? 1 : 4;
  const size_t ldc = g.n + 3;  // a padded C checks that nothing is written past n
  std::vector<uint8_t> c((rows * ldc + 1) * esize, 0x5A), want_elem(4);
  out.data = c.data();
  out.ldc = ldc;
  if (g.plain_b) {
    // B as the caller holds it: contiguous, rows padded, or transposed.
    const size_t ldb = g.b_layout == 1 ? g.n + 7 : g.n;
    std::vector<uint8_t> held(g.b_layout == 1 ? g.k * ldb : g.k * g.n);
    ptrdiff_t rs = static_cast<ptrdiff_t>(ldb), cs = 1;
    if (g.b_layout == 2) {
      rs = 1;
      cs = static_cast<ptrdiff_t>(g.k);
    }
    for (size_t kk = 0; kk < g.k; ++kk)
      for (size_t j = 0; j < g.n; ++j) held[kk * rs + j * cs] = b[kk * g.n + j];
    const ByteMatrix bm{held.data(), g.k, g.n, rs, cs, g.b_u8};
    gemm_plain_b(kern.gemm, A, za, bm, zb.data(), g.zb_per_column, out);
  } else {
    gemm(kern.gemm, A, za, pb, zb.data(), g.zb_per_column, out);
  }
  bool ok = true;
  for (size_t r = 0; r < rows && ok; ++r) {
    if (r % g.check_every != 0 && r + 1 != rows) continue;
    for (size_t j = 0; j < g.n && ok; ++j) {
      int64_t s = 0;
      for (size_t kk = 0; kk < g.k; ++kk) s += (a_at(r, kk) - za_of(r)) * (b_at(kk, j) - zb[j]);
      reference_output(s, r, j, out, want_elem.data());
      if (std::memcmp(&c[(r * ldc + j) * esize], want_elem.data(), esize) != 0) {
        std::printf("  mismatch at r=%zu j=%zu kind=%d (exact accumulator %lld)\n", r, j, int(g.kind),
                    (long long)s);
        ok = false;
      }
    }
    for (size_t j = g.n * esize; j < ldc * esize && ok; ++j) ok = c[r * ldc * esize + j] == 0x5A;
  }
  char tag[256];
  std::snprintf(tag, sizeof tag,
                "%s %s b=%zu m=%zu n=%zu k=%zu a_u8=%d b_u8=%d aT=%d zbcol=%d ext=%d kind=%d range=%d "
                "per_row=%d b_layout=%d zb0=%d",
                choose_kernel(kern.gemm, A, pb).name, g.plain_b ? "gemm_plain_b" : "gemm", g.batch, g.m, g.n, g.k,
                g.a_u8, g.b_u8, g.a_transposed, g.zb_per_column, g.extremes, int(g.kind), g.range, g.per_row,
                g.b_layout, g.zb_stored_zero);
  check(ok, tag);
}

static void test_gemm(const Kernels& kern) {
  const size_t sizes[] = {0, 1, 2, 3, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33};
  for (int t = 0; t < 150; ++t) {
    GemmCase g;
    g.batch = rand_int(1, 2);
    g.m = sizes[rand_int(0, 13)];
    g.n = sizes[rand_int(0, 13)];
    g.k = sizes[rand_int(0, 13)];
    g.a_u8 = rand_int(0, 1);
    g.b_u8 = rand_int(0, 1);
    g.a_transposed = rand_int(0, 1);
    g.zb_per_column = rand_int(0, 1);
    g.extremes = rand_int(0, 4) == 0;
    g.kind = kAllKinds[rand_int(0, 3)];
    g.per_row = rand_int(0, 2) == 0;
    test_gemm_case(kern, g);
  }
  // Per-row activation parameters: every output kind and dtype pair, both
  // thread splits, K blocks (int32), partial tiles and panels, and the
  // range-proven kernel (7-bit A) where there is one.
  for (bool a_u8 : {false, true})
    for (bool b_u8 : {false, true})
      for (OutputKind kind : kAllKinds) {
        GemmCase g{1, 37, 45, 300, a_u8, b_u8, false, (int(kind) & 1) == 0, false, kind};
        g.per_row = true;
        test_gemm_case(kern, g);
        g = {2, 3, 200, 1000, a_u8, b_u8, true, int(kind) >= 2, false, kind};
        g.per_row = true;
        test_gemm_case(kern, g);
        g = {1, 101, 77, 2500, a_u8, b_u8, false, kind == OutputKind::float32, false, kind, kA7bit};
        g.per_row = true;
        test_gemm_case(kern, g);
      }
  // Larger shapes: several K blocks, M blocks, panels; both thread splits.
  for (bool a_u8 : {false, true})
    for (bool b_u8 : {false, true}) {
      test_gemm_case(kern, {1, 101, 77, 1100, a_u8, b_u8, false, true, false});
      test_gemm_case(kern, {1, 200, 40, 520, a_u8, b_u8, false, false, true});
      test_gemm_case(kern, {1, 1, 300, 1500, a_u8, b_u8, false, true, false});
      test_gemm_case(kern, {3, 5, 35, 700, a_u8, b_u8, true, false, false});
      // Few rows, enough work for threads: tasks split the panels and share one packed A.
      test_gemm_case(kern, {1, 4, 200, 1000, a_u8, b_u8, false, true, false});
      test_gemm_case(kern, {2, 9, 150, 600, a_u8, b_u8, true, false, false, OutputKind::requantize_float});
      for (OutputKind kind : {OutputKind::float32, OutputKind::requantize_float, OutputKind::requantize_fixed_point})
        test_gemm_case(kern, {1, 50, 40, 2500, a_u8, b_u8, false, true, false, kind});
    }
  // A small next to B: with threads, tasks split the panels and share A
  // packed whole (every K block of the int32 output, rows past one M block),
  // per-tensor and per-row zero points, every output kind (B at least 4x A
  // packed as int16 too).
  // (Smaller under the sanitizers, on the same paths.)
  const size_t whole_k = kSanitized ? 2100 : 2500;
  for (OutputKind kind : kAllKinds) {
    GemmCase g{1, kSanitized ? 20u : 40u, kSanitized ? 320u : 600u, whole_k, kind != OutputKind::float32, true,
               false, true, false, kind};
    g.per_row = kind != OutputKind::int32;
    test_gemm_case(kern, g);
    // uint8 A read in place where the kernel can (K a multiple of 4, rows
    // of two batch items equally spaced), else packed (K % 4 != 0).
    g = {2, 20, kSanitized ? 160u : 300u, kind == OutputKind::int32 ? whole_k + 2 : whole_k, true,
         kind == OutputKind::float32, false, true, false, kind};
    g.per_row = kind != OutputKind::requantize_fixed_point;
    g.zb_stored_zero = true;
    test_gemm_case(kern, g);
  }
  if (!kSanitized) {  // rows past one M block
    GemmCase g{1, 140, 1200, 520, true, false, false, false, false, OutputKind::int32};
    g.check_every = 8;
    test_gemm_case(kern, g);
    g.per_row = true;
    g.kind = OutputKind::requantize_float;
    test_gemm_case(kern, g);
  }
  // uint8 A read in place under a row split and on one thread: M blocks, K
  // blocks (int32), partial tiles, two equally spaced batch items.
  for (OutputKind kind : kAllKinds) {
    GemmCase g{kind == OutputKind::int32 ? 1u : 2u, kind == OutputKind::int32 ? (kSanitized ? 150u : 300u) : 45u,
               kSanitized ? 40u : 70u, kind == OutputKind::int32 ? 2100u : 300u, true, kind == OutputKind::float32,
               false, true, false, kind};
    g.zb_stored_zero = true;
    g.per_row = kind != OutputKind::requantize_fixed_point;
    g.check_every = kind == OutputKind::int32 ? 3 : 1;
    test_gemm_case(kern, g);
  }
  // Extremes over a K long enough that the exact sum (255^2 * K) leaves int32:
  // every kernel must wrap modulo 2^32 like the reference, whatever its
  // intermediate widths (int16 pairs, dot products). 40 rows (more than 2 * mr
  // for every kernel) take the K-blocked path that accumulates into C; 3 rows
  // the unblocked one. Partial panels and tiles in both.
  for (bool u8 : {false, true}) {
    test_gemm_case(kern, {1, 40, 19, 40000, u8, u8, false, false, true});
    test_gemm_case(kern, {1, 3, 21, 40000, u8, !u8, true, true, true});
  }
  // K blocks (int32 output accumulates into C across blocks) on random data.
  test_gemm_case(kern, {2, 23, 37, 4500, true, false, false, true, false});
  // Outputs of 2 MiB and more, whose tiles fetch their rows of C ahead
  // (kGemmPrefetchOutput): int32 and float, K of a few groups and of more
  // groups than a tile has rows, a partial last panel (not under the
  // sanitizers: test_microkernels checks the hint's tile code there).
  if (!kSanitized)
    for (size_t k : {6, 40}) {
      GemmCase g{1, 520, 1030, k, true, false, false, true, false, k == 6 ? OutputKind::int32 : OutputKind::float32};
      g.check_every = 4;
      test_gemm_case(kern, g);
    }
  // Inputs whose ranges prove a range-proven kernel exact (every kernel must
  // be exact on them; where there is such a kernel, they run on it).
  for (int t = 0; t < 60; ++t) {
    GemmCase g{static_cast<size_t>(rand_int(1, 2)), sizes[rand_int(0, 13)], sizes[rand_int(0, 13)],
               sizes[rand_int(0, 13)], rand_int(0, 1) == 1, rand_int(0, 1) == 1, rand_int(0, 1) == 1,
               rand_int(0, 1) == 1, rand_int(0, 3) == 0, kAllKinds[rand_int(0, 3)], rand_int(kA7bit, kB7bit)};
    test_gemm_case(kern, g);
  }
  // B packed for one call: few rows keep the exact kernel; where there is a
  // range-proven kernel, >= 512 rows of 7-bit A take it, on the second layout
  // of the single-use B (every 16th row and the last checked). Over 1 MiB,
  // single-use panels come from the buffer pool: twice, so a block is reused.
  test_gemm_case(kern, {1, 3, 300, 301, true, false, false, true, false, OutputKind::int32, kA7bit, true});
  for (int rep = 0; rep < 2; ++rep)
    test_gemm_case(kern, {1, 3, 1030, 1031, rep == 1, true, false, true, false, OutputKind::int32, kFullRange, true});
  if (kern.gemm.proven_range)
    for (bool a_u8 : {false, true})
      test_gemm_case(kern, {1, 530, 300, 301, a_u8, true, false, false, false, OutputKind::requantize_fixed_point, kA7bit, true, 16});
  for (bool a_u8 : {false, true})
    for (bool b_u8 : {false, true})
      for (int range : {kA7bit, kB7bit}) {
        test_gemm_case(kern, {1, 70, 45, 1300, a_u8, b_u8, false, true, false, OutputKind::int32, range});
        test_gemm_case(kern, {1, 40, 33, 3000, a_u8, b_u8, false, false, true, OutputKind::int32, range});
        test_gemm_case(kern, {1, 2, 300, 900, a_u8, b_u8, true, true, false, OutputKind::requantize_fixed_point, range});
      }
}

// A plain B packed inside the call (gemm_plain_b): its K blocks of 512 rows
// (edges on either side, and int32 partials in scratch for the other output
// kinds), partial tiles and panels, column blocks split across threads, per
// column and per row zero points, both dtypes of B, B's strides, and the
// shapes it hands to pack_b + gemm (A too large to pack whole).
static void test_plain_b(const Kernels& kern) {
  const size_t ks[] = {0, 1, 3, 4, 5, 64, 511, 512, 513, 1024, 1025, 1500};
  const size_t ms[] = {1, 2, 7, 8, 9, 17, 40, 65};
  const size_t ns[] = {1, 15, 16, 17, 31, 32, 33, 48, 100, 257, 300, 513};
  for (int t = 0; t < (kSanitized ? 40 : 160); ++t) {
    GemmCase g;
    g.batch = rand_int(1, 2);
    g.m = ms[rand_int(0, 7)];
    g.n = ns[rand_int(0, 11)];
    g.k = ks[rand_int(0, 11)];
    g.a_u8 = rand_int(0, 1);
    g.b_u8 = rand_int(0, 1);
    g.a_transposed = rand_int(0, 3) == 0;
    g.zb_per_column = rand_int(0, 1);
    g.extremes = rand_int(0, 5) == 0;
    g.kind = kAllKinds[rand_int(0, 3)];
    g.per_row = rand_int(0, 2) == 0;
    g.plain_b = true;
    g.b_layout = rand_int(0, 5) == 0 ? 2 : rand_int(0, 3) == 0 ? 1 : 0;
    g.zb_stored_zero = rand_int(0, 2) == 0;
    g.range = rand_int(0, 2) == 0 ? kA7bit : kFullRange;  // 7-bit A: a range-proven kernel where there is one
    test_gemm_case(kern, g);
  }
  for (bool b_u8 : {false, true})
    for (OutputKind kind : kAllKinds) {
      GemmCase g{1, 33, 300, 1025, !b_u8, b_u8, false, true, false, kind};
      g.plain_b = true;
      g.per_row = kind != OutputKind::int32;
      test_gemm_case(kern, g);
      // A at 127 stored and B at -128 or 255 everywhere: the range-proven
      // kernel's bound exactly (2 * 127 * 128), in every dtype pair.
      for (bool a_u8 : {false, true}) {
        GemmCase e{1, 20, 70, 300, a_u8, b_u8, false, false, true, kind, kA7bit};
        e.plain_b = true;
        test_gemm_case(kern, e);
      }
      g = {1, 3, 700, 1500, b_u8, b_u8, false, false, true, kind};  // extremes: sums past int16 in the packer
      g.plain_b = true;
      g.b_layout = 1;
      test_gemm_case(kern, g);
    }
  // uint8 A read in place (where the kernel can): one and two batch items,
  // partial tiles, K blocks on both sides of 512, every output kind.
  for (OutputKind kind : kAllKinds)
    for (size_t k : {64, 516, 1028}) {
      GemmCase g{k == 64 ? 2u : 1u, 37, 100, k, true, k == 516, false, true, false, kind};
      g.plain_b = true;
      g.zb_stored_zero = true;
      g.per_row = kind != OutputKind::requantize_fixed_point;
      test_gemm_case(kern, g);
    }
  // An output of 2 MiB and more (its tiles fetch their rows of C ahead) from
  // a small B read by few rows: still packed in the tasks (not under the
  // sanitizers, as above).
  if (!kSanitized)
    for (OutputKind kind : {OutputKind::int32, OutputKind::float32}) {
      GemmCase g{1, 200, 2700, 40, false, true, false, true, false, kind};
      g.plain_b = true;
      g.check_every = 4;
      test_gemm_case(kern, g);
    }
  // B of 1 MiB and more read by 128 rows and more: pack_b + gemm inside
  // (134M multiply-adds at least: not under the sanitizers, which check
  // pack_b and gemm elsewhere).
  if (!kSanitized) {
    GemmCase many{1, 130, 520, 2100, false, true, false, true, false, OutputKind::int32};
    many.plain_b = true;
    many.check_every = 8;
    test_gemm_case(kern, many);
  }
  // A past the size packed whole (4 MiB): pack_b + gemm inside (not under
  // the sanitizers either: 176M multiply-adds).
  if (!kSanitized) {
    GemmCase big{1, 1100, 40, 4000, true, false, false, true, false, OutputKind::requantize_float};
    big.plain_b = true;
    big.check_every = 16;
    test_gemm_case(kern, big);
  }
}

// Every packing table this CPU runs packs B's panels to the same bytes,
// column sums and max|B| as the portable loops: panel by panel (as a plain B
// is packed in the GEMM's tasks) and over a range of panels at once (as
// pack_b packs a thread's share), streamed or not, into destinations aligned
// to 64, 32 or 16 bytes (streamed stores need 32 on AVX2: the loops fall back).
static void test_packers() {
  std::vector<std::pair<const char*, const Packers*>> tables = {{"baseline", &baseline_packers()}};
#if defined(QGEMM_HAVE_AVX2)
  if (cpu_features().avx2) tables.push_back({"avx2", &avx2_packers()});
  if (cpu_features().avx512_vnni) tables.push_back({"avx512", &avx512_packers()});
#endif
  const Packers portable{};
  for (int t = 0; t < 500; ++t) {
    const int nr = std::array<int, 4>{8, 16, 16, 32}[static_cast<size_t>(rand_int(0, 3))], kr = rand_int(0, 1) ? 4 : 2;
    const size_t k = static_cast<size_t>(rand_int(0, t % 4 == 0 ? 1200 : 300)), n = static_cast<size_t>(rand_int(1, 160));
    // 16 or 64 rows per call (as pack_b and the GEMM's tasks), or all of them
    // (int16 sums widened on the way).
    const size_t chunk = std::array<size_t, 3>{16, 64, std::max<size_t>(k, 1)}[static_cast<size_t>(rand_int(0, 2))];
    const size_t ld = n + static_cast<size_t>(rand_int(0, 1) * 9);
    const bool u8 = rand_int(0, 1);
    // Values: the extremes; small ones with one larger planted anywhere (max|B|
    // must find it, whichever row of its group it is in: half the cases); or any.
    const int values = std::array<int, 4>{0, 1, 1, 2}[static_cast<size_t>(rand_int(0, 3))];
    const uint8_t flip = u8 ? 0x80 : 0;  // raw byte = stored value ^ flip
    std::vector<uint8_t> b(k * ld);
    for (auto& x : b)
      x = values == 0 ? (u8 ? (rand_int(0, 1) ? 0 : 255) : 0x80)
          : values == 1 ? static_cast<uint8_t>(static_cast<uint8_t>(rand_int(-20, 20)) ^ flip)
                        : static_cast<uint8_t>(rand_int(0, 255));
    if (values == 1 && k > 0) {
      const int big = rand_int(21, 128);
      b[static_cast<size_t>(rand_int(0, static_cast<int>(k) - 1)) * ld + static_cast<size_t>(rand_int(0, static_cast<int>(n) - 1))] =
          static_cast<uint8_t>(static_cast<uint8_t>(rand_int(0, 1) ? big : -big) ^ flip);
    }
    const ByteMatrix bm{b.data(), k, n, static_cast<ptrdiff_t>(ld), 1, u8};
    const size_t k_padded = (k + kr - 1) / kr * kr, panels = (n + nr - 1) / nr;
    // Panels [p_begin, p_end) in one call per row block, or each alone.
    const bool at_once = rand_int(0, 2) != 0, stream = rand_int(0, 1);
    const size_t p_begin = static_cast<size_t>(rand_int(0, 1) ? 0 : rand_int(0, static_cast<int>(panels)));
    const size_t p_end = rand_int(0, 1) ? panels : static_cast<size_t>(rand_int(static_cast<int>(p_begin), static_cast<int>(panels)));
    const size_t align = std::array<size_t, 3>{0, 16, 32}[static_cast<size_t>(rand_int(0, 2))];
    auto pack_with = [&](const Packers& p, bool one_call, std::vector<int8_t>& out, std::vector<int32_t>& sums,
                         int& max_abs) {
      std::vector<int8_t> storage(panels * k_padded * nr + 128, 0x33);
      int8_t* base = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64 + align;
      sums.assign(panels * nr, 0);
      max_abs = 0;
      for (size_t k0 = 0; k0 < k || k0 == 0; k0 += chunk) {
        const size_t k1 = std::min(k, k0 + chunk);
        if (one_call)
          pack_b_panels_rows(bm, p_begin, p_end, k0, k1, nr, kr, p, stream, base, k_padded * nr, sums.data(),
                             &max_abs);
        else
          for (size_t q = p_begin; q < p_end; ++q)
            pack_b_panel_rows(bm, q * nr, k0, k1, nr, kr, p, base + q * k_padded * nr, sums.data() + q * nr,
                              &max_abs);
      }
      out.assign(base, base + panels * k_padded * nr);
    };
    std::vector<int8_t> want, got;
    std::vector<int32_t> want_sums, got_sums;
    int want_max = 0, got_max = 0;
    pack_with(portable, false, want, want_sums, want_max);
    for (const auto& table : tables) {
      pack_with(*table.second, at_once, got, got_sums, got_max);
      char tag[200];
      std::snprintf(tag, sizeof tag,
                    "packers %s b_block k=%zu n=%zu ld=%zu nr=%d kr=%d u8=%d chunk=%zu panels [%zu, %zu) at_once=%d "
                    "stream=%d align=%zu",
                    table.first, k, n, ld, nr, kr, u8, chunk, p_begin, p_end, at_once, stream, align);
      check(got == want && got_sums == want_sums && got_max == want_max, tag);
    }
  }
}

// pack_a with a kernel's own packing loops against the portable loops alone
// (the same record with an empty table): the packed block and the row sums,
// for every row count up to mr (the four-row vector loops overlap when
// m % 4 != 0), K offsets and lengths with odd tails, both dtypes.
static void test_a_packers(const GemmKernel& kern) {
  GemmKernel portable = kern;
  const Packers none{};
  portable.packers = &none;
  const size_t elem = kern.packed_a == PackedA::int16 ? 2 : 1;
  for (int t = 0; t < 120; ++t) {
    const int m = rand_int(1, kern.mr);
    const size_t k0 = static_cast<size_t>(rand_int(0, 5)), kc = static_cast<size_t>(rand_int(0, t % 3 ? 70 : 300));
    const bool u8 = rand_int(0, 1), extremes = rand_int(0, 3) == 0;
    const size_t lda = k0 + kc + static_cast<size_t>(rand_int(0, 3));
    std::vector<uint8_t> a(static_cast<size_t>(m) * lda);
    for (auto& x : a) x = extremes ? (rand_int(0, 1) ? 0x80 : (u8 ? 255 : 0x7F)) : static_cast<uint8_t>(rand_int(0, 255));
    std::vector<const uint8_t*> rows(static_cast<size_t>(m));
    for (int i = 0; i < m; ++i) rows[static_cast<size_t>(i)] = a.data() + static_cast<size_t>(i) * lda;
    const size_t bytes = (kc + kern.kr - 1) / kern.kr * kern.kr * static_cast<size_t>(kern.mr) * elem + 1;
    std::vector<uint8_t> want(bytes, 0x5A), got(bytes, 0x5A);
    std::vector<int32_t> want_sums(static_cast<size_t>(m), 7), got_sums(static_cast<size_t>(m), 7);
    pack_a(rows.data(), m, 1, u8, k0, kc, portable, want.data(), want_sums.data());
    pack_a(rows.data(), m, 1, u8, k0, kc, kern, got.data(), got_sums.data());
    char tag[160];
    std::snprintf(tag, sizeof tag, "%s pack_a m=%d k0=%zu kc=%zu u8=%d", kern.name, m, k0, kc, u8);
    check(got == want && got_sums == want_sums, tag);
  }
}

// The plain-B prefetch hint: every line it names lies in the task's columns
// of the K block (an empty share names no address at all), and the calls on
// the panels that share a source line name each row of the next line once
// (its last byte, or the task's last column), within the K loops of their
// row tiles (each tile takes per_tile rows, at per_group per K group: the
// GemmMicroFn contract). Any task width: a last task has N - n0 columns.
static void test_next_source_lines() {
  for (int t = 0; t < 300; ++t) {
    const size_t nr = rand_int(0, 2) == 0 ? 8 : (rand_int(0, 1) ? 16 : 32);
    const size_t kc = static_cast<size_t>(rand_int(1, 600)), ncols = static_cast<size_t>(rand_int(1, 40 * static_cast<int>(nr)));
    const size_t n0 = static_cast<size_t>(rand_int(0, 3)) * nr, offset = static_cast<size_t>(rand_int(0, 63));
    const size_t stride = n0 + ncols + static_cast<size_t>(rand_int(0, 70));
    const size_t row_tiles = static_cast<size_t>(rand_int(1, 9)), k_groups = static_cast<size_t>(rand_int(1, 150));
    std::vector<uint8_t> storage(offset + kc * stride);
    const uint8_t* data = storage.data() + offset;
    const ByteMatrix rows_k{data, kc, n0 + ncols, static_cast<ptrdiff_t>(stride), 1, false};
    const size_t panels = (ncols + nr - 1) / nr, per_line = std::max<size_t>(1, 64 / nr);
    bool inside = true, covered = true, in_time = true;
    for (size_t first = 0; first < panels; first += per_line) {
      std::vector<int> seen(kc, 0);
      const bool has_next = first * nr + 64 < ncols;
      const size_t col = n0 + std::min(first * nr + 128, ncols) - 1;
      for (size_t q = first; q < std::min(panels, first + per_line); ++q) {
        const NextSourceLines lines(rows_k, n0, ncols, q, row_tiles, nr, k_groups);
        const PrefetchRows p = lines.for_panel();
        inside = inside && (p.rows > 0 || p.first == nullptr);
        in_time = in_time && static_cast<size_t>(p.per_tile) * row_tiles >= p.rows &&
                  static_cast<size_t>(p.per_group) * k_groups >= p.per_tile;
        for (uint32_t r = 0; r < p.rows; ++r) {
          const ptrdiff_t at = p.first + static_cast<ptrdiff_t>(r) * p.stride - data;
          const size_t row = static_cast<size_t>(at) / stride, c = static_cast<size_t>(at) % stride;
          inside = inside && at >= 0 && row < kc && c >= n0 && c < n0 + ncols;
          if (row < kc && c == col) ++seen[row];
        }
      }
      for (size_t r = 0; r < kc; ++r) covered = covered && seen[r] == (has_next ? 1 : 0);
    }
    char tag[200];
    std::snprintf(tag, sizeof tag, "NextSourceLines nr=%zu kc=%zu n0=%zu ncols=%zu row_tiles=%zu k_groups=%zu: %s%s%s",
                  nr, kc, n0, ncols, row_tiles, k_groups, inside ? "" : "outside B ", covered ? "" : "rows missed ",
                  in_time ? "" : "late");
    check(inside && covered && in_time, tag);
  }
}

// The driver's choice of a range-proven kernel: taken exactly when the
// ranges prove it (2 * max(A) * max|B| <= 32767), never otherwise.
static void test_range_proof(const Kernels& kern) {
  const GemmKernel& k = kern.gemm;
  const size_t K = 64, N = 20;
  for (bool a_u8 : {false, true}) {
    // A uint8 127 and int8 -1 are 127 stored (int8 flipped); 128 and 0 are 128.
    const uint8_t a127 = a_u8 ? 127 : 0xFF, a128 = a_u8 ? 128 : 0x00;
    std::vector<uint8_t> a(3 * K, a127), b_full(K * N, 0x80), b64(K * N, 0xC0);  // -128, -64
    b_full[5] = 127;
    b64[7] = 64;
    const PackedB pf = pack_b({b_full.data(), K, N, ptrdiff_t(N), 1, false}, k);
    const PackedB p64 = pack_b({b64.data(), K, N, ptrdiff_t(N), 1, false}, k);
    check(pf.max_abs == 128 && p64.max_abs == 64, "pack_b records max|B|");
    AOperand A{a.data(), a_u8, 1, 3, K, 0, ptrdiff_t(K), 1};
    const GemmKernel* proven = k.proven_range ? k.proven_range : &k;
    check(&choose_kernel(k, A, pf) == proven, std::string(k.name) + " range proof: A <= 127, |B| <= 128");
    a[2 * K + 9] = a128;  // one element of the last row past 127
    check(&choose_kernel(k, A, pf) == &k, std::string(k.name) + " range proof: one A of 128 with B of -128");
    check(&choose_kernel(k, A, p64) == proven, std::string(k.name) + " range proof: any A, |B| <= 64");
    // A bound the caller knows (codes of 7 bits) is taken as proof, without
    // reading A: the row with a 128 is not looked at.
    AOperand known = A;
    known.max_stored = 127;
    check(&choose_kernel(k, known, pf) == proven, std::string(k.name) + " range proof: A known within 7 bits");
    known.max_stored = 128;
    check(&choose_kernel(k, known, pf) == &k, std::string(k.name) + " range proof: A known within 8 bits");
    // B packed for one call: its second layout would cost more than 3 rows gain.
    PackedB once = pack_b({b64.data(), K, N, ptrdiff_t(N), 1, false}, k);
    once.single_use = true;
    check(&choose_kernel(k, A, once) == &k, std::string(k.name) + " range proof: single-use B, few rows");
    // A transposed (column stride K): the scalar path of the check.
    std::vector<uint8_t> at(K * 3, a127);
    at[9 * 3 + 2] = a128;
    AOperand AT{at.data(), a_u8, 1, 3, K, 0, 1, 3};
    check(&choose_kernel(k, AT, pf) == &k, std::string(k.name) + " range proof: strided A");
    // A plain B (gemm_plain_b, packed in the call in the chosen layout): A
    // within 7 bits alone is the proof, for any B, on any number of rows.
    std::fill(a.begin(), a.end(), a127);
    check(&plain_b_kernel(k, A) == proven, std::string(k.name) + " plain B: A <= 127");
    a[2 * K + 9] = a128;
    check(&plain_b_kernel(k, A) == &k, std::string(k.name) + " plain B: one A of 128");
    check(&plain_b_kernel(k, known) == &k, std::string(k.name) + " plain B: A known within 8 bits");
    known.max_stored = 127;
    check(&plain_b_kernel(k, known) == proven, std::string(k.name) + " plain B: A known within 7 bits");
    check(&plain_b_kernel(k, AT) == &k, std::string(k.name) + " plain B: strided A");
  }
}

// A B over panels owned elsewhere (a memory-mapped file in the Python
// module): the same results as the B it was copied from, its second layout
// made from it, and its owner released with it, never freed by it.
static void test_borrowed_panels(const Kernels& kern) {
  const GemmKernel& k = kern.gemm;
  const size_t M = 7, K = 77, N = 45;
  std::vector<uint8_t> a(M * K), b(K * N);
  for (auto& x : a) x = static_cast<uint8_t>(rand_int(0, 127));  // 7 bits: the range-proven kernel too
  for (auto& x : b) x = static_cast<uint8_t>(rand_int(0, 255));
  const PackedB pb = pack_b({b.data(), K, N, ptrdiff_t(N), 1, true}, k);
  const size_t bytes = (pb.bytes() + 63) / 64 * 64;
  std::shared_ptr<int8_t> owner(static_cast<int8_t*>(std::aligned_alloc(64, bytes)), std::free);
  std::memcpy(owner.get(), pb.data.get(), pb.bytes());
  std::vector<int32_t> c_own(M * N), c_borrowed(M * N), zb(1, 3);
  {
    const PackedB borrowed = packed_b_from_panels(K, N, k.nr, k.kr, true, owner.get(), pb.colsum, pb.max_abs, owner);
    check(owner.use_count() == 2, std::string(k.name) + " borrowed panels keep their owner");
    AOperand A{a.data(), true, 1, M, K, 0, ptrdiff_t(K), 1};
    GemmOutput out;
    out.ldc = N;
    out.data = c_own.data();
    gemm(k, A, 5, pb, zb.data(), false, out);
    out.data = c_borrowed.data();
    gemm(k, A, 5, borrowed, zb.data(), false, out);
    check(c_own == c_borrowed, std::string(choose_kernel(k, A, borrowed).name) + " gemm on borrowed panels");
    std::vector<uint8_t> unpacked(K * N);
    unpack_b(borrowed, unpacked.data());
    check(unpacked == b, std::string(k.name) + " unpack_b of borrowed panels");
  }
  check(owner.use_count() == 1, std::string(k.name) + " borrowed panels release their owner");
}

// The standalone output stage against the reference, on accumulators that
// include the int32 extremes.
static void test_requantize(const Kernels& kern) {
  for (OutputKind kind : kAllKinds)
    for (size_t n : {1, 7, 16, 17, 40})
    for (bool per_row : {false, true}) {
      if (per_row && (kind == OutputKind::int32 || kind == OutputKind::requantize_fixed_point)) continue;  // no per-row scale there
      const size_t rows = 13, lda = n + 2;
      std::vector<int32_t> acc(rows * lda), bias(n), mult(n), shift(n);
      std::vector<float> scale(n), offset(n);
      for (auto& v : acc) {
        const int pick = rand_int(0, 9);
        v = pick == 0 ? INT32_MIN : pick == 1 ? INT32_MAX : rand_int(-2000000000, 2000000000) >> rand_int(0, 24);
      }
      for (size_t j = 0; j < n; ++j) {
        bias[j] = rand_int(-1000, 1000);
        scale[j] = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-24, -4));
        offset[j] = rand_int(-999, 999) * 0.25f;
        mult[j] = j == 0 ? INT32_MIN : rand_int(1 << 30, 0x7FFFFFFF);
        shift[j] = rand_int(-31, 4);
      }
      GemmOutput out;
      out.kind = kind;
      out.out_u8 = n % 2;
      out.zero_point = out.out_u8 ? 200 : -5;
      out.qmin = out.out_u8 ? 0 : -128;
      out.qmax = out.out_u8 ? 255 : 100;
      out.bias = kind == OutputKind::float32 ? nullptr : bias.data();  // int bias would wrap INT32_MAX
      out.scale = scale.data();
      out.offset = kind == OutputKind::requantize_fixed_point ? nullptr : offset.data();
      out.multiplier = mult.data();
      out.shift = shift.data();
      const size_t esize = (kind == OutputKind::requantize_float || kind == OutputKind::requantize_fixed_point) ? 1 : 4;
      std::vector<float> row_scale(rows);
      for (auto& v : row_scale) v = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-3, 3));
      if (per_row) {
        out.row_scale = row_scale.data();
        out.y_scale = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-2, 2));
      }
      std::vector<uint8_t> c(rows * n * esize + 1, 0x5A), want(4);
      out.data = c.data();
      out.ldc = n;
      requantize(kern.gemm, acc.data(), rows, n, lda, out);
      bool ok = c.back() == 0x5A;
      for (size_t r = 0; r < rows && ok; ++r)
        for (size_t j = 0; j < n && ok; ++j) {
          reference_output(acc[r * lda + j], r, j, out, want.data());
          ok = std::memcmp(&c[(r * n + j) * esize], want.data(), esize) == 0;
          if (!ok) std::printf("  requantize mismatch r=%zu j=%zu acc=%d\n", r, j, acc[r * lda + j]);
        }
      check(ok, std::string(kern.gemm.name) + " requantize kind=" + std::to_string(int(kind)) +
                    " n=" + std::to_string(n) + (per_row ? " per-row scale" : ""));
    }
}

// Arguments: the ISAs to test (default: every one this CPU has). CI names
// one where another run already covered the rest (qemu is slow).
int main(int argc, char** argv) {
  const Kernels& ref = scalar_kernels();
  std::printf("CPU ISAs available:");
  for (Isa isa : available_isas()) std::printf(" %s", isa_name(isa));
  std::printf("\n");
  std::vector<Isa> isas;
  for (Isa isa : available_isas()) {
    bool named = argc == 1;
    for (int i = 1; i < argc; ++i) named = named || std::strcmp(argv[i], isa_name(isa)) == 0;
    if (named) isas.push_back(isa);
  }
  if (isas.size() < static_cast<size_t>(argc > 1 ? argc - 1 : 1)) {
    std::printf("FAIL: an ISA named is not available here\n");
    return 1;
  }
  test_packers();
  test_next_source_lines();
  for (Isa isa : isas) {
    const Kernels k = kernels_for(isa);
    test_a_packers(k.gemm);
    if (k.gemm.proven_range) test_a_packers(*k.gemm.proven_range);
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Isa isa : isas) {
      const Kernels k = kernels_for(isa);
      const int before = g_failed;
      test_quantize(k, ref);
      test_gemm(k);
      test_plain_b(k);
      test_range_proof(k);
      test_borrowed_panels(k);
      test_requantize(k);
      std::printf("%s (%s, %d threads): %s\n", isa_name(isa), k.gemm.name, threads,
                  g_failed == before ? "ok" : "FAILED");
    }
  }
  return report();
}
