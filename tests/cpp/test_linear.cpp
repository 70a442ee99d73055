// The output stage built from quantization parameters (output_params.h), and
// the dynamically quantized Linear (linear.h) on every kernel this CPU has,
// against references computed here from their documented formulas.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "qgemm/cpu.h"
#include "qgemm/linear.h"
#include "qgemm/output_params.h"
#include "qgemm/pack.h"
#include "qgemm/thread_pool.h"

#include "check.h"

using namespace qgemm;

static std::mt19937 rng(2024);
static float rand_float(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
static int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// True if f throws std::invalid_argument whose message contains `part`.
template <class F>
static bool refuses(F f, const std::string& part) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(part) != std::string::npos;
  }
  return false;
}

static void test_scale_numerics() {
  const size_t n = 5;
  const float a = 0.0123f, b[n] = {0.5f, 0.031f, 1.7f, 0.0009f, 3.0f}, y = 0.047f;
  const float real_bias[n] = {0.1f, -2.5f, 0.0f, 7.25f, -0.003f};
  const int32_t int_bias[n] = {1, -2, 300, 0, -70000};
  const ProductScales per_tensor{&a, 1, false, b, n};

  const OutputParams d = dequantize_output(n, per_tensor, {nullptr, real_bias}, {0.0f, 6.0f});
  bool ok = d.stage().kind == OutputKind::float32 && d.stage().fmin == 0.0f && d.stage().fmax == 6.0f;
  for (size_t j = 0; j < n; ++j) ok = ok && d.stage().scale[j] == a * b[j] && d.stage().offset[j] == real_bias[j];
  check(ok, "dequantize: scale float32(a * b[j]), real bias added after scaling, clamp");

  const OutputParams f = requantize_float_output(n, per_tensor, {y, 3, true}, {nullptr, real_bias}, {});
  ok = f.stage().kind == OutputKind::requantize_float && f.stage().zero_point == 3 && f.stage().out_u8;
  for (size_t j = 0; j < n; ++j) {
    const float ab = a * b[j];
    ok = ok && f.stage().scale[j] == ab / y && f.stage().offset[j] == real_bias[j] / ab;
  }
  check(ok && f.stage().qmin == 0 && f.stage().qmax == 255,
        "requantize_float: multiplier float32(a * b[j]) / y, real bias divided by a * b[j]");

  const OutputParams q = requantize_fixed_point_output(n, per_tensor, {y, -5, false}, int_bias, {});
  ok = q.stage().kind == OutputKind::requantize_fixed_point;
  for (size_t j = 0; j < n; ++j) {
    const QuantizedMultiplier m = quantize_multiplier(static_cast<double>(a * b[j]) / static_cast<double>(y));
    ok = ok && q.stage().multiplier[j] == m.multiplier && q.stage().shift[j] == m.shift &&
         q.stage().bias[j] == int_bias[j];
  }
  check(ok, "requantize_fixed_point: Q31 form of double(float32(a * b[j])) / double(y), int32 bias");

  const float rows[3] = {0.5f, 0.25f, 2.0f};
  const OutputParams r = requantize_float_output(n, {rows, 3, true, b, n}, {y, 0, false}, {}, {});
  ok = r.rows() == 3 && r.stage().y_scale == y;
  for (size_t i = 0; i < 3; ++i) ok = ok && r.stage().row_scale[i] == rows[i];
  for (size_t j = 0; j < n; ++j) ok = ok && r.stage().scale[j] == b[j];
  check(ok, "per-row a_scale: the rows' scales and b_scale, the product left to the epilogue");

  // The stage owns copies: the caller's arrays may change or go, and a move keeps them.
  std::vector<float> bs(b, b + n);
  OutputParams owned = dequantize_output(n, {&a, 1, false, bs.data(), n}, {}, {});
  bs.assign(n, 99.0f);
  const OutputParams moved = std::move(owned);
  check(moved.stage().scale[0] == a * b[0] && moved.columns() == n, "the stage owns its arrays");

  const OutputParams empty = requantize_fixed_point_output(0, {&a, 1, false, b, 1}, {y, 0, false}, nullptr, {});
  bool complete = true;
  try {
    check_output_stage(empty.stage());
  } catch (const std::invalid_argument&) {
    complete = false;
  }
  check(complete && empty.columns() == 0, "no columns: still a complete stage");
}

static void test_refusals() {
  const float tiny = 1e-30f, huge = 1e30f, one = 1.0f;  // products: 1e-60, 1e60
  const float b[2] = {tiny, 1.0f};
  check(refuses([&] { dequantize_output(2, {&tiny, 1, false, b, 2}, {}, {}); }, "a_scale * b_scale ="),
        "a product below float32's normal range is refused");
  check(refuses([&] { requantize_float_output(1, {&huge, 1, false, &huge, 1}, {1.0f, 0, false}, {}, {}); },
                "a_scale * b_scale ="),
        "a product past float32's range is refused");
  const float e10 = 1e10f, e_5 = 1e-5f, e_20 = 1e-20f, e_15 = 1e-15f;
  check(refuses([&] { requantize_float_output(1, {&e10, 1, false, &e10, 1}, {e_20, 0, false}, {}, {}); },
                "a_scale * b_scale / y_scale"),
        "a multiplier past float32's range is refused");
  check(refuses([&] { requantize_fixed_point_output(1, {&e_5, 1, false, &e_5, 1}, {huge, 0, false}, nullptr, {}); },
                "a_scale * b_scale / y_scale"),
        "a fixed-point multiplier below float32's normal range is refused");
  const float big_bias = 3e38f;
  check(refuses([&] {
          requantize_float_output(1, {&e_20, 1, false, &e_15, 1}, {1.0f, 0, false}, {nullptr, &big_bias}, {});
        }, "bias / (a_scale * b_scale)"),
        "a real bias that overflows once divided is refused");
  const float nan_bias = NAN;
  check(refuses([&] { dequantize_output(1, {&one, 1, false, &one, 1}, {nullptr, &nan_bias}, {}); }, "bias"),
        "a NaN bias is refused");
  const float rows[2] = {1e-20f, 1.0f};
  check(refuses([&] { dequantize_output(1, {rows, 2, true, &tiny, 1}, {}, {}); }, "every row and column"),
        "per-row products are checked at their extremes");
  check(refuses([&] { requantize_fixed_point_output(1, {rows, 2, true, &one, 1}, {1.0f, 0, false}, nullptr, {}); },
                "per-tensor a_scale"),
        "fixed point refuses per-row a_scale");
  const double m[2] = {0.5, 1e-50};
  check(refuses([&] { requantize_by_multiplier(2, m, 2, false, false, {}, nullptr); }, "multiplier ="),
        "a multiplier that is 0 in float32 is refused");
  check(refuses([&] { requantize_by_multiplier(2, m, 1, true, true, {}, nullptr); }, "per-row multiplier"),
        "a per-row multiplier needs the float scheme");
}

static void test_by_multiplier() {
  const double m[3] = {0.3, 0.0007, 1.5};
  const OutputParams f = requantize_by_multiplier(3, m, 3, false, false, {1.0f, 2, false}, nullptr);
  bool ok = f.stage().kind == OutputKind::requantize_float && f.stage().zero_point == 2;
  for (size_t j = 0; j < 3; ++j) ok = ok && f.stage().scale[j] == static_cast<float>(m[j]);
  check(ok, "a plain multiplier rounded once to float32");
  const OutputParams q = requantize_by_multiplier(3, m, 1, false, true, {}, nullptr);
  const QuantizedMultiplier want = quantize_multiplier(m[0]);
  check(q.stage().multiplier[2] == want.multiplier && q.stage().shift[2] == want.shift,
        "a per-tensor plain multiplier in Q31 form for every column");
  const OutputParams r = requantize_by_multiplier(2, m, 3, true, false, {}, nullptr);
  check(r.rows() == 3 && r.stage().row_scale[1] == static_cast<float>(m[1]) && r.stage().scale[0] == 1.0f,
        "a per-row plain multiplier: each row's float32 multiplier");
}

static void test_quantized_clamp() {
  int32_t lo = 0, hi = 0;
  quantized_clamp({0.5f, 2.5f}, {1.0f, 0, false}, &lo, &hi);
  check(lo == 0 && hi == 2, "clamp bounds round half to even (0.5 -> 0, 2.5 -> 2)");
  quantized_clamp({1.5f, 3.5f}, {1.0f, 10, false}, &lo, &hi);
  check(lo == 12 && hi == 14, "clamp bounds plus the zero point (1.5 -> 2, 3.5 -> 4)");
  quantized_clamp({0.0f, 6.0f}, {0.047f, 0, true}, &lo, &hi);
  check(lo == 0 && hi == 128, "relu6 on uint8 (6 / 0.047 = 127.66 -> 128)");
  quantized_clamp({0.0f, 6.0f}, {0.047f, 200, true}, &lo, &hi);
  check(lo == 200 && hi == 255, "relu6 on uint8 past the codes");
  quantized_clamp({-INFINITY, INFINITY}, {0.1f, 0, false}, &lo, &hi);
  check(lo == -128 && hi == 127, "no activation: the dtype's codes");
  quantized_clamp({-1e30f, 1e30f}, {0.1f, 0, true}, &lo, &hi);
  check(lo == 0 && hi == 255, "bounds past the codes are the codes' ends");
}

// The dynamic Linear against its formula: the activations quantized by
// quantize_dynamic (scalar kernels), the exact int64 product, then
// y = float(acc) * float32(sx * w_scale[j]) + bias[j], clamped.
static void test_linear_case(const Kernels& kern, size_t rows, size_t k, size_t n, bool per_row, int bits,
                             bool zb_per_column, const std::string& tag) {
  std::vector<float> x(rows * k);
  for (float& v : x) v = rand_float(-4.0f, 4.0f) * (rand_int(0, 9) == 0 ? 10.0f : 1.0f);
  if (rows * k > 3) x[rand_int(0, static_cast<int>(rows * k) - 1)] = NAN;  // ignored by the range
  std::vector<int8_t> w(k * n);
  for (int8_t& v : w) v = static_cast<int8_t>(rand_int(-128, 127));
  std::vector<int32_t> zb(zb_per_column ? n : 1);
  for (int32_t& z : zb) z = rand_int(-3, 3);
  std::vector<float> ws(n), bias(n);
  for (size_t j = 0; j < n; ++j) {
    ws[j] = rand_float(0.001f, 0.05f);
    bias[j] = rand_float(-1.0f, 1.0f);
  }
  const PackedB packed = pack_b({reinterpret_cast<const uint8_t*>(w.data()), k, n, static_cast<ptrdiff_t>(n), 1,
                                 false},
                                kern.gemm);
  DynamicLinearWeights weights;
  weights.packed = &packed;
  weights.zero_point = zb.data();
  weights.zero_point_per_column = zb_per_column;
  weights.scale = ws.data();
  weights.bias = bias.data();
  weights.clamp = {-2.0f, INFINITY};
  DynamicScheme scheme;
  scheme.bits = bits;
  scheme.per_row = per_row;

  std::vector<float> y(rows * n, -123.0f);
  const DynamicStatus status = linear_dynamic(kern, weights, x.data(), rows, scheme, y.data(), n);

  std::vector<uint8_t> xq(rows * k);
  std::vector<float> sx(per_row ? rows : 1);
  std::vector<int32_t> zx(per_row ? rows : 1);
  quantize_dynamic(x.data(), rows, k, scheme, xq.data(), sx.data(), zx.data(), scalar_kernels().quant);
  bool ok = status == DynamicStatus::ok;
  for (size_t i = 0; i < rows && ok; ++i)
    for (size_t j = 0; j < n; ++j) {
      const int32_t za = zx[per_row ? i : 0], z = zb[zb_per_column ? j : 0];
      int64_t acc = 0;
      for (size_t p = 0; p < k; ++p) acc += int64_t(xq[i * k + p] - za) * (w[p * n + j] - z);
      const float scale = sx[per_row ? i : 0] * ws[j];
      float want = static_cast<float>(static_cast<int32_t>(acc)) * scale + bias[j];
      want = want > -2.0f ? want : -2.0f;
      if (y[i * n + j] != want) {
        ok = false;
        break;
      }
    }
  check(ok, "linear_dynamic " + tag);
}

static void test_linear(const Kernels& kern) {
  for (bool per_row : {true, false})
    for (int bits : {7, 8})
      for (const auto& s : std::vector<std::array<size_t, 3>>{{1, 1, 1}, {5, 33, 17}, {37, 300, 70}, {130, 64, 40}}) {
        const bool zb_per_column = rand_int(0, 1);
        const std::string tag = std::string(kern.isa) + " " + std::to_string(s[0]) + "x" + std::to_string(s[1]) +
                                "x" + std::to_string(s[2]) + (per_row ? " per row" : " per tensor") + " bits " +
                                std::to_string(bits) + (zb_per_column ? " zb per column" : "");
        test_linear_case(kern, s[0], s[1], s[2], per_row, bits, zb_per_column, tag);
      }

  // Data with no range: y is left as it was, and the status says why.
  const size_t k = 4, n = 3;
  std::vector<int8_t> w(k * n, 1);
  const int32_t zb = 0;
  const float ws[n] = {1, 1, 1};
  const PackedB packed = pack_b({reinterpret_cast<const uint8_t*>(w.data()), k, n, n, 1, false}, kern.gemm);
  DynamicLinearWeights weights;
  weights.packed = &packed;
  weights.zero_point = &zb;
  weights.scale = ws;
  DynamicScheme scheme;
  std::vector<float> x = {1, 2, 3, 4, NAN, NAN, NAN, NAN}, y(2 * n, 7.0f);
  bool untouched = linear_dynamic(kern, weights, x.data(), 2, scheme, y.data(), n) == DynamicStatus::no_number;
  x[4] = INFINITY;
  untouched = untouched && linear_dynamic(kern, weights, x.data(), 2, scheme, y.data(), n) == DynamicStatus::not_finite;
  for (float v : y) untouched = untouched && v == 7.0f;
  check(untouched, std::string(kern.isa) + ": a row of NaN or an infinity leaves y unwritten");
}

int main() {
  test_scale_numerics();
  test_refusals();
  test_by_multiplier();
  test_quantized_clamp();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Isa isa : available_isas()) {
      const Kernels k = kernels_for(isa);
      const int before = g_failed;
      test_linear(k);
      std::printf("linear_dynamic %s (%d threads): %s\n", isa_name(isa), threads, g_failed == before ? "ok" : "FAILED");
    }
  }
  return report();
}
