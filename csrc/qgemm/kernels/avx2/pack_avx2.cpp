// B's packing loop on AVX2: 32 columns of kr rows per step (SSE2 does 16),
// taken 64 columns at a time a few rows at a time, so that each 64-byte line
// of a row is read whole while it is in L1 (as AVX-512's 64-column step does);
// column sums by multiply-add against ones (vpmaddubsw never saturates on
// 1 * b + 1 * b'), max|B| by vpabsb; and A widened to int16 pairs for the
// exact kernel. Every x86-64 table keeps SSE2's other loops (Packers,
// kernels.h); the AVX2-and-later kernel records name this table.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/kernels/always_inline.h"

namespace qgemm {
namespace {


// 32 columns (kHalf: 16) of rows [0, k) into the panel layout: the v-th
// 32-byte store of group g (32 / KR columns) at out[v] + g * group_bytes;
// column sums added into sums[0..], |values| into *vmax.
template <int KR, bool kHalf, bool kStream>
QGEMM_INLINE void b_strip(const uint8_t* src, ptrdiff_t row_stride, size_t groups, size_t group_bytes,
                          __m256i vflip, int8_t* const* out, int32_t* sums, __m256i* vmax) {
  constexpr int kOut = (KR == 4 ? 4 : 2) / (kHalf ? 2 : 1);  // 32-byte stores per group
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  // int16 sums: kr = 4, two pair sums per column; kr = 2, one sum per column.
  __m256i s16[kOut], s32[kHalf ? 2 : 4];
#pragma GCC unroll 4
  for (int v = 0; v < kOut; ++v) s16[v] = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (auto& v : s32) v = _mm256_setzero_si256();
  __m256i mx = *vmax;
  for (size_t g = 0; g < groups; ++g) {
    __m256i r[KR];
#pragma GCC unroll 4
    for (int i = 0; i < KR; ++i) {
      const uint8_t* p = src + static_cast<ptrdiff_t>(g * KR + i) * row_stride;
      // (kHalf: flipped before widening, so that the zero upper lane stays 0 for vmax)
      r[i] = kHalf ? _mm256_zextsi128_si256(_mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                                                          _mm256_castsi256_si128(vflip)))
                   : _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), vflip);
      mx = _mm256_max_epu8(mx, _mm256_abs_epi8(r[i]));
    }
    __m256i o[KR == 4 ? 4 : 2];  // columns in order, kr bytes each
    if constexpr (KR == 4) {
      const __m256i t0 = _mm256_unpacklo_epi8(r[0], r[1]), t1 = _mm256_unpacklo_epi8(r[2], r[3]);
      const __m256i t2 = _mm256_unpackhi_epi8(r[0], r[1]), t3 = _mm256_unpackhi_epi8(r[2], r[3]);
      const __m256i q0 = _mm256_unpacklo_epi16(t0, t1), q1 = _mm256_unpackhi_epi16(t0, t1);
      const __m256i q2 = _mm256_unpacklo_epi16(t2, t3), q3 = _mm256_unpackhi_epi16(t2, t3);
      o[0] = _mm256_permute2x128_si256(q0, q1, 0x20);  // columns 0..7
      o[1] = _mm256_permute2x128_si256(q2, q3, 0x20);  // 8..15
      o[2] = _mm256_permute2x128_si256(q0, q1, 0x31);  // 16..23
      o[3] = _mm256_permute2x128_si256(q2, q3, 0x31);  // 24..31
    } else {
      const __m256i t0 = _mm256_unpacklo_epi8(r[0], r[1]), t1 = _mm256_unpackhi_epi8(r[0], r[1]);
      o[0] = _mm256_permute2x128_si256(t0, t1, 0x20);  // columns 0..15
      o[1] = _mm256_permute2x128_si256(t0, t1, 0x31);  // 16..31
    }
#pragma GCC unroll 4
    for (int v = 0; v < kOut; ++v) {
      __m256i* at = reinterpret_cast<__m256i*>(out[v] + g * group_bytes);
      if constexpr (kStream) _mm256_stream_si256(at, o[v]);
      else _mm256_storeu_si256(at, o[v]);
      s16[v] = _mm256_add_epi16(s16[v], _mm256_maddubs_epi16(ones8, o[v]));
    }
    // To int32 before int16 could overflow (|int16 sum| <= 256 per group: 64 groups).
    if ((g + 1) % 64 == 0 || g + 1 == groups) {
#pragma GCC unroll 4
      for (int v = 0; v < kOut; ++v) {
        if constexpr (KR == 4) {
          s32[v] = _mm256_add_epi32(s32[v], _mm256_madd_epi16(s16[v], ones16));
        } else {
          s32[2 * v] = _mm256_add_epi32(s32[2 * v], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16[v])));
          s32[2 * v + 1] =
              _mm256_add_epi32(s32[2 * v + 1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16[v], 1)));
        }
        s16[v] = _mm256_setzero_si256();
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < (kHalf ? 2 : 4); ++q) {
    __m256i* at = reinterpret_cast<__m256i*>(sums + 8 * q);
    _mm256_storeu_si256(at, _mm256_add_epi32(_mm256_loadu_si256(at), s32[q]));
  }
  *vmax = mx;
}

// Rows of B per pass across the block's columns: kChunkGroups groups of kr
// rows (32 or 64 rows, 2-4 KiB of lines on a wide B, well inside L1).
// Measured with 64 columns per call in the plain-B path (b_block_columns),
// against 32 without passes, 2 threads, QGEMM_ISA=avx2: 8-16 x 4096 x 4096
// 1.03-1.05x in two A/B runs (7-bit one run, 1.00-1.01 the other), larger
// shapes 0.99-1.01.
constexpr size_t kChunkGroups = 16;

// Rows [0, k) x columns [0, width) (width a multiple of 16, unit column
// stride, k a multiple of kr = 2 or 4, nr a multiple of 32 / kr: every store
// within one panel) into the panel layout; as Packers::b_block.
template <int KR, bool kStream>
void b_block_kr(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int nr, size_t panel_stride,
                uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  constexpr int kStoreColumns = 32 / KR;
  const __m256i vflip = _mm256_set1_epi8(static_cast<char>(flip));
  __m256i vmax = _mm256_setzero_si256();  // |stored value| as unsigned bytes (|-128| = 0x80)
  const size_t group_bytes = static_cast<size_t>(nr) * KR;
  int8_t* out[4];
  auto aim = [&](int j, int stores, size_t g0) {  // the strip at column j, from group g0
    for (int v = 0; v < stores; ++v) {
      const int c = j + v * kStoreColumns;
      out[v] = dst + static_cast<size_t>(c / nr) * panel_stride + (c % nr) * KR + g0 * group_bytes;
    }
  };
  const size_t groups = k / KR;
  for (size_t g0 = 0; g0 < groups; g0 += kChunkGroups) {
    const size_t count = std::min(kChunkGroups, groups - g0);
    const uint8_t* rows = src + static_cast<ptrdiff_t>(g0 * KR) * row_stride;
    int j = 0;
    for (; j + 32 <= width; j += 32) {
      aim(j, 32 / kStoreColumns, g0);
      b_strip<KR, false, kStream>(rows + j, row_stride, count, group_bytes, vflip, out, sums + j, &vmax);
    }
    if (j < width) {
      aim(j, 16 / kStoreColumns, g0);
      b_strip<KR, true, kStream>(rows + j, row_stride, count, group_bytes, vflip, out, sums + j, &vmax);
    }
  }
  if (kStream) _mm_sfence();  // the streamed stores before any later read, by any thread
  alignas(32) uint8_t lanes[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vmax);
  *max_abs = std::max(*max_abs, static_cast<int>(*std::max_element(lanes, lanes + 32)));
}

void b_block(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int kr, int nr, size_t panel_stride,
             bool stream, uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  if (nr % (32 / kr) != 0)  // a store would straddle two panels: SSE2's 16-byte stores
    return baseline_packers().b_block(src, row_stride, k, width, kr, nr, panel_stride, stream, flip, dst, sums,
                                      max_abs);
  // Streamed (non-temporal) stores need every store 32-byte aligned.
  stream = stream && reinterpret_cast<uintptr_t>(dst) % 32 == 0 && panel_stride % 32 == 0;
  using Loop = void (*)(const uint8_t*, ptrdiff_t, size_t, int, int, size_t, uint8_t, int8_t*, int32_t*, int*);
  const Loop loop = kr == 4 ? (stream ? b_block_kr<4, true> : b_block_kr<4, false>)
                            : (stream ? b_block_kr<2, true> : b_block_kr<2, false>);
  loop(src, row_stride, k, width, nr, panel_stride, flip, dst, sums, max_abs);
}

// Eight pairs of each of four rows per step: 16 bytes widened into one
// register (pairs 0-3 in the low lane, 4-7 in the high), whose 32-bit pairs
// are transposed 4 x 4 within each lane; row sums by vpsadbw on the bytes
// (signed bytes flipped to unsigned, v ^ 0x80 == v + 128, then corrected).
template <bool kU8>
size_t a_four_rows_int16_pairs_typed(const uint8_t* const* src, size_t full, int mr, int16_t* out,
                                     uint32_t* sums) {
  const __m128i zero = _mm_setzero_si128(), to_unsigned = _mm_set1_epi8(kU8 ? 0 : static_cast<char>(0x80));
  __m128i s[4] = {zero, zero, zero, zero};
  const size_t group = static_cast<size_t>(mr) * 2;  // int16 values per pair of K, all rows
  size_t g = 0;
  for (; g + 8 <= full; g += 8) {
    __m256i w[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[i] + 2 * g));
      w[i] = kU8 ? _mm256_cvtepu8_epi16(x) : _mm256_cvtepi8_epi16(x);
      s[i] = _mm_add_epi64(s[i], _mm_sad_epu8(_mm_xor_si128(x, to_unsigned), zero));
    }
    const __m256i t0 = _mm256_unpacklo_epi32(w[0], w[1]), t1 = _mm256_unpacklo_epi32(w[2], w[3]);
    const __m256i t2 = _mm256_unpackhi_epi32(w[0], w[1]), t3 = _mm256_unpackhi_epi32(w[2], w[3]);
    const __m256i o[4] = {_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1),
                          _mm256_unpacklo_epi64(t2, t3), _mm256_unpackhi_epi64(t2, t3)};  // pairs v and v + 4
    int16_t* d = out + g * group;
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + v * group), _mm256_castsi256_si128(o[v]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + (v + 4) * group), _mm256_extracti128_si256(o[v], 1));
    }
  }
  const uint32_t correction = kU8 ? 0 : static_cast<uint32_t>(128 * 2 * g);
  for (int i = 0; i < 4; ++i)
    sums[i] = static_cast<uint32_t>(_mm_cvtsi128_si32(s[i])) +
              static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_unpackhi_epi64(s[i], s[i]))) - correction;
  return g;
}

size_t a_four_rows_int16_pairs(const uint8_t* const* src, size_t full, int mr, bool is_u8, int16_t* out,
                               uint32_t* sums) {
  return is_u8 ? a_four_rows_int16_pairs_typed<true>(src, full, mr, out, sums)
               : a_four_rows_int16_pairs_typed<false>(src, full, mr, out, sums);
}

}  // namespace

const Packers& avx2_packers() {
  static const Packers p = [] {
    Packers t = baseline_packers();
    t.b_block = b_block;
    t.b_block_columns = 64;  // two steps of 32, whole lines (kChunkGroups)
    t.a_four_rows_int16_pairs = a_four_rows_int16_pairs;
    return t;
  }();
  return p;
}

}  // namespace qgemm
