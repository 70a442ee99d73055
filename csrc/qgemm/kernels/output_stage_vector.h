// The output stage (output_stage.h) on vector registers, written once over a
// per-ISA primitive set V, gemmlowp-style; bit-exact with the scalar
// reference (output_stage_scalar.h). A primitive set (avx2/vector_avx2.h,
// avx512_vnni/vector_avx512_vnni.h, neon/vector_neon.h) provides, on V::kLanes lanes:
//   types     Int (int32 lanes), Float (float32 lanes)
//   memory    load / store of whole vectors (int32 and float32); Live = live(n), the first n
//             lanes of a vector (n may be <= 0 or >= kLanes), computed once
//             per block; load_live / store_live of those lanes (others read
//             as 0, never touched); store_bytes<NV>(uint8_t*, const Int
//             (&)[NV], const Live (&)[NV], u8): narrow in-range values to
//             int8/uint8 and store the live ones
//   int32     dup, add, sub, mul (low 32 bits, all wrapping), min, max,
//             bit_and; Mask = equal(a, b) / greater(a, b), both(m1, m2),
//             select(mask, a, b), increment_where(mask, x) (x + 1 there);
//             shift_left / shift_right (arithmetic) by per-lane counts 0..31,
//             saturating_rounding_doubling_high_mul (SaturatingRoundingDoublingHighMul, see fixedpoint.h)
//   float32   dup, add, mul, div, to_float, round (half to even), bits (the
//             same 32 bits as Int), max_or_low(v, lo) = v > lo ? v : lo and
//             min_or_high(v, hi) = v < hi ? v : hi (the reference's compares:
//             NaN gives the bound)
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/fixedpoint.h"

namespace qgemm {
namespace {

// NR columns per tile row: NR / V::kLanes vectors.
template <class V, int NR>
struct VectorEpilogue {
  static constexpr int kLanes = V::kLanes, kVectors = NR / V::kLanes;
  static_assert(NR % V::kLanes == 0, "a tile row is whole vectors");
  using Int = typename V::Int;
  using Float = typename V::Float;

  using Live = typename V::Live;
  struct Row {  // the live lanes of each vector of a row of n columns
    Live live[kVectors];
    explicit Row(int n) {
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) live[q] = V::live(n - q * kLanes);
    }
  };
  static QGEMM_INLINE void load_row(const int32_t* src, Int (&v)[kVectors], const Row& r) {
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) v[q] = V::load_live(src + q * kLanes, r.live[q]);
  }
  static QGEMM_INLINE void store_row(int32_t* dst, const Int (&v)[kVectors], const Row& r) {
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) V::store_live(dst + q * kLanes, v[q], r.live[q]);
  }
  template <class T>
  static QGEMM_INLINE void load_or_zero(const T* src, bool present, T zero, decltype(V::load(src)) (&v)[kVectors]) {
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) v[q] = present ? V::load(src + q * kLanes) : V::dup(zero);
  }

  // The per-column parameters of the tile that its output kind reads (the
  // others stay unset), loaded once for all rows of a block.
  struct Columns {
    Int term[kVectors], zb[kVectors], sum[kVectors], multiplier[kVectors], shift[kVectors];
    Float scale[kVectors], offset[kVectors];
  };
  static QGEMM_INLINE void load_columns(const EpilogueParams* ep, Columns& c) {
    const OutputStage& o = ep->out;
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) {
      c.term[q] = V::load(ep->col_term + q * kLanes);
      if (ep->col_zb) c.zb[q] = V::load(ep->col_zb + q * kLanes);
      if (ep->row_za) c.sum[q] = V::load(ep->col_sum + q * kLanes);
      if (o.kind == OutputKind::requantize_fixed_point) {
        c.multiplier[q] = V::load(o.multiplier + q * kLanes);
        c.shift[q] = V::load(o.shift + q * kLanes);
      } else if (o.kind != OutputKind::int32) {
        c.scale[q] = V::load(o.scale + q * kLanes);
        c.offset[q] = o.offset ? V::load(o.offset + q * kLanes) : V::dup(0.0f);
      }
    }
  }

  // Row i of a final tile: the zero-point algebra and the output stage, then
  // the first n columns stored at c_row.
  static QGEMM_INLINE void row(Int (&v)[kVectors], const Columns& col, int i, void* c_row, const Row& n,
                               const EpilogueParams* ep) {
    const OutputStage& o = ep->out;
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) v[q] = V::sub(v[q], col.term[q]);
    if (ep->row_za) {
      const Int za = V::dup(ep->row_za[i]);
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) v[q] = V::sub(v[q], V::mul(col.sum[q], za));
    }
    if (ep->col_zb) {
      const Int rt = V::dup(ep->row_term[i]);
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) v[q] = V::sub(v[q], V::mul(col.zb[q], rt));
    }
    if (o.kind == OutputKind::int32) return store_row(static_cast<int32_t*>(c_row), v, n);
    if (o.kind == OutputKind::float32) {
      const Float lo = V::dup(o.fmin), hi = V::dup(o.fmax);
      Int bits[kVectors];
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) {
        const Float scale = o.row_scale ? V::mul(V::dup(o.row_scale[i]), col.scale[q]) : col.scale[q];
        Float f = V::mul(V::to_float(v[q]), scale);
        if (o.offset) f = V::add(f, col.offset[q]);
        bits[q] = V::bits(V::min_or_high(V::max_or_low(f, lo), hi));
      }
      return store_row(static_cast<int32_t*>(c_row), bits, n);  // float32 and int32 are both 4 bytes
    }
    const Int zp = V::dup(o.zero_point);
    Int out[kVectors];
    if (o.kind == OutputKind::requantize_float) {
      // Clamped in float to the integer bounds (no overflow, NaN-free), then rounded.
      const Float lo = V::dup(static_cast<float>(o.qmin - o.zero_point));
      const Float hi = V::dup(static_cast<float>(o.qmax - o.zero_point));
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) {
        Float scale = col.scale[q], offset = col.offset[q];
        if (o.row_scale) {  // output_stage.h: per-tensor numerics element by element
          const Float ab = V::mul(V::dup(o.row_scale[i]), scale);
          scale = V::div(ab, V::dup(o.y_scale));
          if (o.offset) offset = V::div(offset, ab);
        }
        Float f = V::to_float(v[q]);
        if (o.offset) f = V::add(f, offset);
        f = V::mul(f, scale);
        out[q] = V::add(V::round(V::min_or_high(V::max_or_low(f, lo), hi)), zp);
      }
    } else {  // requantize_fixed_point: clamped before adding the zero point, so nothing overflows
      const Int lo = V::dup(o.qmin - o.zero_point), hi = V::dup(o.qmax - o.zero_point);
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) {
        const Int m = multiply_by_quantized_multiplier<V>(v[q], col.multiplier[q], col.shift[q]);
        out[q] = V::add(V::min(V::max(m, lo), hi), zp);
      }
    }
    V::template store_bytes<kVectors>(static_cast<uint8_t*>(c_row), out, n.live, o.out_u8);
  }

  // The epilogue of an m x n block of accumulators in memory (n <= NR, rows
  // lda apart): a tile's, or the standalone requantize's. Plain int32
  // (matmul's common case, and every K block but the last) is inlined into
  // the tile, where m is a constant, and kept short: at small K the
  // epilogue is a good part of a tile's time. Everything else is a call.
  static QGEMM_INLINE void block(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n, int flags,
                                 const EpilogueParams* ep) {
    if ((flags & kGemmFinal) && (ep->out.kind != OutputKind::int32 || ep->col_zb))
      return output_block(acc, lda, c, ldc, m, n, flags, ep);
    if (n == NR) return int32_block(acc, lda, static_cast<int32_t*>(c), ldc, m, Row(NR), flags, ep);
    partial_int32_block(acc, lda, static_cast<int32_t*>(c), ldc, m, n, flags, ep);
  }

  static __attribute__((noinline)) void partial_int32_block(const int32_t* acc, size_t lda, int32_t* c, size_t ldc,
                                                            int m, int n, int flags, const EpilogueParams* ep) {
    int32_block(acc, lda, c, ldc, m, Row(n), flags, ep);
  }

  static QGEMM_INLINE void int32_block(const int32_t* acc, size_t lda, int32_t* row, size_t ldc, int m,
                                       const Row& n, int flags, const EpilogueParams* ep) {
    const bool final = flags & kGemmFinal;
    const bool per_row = final && ep->row_za;
    Int term[kVectors], sum[kVectors];
    load_or_zero(ep->col_term, final, 0, term);
    load_or_zero(ep->col_sum, per_row, 0, sum);
    for (int i = 0; i < m; ++i, acc += lda, row += ldc) {
      Int v[kVectors];
      load_row(acc, v, n);
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) v[q] = V::sub(v[q], term[q]);
      if (per_row) {
        const Int za = V::dup(ep->row_za[i]);
        #pragma GCC unroll 4
        for (int q = 0; q < kVectors; ++q) v[q] = V::sub(v[q], V::mul(sum[q], za));
      }
      if (flags & kGemmAccumulate) add_row(v, row, n);
      store_row(row, v, n);
    }
  }

  // Every final block but plain int32: the column parameters loaded once.
  static __attribute__((noinline)) void output_block(const int32_t* acc, size_t lda, void* c, size_t ldc,
                                                     int m, int n, int flags, const EpilogueParams* ep) {
    if (n == NR) return output_rows(acc, lda, c, ldc, m, Row(NR), flags, ep);  // whole rows: no tail code
    output_rows(acc, lda, c, ldc, m, Row(n), flags, ep);
  }
  static QGEMM_INLINE void output_rows(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, const Row& n,
                                       int flags, const EpilogueParams* ep) {
    Columns col{};  // zeros where the kind reads nothing (never used; keeps the compiler sure)
    load_columns(ep, col);
    const size_t esize = ep->out.kind == OutputKind::int32 || ep->out.kind == OutputKind::float32 ? 4 : 1;
    for (int i = 0; i < m; ++i, acc += lda) {
      uint8_t* row = static_cast<uint8_t*>(c) + i * ldc * esize;
      Int v[kVectors];
      load_row(acc, v, n);
      if (flags & kGemmAccumulate) add_row(v, reinterpret_cast<const int32_t*>(row), n);  // int32 only
      VectorEpilogue::row(v, col, i, row, n, ep);
    }
  }

  static QGEMM_INLINE void add_row(Int (&v)[kVectors], const int32_t* src, const Row& n) {
    Int old[kVectors];
    load_row(src, old, n);
    #pragma GCC unroll 4
    for (int q = 0; q < kVectors; ++q) v[q] = V::add(v[q], old[q]);
  }

  // A microkernel's M x NR tile of accumulators to the epilogue, through a
  // stack buffer: with the accumulators live across the epilogue's calls,
  // the compiler would spill them all around every call instead.
  template <int M>
  static QGEMM_INLINE void tile(const Int (&acc)[M][kVectors], void* c, size_t ldc, int n, int flags,
                                const EpilogueParams* ep) {
    alignas(64) int32_t buf[M][NR];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
      #pragma GCC unroll 4
      for (int q = 0; q < kVectors; ++q) V::store(buf[i] + q * kLanes, acc[i][q]);
    block(buf[0], NR, c, ldc, M, n, flags, ep);
  }

  template <int M>
  static QGEMM_INLINE void tile(const Int (&lo)[M], const Int (&hi)[M], void* c, size_t ldc, int n, int flags,
                                const EpilogueParams* ep) {
    static_assert(kVectors == 2, "two accumulator arrays: the two halves of a tile row");
    if (n == NR && ep->out.kind == OutputKind::int32 && !ep->col_zb && !ep->row_za) {
      // Whole plain int32 rows straight from the registers: at short K (an
      // attention head's 64) the round trip through memory is a good part
      // of a tile's time.
      const bool final = flags & kGemmFinal;
      const Int t0 = final ? V::load(ep->col_term) : V::dup(0), t1 = final ? V::load(ep->col_term + kLanes) : V::dup(0);
      int32_t* row = static_cast<int32_t*>(c);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i, row += ldc) {
        Int v0 = V::sub(lo[i], t0), v1 = V::sub(hi[i], t1);
        if (flags & kGemmAccumulate) {
          v0 = V::add(v0, V::load(row));
          v1 = V::add(v1, V::load(row + kLanes));
        }
        V::store(row, v0);
        V::store(row + kLanes, v1);
      }
      return;
    }
    alignas(64) int32_t buf[M][NR];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      V::store(buf[i], lo[i]);
      V::store(buf[i] + kLanes, hi[i]);
    }
    block(buf[0], NR, c, ldc, M, n, flags, ep);
  }

  // The standalone output stage (requantize): GemmKernel::epilogue.
  static void final_block(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                          const EpilogueParams* ep) {
    block(acc, lda, c, ldc, m, n, kGemmFinal, ep);
  }
};

}  // namespace
}  // namespace qgemm
