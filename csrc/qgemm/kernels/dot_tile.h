// The x86 GEMM tile, written once for every kernel whose row of NR int32
// accumulators is two vectors (AVX2 exact and range-proven, AVX-VNNI,
// AVX-512 VNNI): per K group, load B's two vectors, then per live row
// broadcast A and accumulate two dot products. A kernel supplies traits K:
//   Vector              its output stage primitive set (output_stage_vector.h)
//   Int, AType, B       accumulator vector, stored A element, B group in registers
//   kMr, kNr, kKr       tile; kAStep / kBStep: A elements / B bytes per K group
//   kPackedA            how A is stored (AType: its unit as the tile reads it)
//   kFewRows            what rows 1..2 (GEMV) do so that the B stream, not the
//                       dot products' latency, bounds them (FewRows)
//   zero(), add(x, y), load_b(b), broadcast(a, i) (row i's group of packed A
//   to every lane), dot(acc, a, B, half) (acc + the group's products with
//   half 0 or 1 of B)
// U8S8DotTraits supplies all of them but dot for the vpdpbusd kernels.
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qgemm/kernels.h"
#include "qgemm/kernels/always_inline.h"
#include "qgemm/kernels/live_rows.h"
#include "qgemm/kernels/output_stage_vector.h"

namespace qgemm {
namespace {

enum class FewRows {
  plain,       // the general loop
  unroll4,     // four K groups per iteration: loop overhead does not bound the B stream
  two_chains,  // even and odd K groups into separate accumulators, so that
               // the dot product's latency chain does not bound the B stream
};

// Four bytes of A (one K group of one row) as an int32 to broadcast.
QGEMM_INLINE int32_t a_quad(const uint8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return v;
}

// The traits of a u8 x s8 dot-product kernel (vpdpbusd, at any width) over a
// primitive set V: a row is two vectors, K goes in groups of 4, A is stored
// as uint8 and broadcast a group at a time. The kernel adds
// dot(acc, a, B, half): its instruction on half 0 or 1 of B.
template <class V, int MR>
struct U8S8DotTraits {
  using Vector = V;
  using Int = typename V::Int;
  using AType = uint8_t;
  struct B {
    Int lo, hi;
  };
  static constexpr PackedA kPackedA = PackedA::uint8;
  static constexpr int kMr = MR, kNr = 2 * V::kLanes, kKr = 4;
  static constexpr int kAStep = kMr * kKr, kBStep = kNr * kKr;
  static constexpr FewRows kFewRows = FewRows::two_chains;
  static QGEMM_INLINE Int zero() { return V::dup(0); }
  static QGEMM_INLINE Int add(Int x, Int y) { return V::add(x, y); }
  static QGEMM_INLINE B load_b(const int8_t* b) {  // 4 bytes a lane: loaded as int32 lanes
    const int32_t* lanes = reinterpret_cast<const int32_t*>(b);
    return {V::load(lanes), V::load(lanes + V::kLanes)};
  }
  static QGEMM_INLINE Int broadcast(const uint8_t* a, int i) { return V::dup(a_quad(a + 4 * i)); }
};

// Where a tile reads A. row(g, i): row i's K group g (counted from the
// current one) broadcast to every lane; advance(groups) moves on.
// Packed: the driver's blocks, one K group of all rows every kAStep elements.
template <class K>
struct PackedAReader {
  const typename K::AType* a;
  QGEMM_INLINE typename K::Int row(int g, int i) const { return K::broadcast(a + g * K::kAStep, i); }
  QGEMM_INLINE void advance(int groups) { a += groups * K::kAStep; }
};
// In place: rows lda bytes apart, read where they are (kernels that store A
// as uint8 in groups of 4, whose packing of A only reorders its bytes, and
// flips int8 ones: kFlip, here as they are read).
template <class K, bool kFlip>
struct InPlaceAReader {
  static_assert(K::kPackedA == PackedA::uint8 && K::kKr == 4, "A read in place must be what packing would store");
  using V = typename K::Vector;
  const uint8_t* a;
  ptrdiff_t lda;
  const typename K::Int flip = V::dup(int32_t(0x80808080u));  // in a register: xor after the broadcast from memory
  QGEMM_INLINE typename K::Int row(int g, int i) const {
    const typename K::Int quad = V::dup(a_quad(a + i * lda + 4 * g));
    return kFlip ? V::bit_xor(quad, flip) : quad;
  }
  QGEMM_INLINE void advance(int groups) { a += 4 * groups; }
};

// EpilogueParams::prefetch, issued per_group lines at a time from the K loop.
struct RowPrefetcher {
  const PrefetchRows& p;
  uint32_t done = 0;
  QGEMM_INLINE bool active() const { return done < p.rows; }
  QGEMM_INLINE void step() {
    for (uint32_t r = 0; r < p.per_group && done < p.rows; ++r, ++done)
      __builtin_prefetch(p.first + static_cast<ptrdiff_t>(done) * p.stride, 0, 3);
  }
};

// One K group of M rows: acc0/acc1 += row i's group of A times B's halves.
template <class K, int M, class A>
QGEMM_INLINE void dot_step(typename K::Int (&acc0)[M], typename K::Int (&acc1)[M], const A& a,
                           const typename K::B& b) {
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    const typename K::Int ai = a.row(0, i);
    acc0[i] = K::dot(acc0[i], ai, b, 0);
    acc1[i] = K::dot(acc1[i], ai, b, 1);
  }
}

// M live rows (1..kMr) of the tile: fewer rows, fewer accumulators, so that
// small-M / GEMV calls stream B without wasted multiplies.
template <class K, int M, class A>
QGEMM_INLINE void dot_tile(size_t k_groups, A a, const int8_t* b, void* c, size_t ldc, int n, int flags,
                           const EpilogueParams* ep) {
  using Int = typename K::Int;
  // Fully unrolled so the 2*M accumulators live in registers.
  Int acc0[M], acc1[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = K::zero();
  size_t g = 0;
  // The prefetches (EpilogueParams::prefetch) go out first, front-loaded,
  // from a loop of one K group at a time (one pair in the two-chain loop,
  // which leaves an odd last group without); the loops after it are the ones
  // without them, so the hot loop stays as it is when there are none.
  RowPrefetcher prefetch{ep->prefetch};
  auto step = [&]() __attribute__((always_inline)) {
    dot_step<K, M>(acc0, acc1, a, K::load_b(b));
    a.advance(1);
    b += K::kBStep;
  };
  if (K::kFewRows == FewRows::two_chains && M <= 2) {
    // A last odd group is one straight-line step: a tail loop over the same
    // accumulators made GCC 12 spill one of them inside the main loop.
    Int odd0[M], odd1[M];
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) odd0[i] = odd1[i] = K::zero();
    auto pair_step = [&]() __attribute__((always_inline)) {
      const typename K::B even = K::load_b(b), odd = K::load_b(b + K::kBStep);
#pragma GCC unroll 2
      for (int i = 0; i < M; ++i) {
        const Int ae = a.row(0, i), ao = a.row(1, i);
        acc0[i] = K::dot(acc0[i], ae, even, 0);
        acc1[i] = K::dot(acc1[i], ae, even, 1);
        odd0[i] = K::dot(odd0[i], ao, odd, 0);
        odd1[i] = K::dot(odd1[i], ao, odd, 1);
      }
      a.advance(2);
      b += 2 * K::kBStep;
    };
    size_t pairs = k_groups / 2;
    for (; pairs > 0 && prefetch.active(); --pairs) {
      prefetch.step();
      prefetch.step();
      pair_step();
    }
    for (; pairs > 0; --pairs) pair_step();
    if (k_groups % 2) dot_step<K, M>(odd0, odd1, a, K::load_b(b));
#pragma GCC unroll 2
    for (int i = 0; i < M; ++i) {
      acc0[i] = K::add(acc0[i], odd0[i]);
      acc1[i] = K::add(acc1[i], odd1[i]);
    }
    g = k_groups;
  }
  if (flags & kGemmPrefetchOutput) {
    // One row of C's tile per K group, spread over the first groups.
    const size_t row_bytes = ldc * output_element_bytes(ep->out.kind);
    const size_t last_byte = static_cast<size_t>(n) * output_element_bytes(ep->out.kind) - 1;
    const char* c_row = static_cast<const char*>(c);
    for (int i = 0; i < M && g < k_groups; ++i, ++g, c_row += row_bytes) {
      __builtin_prefetch(c_row, 1, 3);
      __builtin_prefetch(c_row + last_byte, 1, 3);
      prefetch.step();
      step();
    }
  }
  for (; g < k_groups && prefetch.active(); ++g) {
    prefetch.step();
    step();
  }
  if (K::kFewRows == FewRows::unroll4 && M <= 2) {
    for (; g + 4 <= k_groups; g += 4) {
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) step();
    }
  }
  for (; g < k_groups; ++g) step();
  VectorEpilogue<typename K::Vector, K::kNr>::template tile<M>(acc0, acc1, c, ldc, n, flags, ep);
}

// K's tile as a template over the live row count (see gemm_live_rows), on
// packed A and, where K allows it, on A in place.
template <class K>
struct DotTile {
  static constexpr int kAStep = K::kAStep;
  template <int M>
  static void run(size_t k_groups, const typename K::AType* a, const int8_t* b, void* c, size_t ldc, int n,
                  int flags, const EpilogueParams* ep) {
    dot_tile<K, M>(k_groups, PackedAReader<K>{a}, b, c, ldc, n, flags, ep);
  }
  template <int M, bool kFlip>
  static void run_in_place(size_t k_groups, const uint8_t* a, ptrdiff_t lda, const int8_t* b, void* c, size_t ldc,
                           int n, int flags, const EpilogueParams* ep) {
    dot_tile<K, M>(k_groups, InPlaceAReader<K, kFlip>{a, lda}, b, c, ldc, n, flags, ep);
  }
};

// The record of a kernel with traits K that packs with `packers`.
template <class K>
GemmKernel dot_kernel_record(const char* name, const Packers& packers, const GemmKernel* proven_range = nullptr) {
  GemmMicroInPlaceFn in_place = nullptr;
  if constexpr (K::kPackedA == PackedA::uint8 && K::kKr == 4) in_place = gemm_live_rows_in_place<K::kMr, DotTile<K>>;
  return {name, K::kMr, K::kNr, K::kKr, K::kPackedA, &packers, gemm_live_rows<K::kMr, typename K::AType, DotTile<K>>,
          VectorEpilogue<typename K::Vector, K::kNr>::final_block, proven_range, in_place};
}

}  // namespace
}  // namespace qgemm
