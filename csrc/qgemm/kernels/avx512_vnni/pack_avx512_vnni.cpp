// B's packing loop on AVX-512 (F/BW, as every AVX-512 VNNI CPU has): 64
// columns of 4 rows per step, one whole cache line of each row, for the
// AVX-512 VNNI kernel's panels of 32 columns in groups of 4. The rest of the
// table, and what this loop leaves (kr = 2, the last 16-48 columns), are
// AVX2's (kernels/avx2/pack_avx2.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

// Columns [0, 64) of rows [0, 4 * groups) into the panel layout: the v-th
// 64-byte store of group g (columns 16v..16v+15) at out[v] + g * group_bytes;
// column sums added into sums[0..64), |values| into *vmax.
template <bool kStream>
void b_strip64(const uint8_t* src, ptrdiff_t row_stride, size_t groups, size_t group_bytes, __m512i vflip,
               int8_t* const* out, int32_t* sums, __m512i* vmax) {
  const __m512i ones8 = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1);
  __m512i s16[4], s32[4];  // int16: two pair sums per column; int32: a sum per column
  for (int v = 0; v < 4; ++v) s16[v] = s32[v] = _mm512_setzero_si512();
  __m512i mx = *vmax;
  for (size_t g = 0; g < groups; ++g) {
    __m512i r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm512_xor_si512(_mm512_loadu_si512(src + static_cast<ptrdiff_t>(4 * g + i) * row_stride), vflip);
      mx = _mm512_max_epu8(mx, _mm512_abs_epi8(r[i]));
    }
    // Within each 128-bit lane l: q0..q3 hold columns 16l + 0..3, 4..7,
    // 8..11, 12..15, four rows each; then a 4 x 4 transpose of the lanes.
    const __m512i t0 = _mm512_unpacklo_epi8(r[0], r[1]), t1 = _mm512_unpacklo_epi8(r[2], r[3]);
    const __m512i t2 = _mm512_unpackhi_epi8(r[0], r[1]), t3 = _mm512_unpackhi_epi8(r[2], r[3]);
    const __m512i q0 = _mm512_unpacklo_epi16(t0, t1), q1 = _mm512_unpackhi_epi16(t0, t1);
    const __m512i q2 = _mm512_unpacklo_epi16(t2, t3), q3 = _mm512_unpackhi_epi16(t2, t3);
    const __m512i lo01 = _mm512_shuffle_i64x2(q0, q1, 0x44), lo23 = _mm512_shuffle_i64x2(q2, q3, 0x44);
    const __m512i hi01 = _mm512_shuffle_i64x2(q0, q1, 0xEE), hi23 = _mm512_shuffle_i64x2(q2, q3, 0xEE);
    const __m512i o[4] = {_mm512_shuffle_i64x2(lo01, lo23, 0x88), _mm512_shuffle_i64x2(lo01, lo23, 0xDD),
                          _mm512_shuffle_i64x2(hi01, hi23, 0x88), _mm512_shuffle_i64x2(hi01, hi23, 0xDD)};
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      __m512i* at = reinterpret_cast<__m512i*>(out[v] + g * group_bytes);
      if constexpr (kStream) _mm512_stream_si512(at, o[v]);
      else _mm512_storeu_si512(at, o[v]);
      s16[v] = _mm512_add_epi16(s16[v], _mm512_maddubs_epi16(ones8, o[v]));
    }
    // To int32 before int16 could overflow (|int16 sum| <= 256 per group: 64 groups).
    if ((g + 1) % 64 == 0 || g + 1 == groups) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        s32[v] = _mm512_add_epi32(s32[v], _mm512_madd_epi16(s16[v], ones16));
        s16[v] = _mm512_setzero_si512();
      }
    }
  }
  for (int v = 0; v < 4; ++v) {  // wrapping, as the portable loop's sums
    int32_t* at = sums + 16 * v;
    _mm512_storeu_si512(at, _mm512_add_epi32(_mm512_loadu_si512(at), s32[v]));
  }
  *vmax = mx;
}

template <bool kStream>
void b_block_kr4(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int nr, size_t panel_stride,
                 uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  const __m512i vflip = _mm512_set1_epi8(static_cast<char>(flip));
  __m512i vmax = _mm512_setzero_si512();  // |stored value| as unsigned bytes (|-128| = 0x80)
  const size_t group_bytes = static_cast<size_t>(nr) * 4;
  auto column_at = [&](int c) { return dst + static_cast<size_t>(c / nr) * panel_stride + (c % nr) * 4; };
  int j = 0;
  for (; j + 64 <= width; j += 64) {
    int8_t* const out[4] = {column_at(j), column_at(j + 16), column_at(j + 32), column_at(j + 48)};
    b_strip64<kStream>(src + j, row_stride, k / 4, group_bytes, vflip, out, sums + j, &vmax);
  }
  if (kStream) _mm_sfence();  // the streamed stores before any later read, by any thread
  alignas(64) uint8_t lanes[64];
  _mm512_store_si512(lanes, vmax);
  *max_abs = std::max(*max_abs, static_cast<int>(*std::max_element(lanes, lanes + 64)));
  if (j < width)
    avx2_packers().b_block(src + j, row_stride, k, width - j, 4, nr, panel_stride, kStream, flip, column_at(j),
                           sums + j, max_abs);
}

void b_block(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int kr, int nr, size_t panel_stride,
             bool stream, uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  if (kr != 4 || nr % 16 != 0)  // a store would straddle two panels, or pairs: AVX2's loop
    return avx2_packers().b_block(src, row_stride, k, width, kr, nr, panel_stride, stream, flip, dst, sums,
                                  max_abs);
  // Streamed (non-temporal) stores need every store 64-byte aligned.
  if (stream && reinterpret_cast<uintptr_t>(dst) % 64 == 0 && panel_stride % 64 == 0)
    b_block_kr4<true>(src, row_stride, k, width, nr, panel_stride, flip, dst, sums, max_abs);
  else
    b_block_kr4<false>(src, row_stride, k, width, nr, panel_stride, flip, dst, sums, max_abs);
}

}  // namespace

const Packers& avx512_packers() {
  static const Packers p = [] {
    Packers t = avx2_packers();
    t.b_block = b_block;
    t.b_block_columns = 64;
    return t;
  }();
  return p;
}

}  // namespace qgemm
