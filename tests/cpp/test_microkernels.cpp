// Every registered GEMM microkernel (each ISA's, and its range-proven
// variant), called directly with its epilogue, against the scalar reference
// output stage (output_stage_scalar.h) on the same accumulators: every live
// row count m = 1..mr and calls of several row tiles (m > mr, the last one
// full or partial), every column count n = 1..nr, K at the edges of a
// group, one K block or a first block plus a last one that accumulates, and
// every output kind, per-row parameters included, with and without the hint
// to prefetch C; on packed A and, for the kernels that can, on A read in
// place (int8 flipped as it is read). Fails if a kernel never ran.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qgemm/cpu.h"
#include "qgemm/output_stage_scalar.h"
#include "qgemm/pack.h"

using namespace qgemm;

namespace {

int g_passed = 0, g_failed = 0;
std::mt19937 rng(2024);

int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

constexpr OutputKind kKinds[] = {OutputKind::int32, OutputKind::float32, OutputKind::requantize_float,
                                 OutputKind::requantize_fixed_point};

// A stored value of A (pack.h): int16 keeps the value, int8 flips uint8,
// uint8 flips int8.
int32_t stored_a(const GemmKernel& k, uint8_t raw, bool u8) {
  switch (k.packed_a) {
    case PackedA::int16: return u8 ? raw : int8_t(raw);
    case PackedA::uint8: return u8 ? raw : uint8_t(raw ^ 0x80);
    case PackedA::int8: break;
  }
  return u8 ? int8_t(raw ^ 0x80) : int8_t(raw);
}

struct Case {
  int m, n;
  size_t k;
  OutputKind kind;
  bool split_k;  // first K block (no epilogue) then the last one, accumulating (int32 only)
  bool per_row;  // row_za (and row_scale for the float kinds)
};

// One call (or two, split_k) of k.micro on an m x n corner of its tile (or
// of its row tiles, m > mr).
bool run_case(const GemmKernel& k, const Case& t, bool proven_range) {
  const int nr = k.nr, kr = k.kr;
  const int mr = (t.m + k.mr - 1) / k.mr * k.mr;  // rows of the tiles the call covers
  const bool a_u8 = rand_int(0, 1), b_u8 = rand_int(0, 1);
  // The range-proven kernel's precondition: 2 * max(stored A) * max|stored B| <= 32767.
  std::vector<uint8_t> a(static_cast<size_t>(mr) * t.k), b(t.k * nr);
  for (auto& v : a) v = static_cast<uint8_t>(proven_range ? (rand_int(0, 127) ^ (a_u8 ? 0 : 0x80)) : rand_int(0, 255));
  for (auto& v : b) v = static_cast<uint8_t>(rand_int(0, 255));
  const PackedB pb = pack_b({b.data(), t.k, static_cast<size_t>(nr), nr, 1, b_u8}, k);
  // A packed as the driver does, tile after tile, for K blocks [0, k1) and [k1, k).
  const size_t k1 = t.split_k ? (t.k / kr / 2) * kr : t.k;
  std::vector<const uint8_t*> rows(mr);
  for (int i = 0; i < mr; ++i) rows[i] = a.data() + i * t.k;
  std::vector<int32_t> rowsum(mr, 0);
  auto pack = [&](size_t k0, size_t kc) {
    const size_t tile_bytes = (kc + kr - 1) / kr * kr * k.mr * packed_a_bytes(k.packed_a);
    std::vector<int64_t> buf((tile_bytes * (mr / k.mr)) / 8 + 1);
    for (int i0 = 0; i0 < t.m; i0 += k.mr)
      pack_a(rows.data() + i0, std::min(k.mr, t.m - i0), 1, a_u8, k0, kc, k,
             reinterpret_cast<uint8_t*>(buf.data()) + i0 / k.mr * tile_bytes, rowsum.data() + i0);
    return buf;
  };
  // Epilogue parameters: any values (the reference reads the same ones).
  std::vector<int32_t> col_term(nr), col_zb(nr), col_sum(nr), mult(nr), shift(nr), row_term(mr), row_za(mr);
  std::vector<float> scale(nr), offset(nr), row_scale(mr);
  for (int j = 0; j < nr; ++j) {
    col_term[j] = rand_int(-100000, 100000);
    col_zb[j] = rand_int(-128, 127);
    col_sum[j] = rand_int(-50000, 50000);
    mult[j] = rand_int(1 << 30, 0x7FFFFFFF);
    shift[j] = rand_int(-20, 2);
    scale[j] = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-16, -6));
    offset[j] = rand_int(-999, 999) * 0.25f;
  }
  for (int i = 0; i < mr; ++i) {
    row_term[i] = rand_int(-100000, 100000);
    row_za[i] = rand_int(-128, 255);
    row_scale[i] = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-3, 3));
  }
  EpilogueParams ep{};
  ep.prefetch = {b.data(), nr, static_cast<uint32_t>(t.k), 1, 3};  // a hint only: no effect on C
  ep.col_term = col_term.data();
  ep.col_zb = rand_int(0, 1) ? col_zb.data() : nullptr;
  ep.row_term = row_term.data();
  const bool float_kind = t.kind == OutputKind::float32 || t.kind == OutputKind::requantize_float;
  if (t.per_row) {
    ep.row_za = row_za.data();
    ep.col_sum = col_sum.data();
  }
  OutputStage& o = ep.out;
  o.kind = t.kind;
  o.scale = scale.data();
  o.offset = rand_int(0, 1) ? offset.data() : nullptr;
  o.multiplier = mult.data();
  o.shift = shift.data();
  o.out_u8 = rand_int(0, 1);
  o.zero_point = o.out_u8 ? rand_int(0, 255) : rand_int(-128, 127);
  o.qmin = o.out_u8 ? 0 : -128;
  o.qmax = o.out_u8 ? 255 : 127;
  if (rand_int(0, 1)) o.qmin = o.zero_point;
  if (t.kind == OutputKind::float32 && rand_int(0, 1)) o.fmin = 0.0f;
  if (t.per_row && float_kind) {
    o.row_scale = row_scale.data();
    o.y_scale = std::ldexp(1.0f + rand_int(0, 999) / 1000.0f, rand_int(-8, -2));
  }
  const size_t esize = output_element_bytes(t.kind), ldc = nr + 3;
  const int hint = rand_int(0, 1) ? kGemmPrefetchOutput : 0;  // a hint only: no effect on C
  std::vector<uint8_t> c((mr + 1) * ldc * esize, 0x5A), want = c;
  // The kernel.
  const std::vector<int64_t> a0 = pack(0, k1);
  if (t.split_k) {
    k.micro(k1 / kr, a0.data(), pb.panel(0), c.data(), ldc, t.m, t.n, hint, &ep);
    const std::vector<int64_t> a1 = pack(k1, t.k - k1);
    k.micro((t.k - k1 + kr - 1) / kr, a1.data(), pb.panel(0) + k1 * nr, c.data(), ldc, t.m, t.n,
            kGemmAccumulate | kGemmFinal | hint, &ep);
  } else {
    k.micro((t.k + kr - 1) / kr, a0.data(), pb.panel(0), c.data(), ldc, t.m, t.n, kGemmFinal | hint, &ep);
  }
  // The reference: exact sums of stored values (wrapping int32), then the scalar output stage.
  for (int i = 0; i < t.m; ++i)
    for (int j = 0; j < t.n; ++j) {
      uint32_t acc = 0;
      for (size_t kk = 0; kk < t.k; ++kk)
        acc += static_cast<uint32_t>(stored_a(k, a[i * t.k + kk], a_u8) *
                                     int32_t(int8_t(b[kk * nr + j] ^ (b_u8 ? 0x80 : 0))));
      store_output(static_cast<int32_t>(acc), i, j, want.data(), ldc, kGemmFinal, &ep);
    }
  if (c != want) return false;  // outside the m x n corner, both still hold 0x5A
  // The same tile reading A in place (rows padded: lda > k), where the kernel can.
  if (k.micro_in_place && t.k % kr == 0) {
    const ptrdiff_t lda = static_cast<ptrdiff_t>(t.k) + 5;
    std::vector<uint8_t> held(static_cast<size_t>(t.m) * lda);
    for (int i = 0; i < t.m; ++i) std::memcpy(&held[i * lda], &a[i * t.k], t.k);
    std::vector<uint8_t> c2((mr + 1) * ldc * esize, 0x5A);
    if (t.split_k) {
      k.micro_in_place(k1 / kr, held.data(), lda, !a_u8, pb.panel(0), c2.data(), ldc, t.m, t.n, hint, &ep);
      k.micro_in_place((t.k - k1) / kr, held.data() + k1, lda, !a_u8, pb.panel(0) + k1 * nr, c2.data(), ldc, t.m, t.n,
                       kGemmAccumulate | kGemmFinal | hint, &ep);
    } else {
      k.micro_in_place(t.k / kr, held.data(), lda, !a_u8, pb.panel(0), c2.data(), ldc, t.m, t.n, kGemmFinal | hint,
                       &ep);
    }
    if (c2 != want) return false;
  }
  return true;
}

void test_kernel(const GemmKernel& k, bool proven_range) {
  int calls = 0, failed = 0;
  std::vector<int> row_counts;
  for (int m = 1; m <= k.mr; ++m) row_counts.push_back(m);
  for (int m : {k.mr + 1, 2 * k.mr, 3 * k.mr - 1}) row_counts.push_back(m);
  for (int m : row_counts)
    for (int n = 1; n <= k.nr; ++n)
      for (size_t kk : {size_t(1), size_t(k.kr - 1), size_t(k.kr), size_t(k.kr + 1), size_t(2 * k.kr + 1),
                        size_t(5 * k.kr + 3), size_t(64)}) {
        if (kk == 0) continue;
        for (OutputKind kind : kKinds) {
          const bool per_row = rand_int(0, 1);
          const bool ok = run_case(k, {m, n, kk, kind, false, per_row}, proven_range);
          ++calls;
          if (!ok) {
            if (++failed <= 5)
              std::printf("  %s m=%d n=%d k=%zu kind=%d per_row=%d: mismatch\n", k.name, m, n, kk, int(kind), per_row);
          }
        }
        if (kk >= size_t(2 * k.kr)) {  // first and last K block
          ++calls;
          if (!run_case(k, {m, n, kk, OutputKind::int32, true, rand_int(0, 1) == 1}, proven_range) && ++failed <= 5)
            std::printf("  %s m=%d n=%d k=%zu: mismatch over two K blocks\n", k.name, m, n, kk);
        }
      }
  const bool ok = calls > 0 && failed == 0;
  (ok ? g_passed : g_failed)++;
  std::printf("%s: %d calls, %s\n", k.name, calls, ok ? "ok" : "FAILED");
}

}  // namespace

int main() {
  int kernels = 0;
  for (Isa isa : available_isas()) {
    const Kernels k = kernels_for(isa);
    test_kernel(k.gemm, false);
    ++kernels;
    if (k.gemm.proven_range) {
      test_kernel(*k.gemm.proven_range, true);
      ++kernels;
    }
  }
  if (kernels == 0) ++g_failed;  // no kernel ran: nothing was tested
  std::printf("%d kernels passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
