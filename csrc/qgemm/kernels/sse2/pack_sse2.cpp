// The packing loops on SSE2 (every x86-64 CPU has it): B panels, A's
// groups of 4 bytes, B's pair layout to its quad layout, and the largest
// byte of A for range proofs. The contract is Packers (kernels.h):
// baseline_packers() on x86-64, named by the scalar kernel's record, and the
// base of avx2_packers(), named by the other x86 kernels'.
#include <emmintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"

namespace qgemm {
namespace {

// Rows [0, k) x columns [0, width) of B (unit column stride; k a multiple of
// kr, width of 16) into the panel layout [k / kr][nr][kr], 16 columns at a
// time: byte interleaves put each column's kr values side by side, each
// 16-byte store (16 / kr columns) into its panel. Column sums go vertically
// first (int16 is ample for 4 values), then to int32. Raises *max_abs to the
// largest |stored value| seen. As Packers::b_block.
void pack_b_block(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int kr, int nr,
                  size_t panel_stride, bool stream, uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs) {
  // Streamed (non-temporal) stores need every store 16-byte aligned.
  stream = stream && reinterpret_cast<uintptr_t>(dst) % 16 == 0 && panel_stride % 16 == 0;
  auto store = [stream](int8_t* at, __m128i v) {
    if (stream) _mm_stream_si128(reinterpret_cast<__m128i*>(at), v);
    else _mm_storeu_si128(reinterpret_cast<__m128i*>(at), v);
  };
  const size_t group_bytes = static_cast<size_t>(nr) * kr;
  const __m128i vflip = _mm_set1_epi8(static_cast<char>(flip));
  // Stored values flipped to unsigned (v ^ 0x80 == v + 128), where SSE2 has min and max.
  const __m128i sign = _mm_set1_epi8(static_cast<char>(0x80));
  __m128i umin = sign, umax = sign;  // 128: the value 0
  for (int j = 0; j < width; j += 16) {
    int8_t* out[4];  // the v-th store's first column j + v * 16 / kr, group 0
    for (int v = 0; v < kr; ++v) {
      const int c = j + v * (16 / kr);
      out[v] = dst + static_cast<size_t>(c / nr) * panel_stride + (c % nr) * kr;
    }
    __m128i s16_lo = _mm_setzero_si128(), s16_hi = _mm_setzero_si128();  // cols j..j+7, j+8..j+15
    __m128i s32[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    for (size_t g = 0; g < k / kr; ++g) {
      __m128i r[4] = {};  // kr of them used (2 or 4); zeroed for the compiler's flow analysis
#pragma GCC unroll 4
      for (int i = 0; i < kr; ++i) {
        r[i] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                 src + static_cast<ptrdiff_t>(g * kr + i) * row_stride + j)),
                             vflip);
        // Sign-extend to int16 (duplicate each byte, shift the copy out) and add vertically.
        s16_lo = _mm_add_epi16(s16_lo, _mm_srai_epi16(_mm_unpacklo_epi8(r[i], r[i]), 8));
        s16_hi = _mm_add_epi16(s16_hi, _mm_srai_epi16(_mm_unpackhi_epi8(r[i], r[i]), 8));
        const __m128i u = _mm_xor_si128(r[i], sign);
        umin = _mm_min_epu8(umin, u);
        umax = _mm_max_epu8(umax, u);
      }
      const size_t at = g * group_bytes;
      if (kr == 2) {
        store(out[0] + at, _mm_unpacklo_epi8(r[0], r[1]));
        store(out[1] + at, _mm_unpackhi_epi8(r[0], r[1]));
      } else {
        const __m128i t0 = _mm_unpacklo_epi8(r[0], r[1]), t1 = _mm_unpacklo_epi8(r[2], r[3]);
        const __m128i t2 = _mm_unpackhi_epi8(r[0], r[1]), t3 = _mm_unpackhi_epi8(r[2], r[3]);
        store(out[0] + at, _mm_unpacklo_epi16(t0, t1));
        store(out[1] + at, _mm_unpackhi_epi16(t0, t1));
        store(out[2] + at, _mm_unpacklo_epi16(t2, t3));
        store(out[3] + at, _mm_unpackhi_epi16(t2, t3));
      }
      // Widen the int16 sums to int32 before they could overflow (|sum| <= 128 * rows).
      if ((g + 1) % 64 == 0 || g + 1 == k / kr) {
        s32[0] = _mm_add_epi32(s32[0], _mm_srai_epi32(_mm_unpacklo_epi16(s16_lo, s16_lo), 16));
        s32[1] = _mm_add_epi32(s32[1], _mm_srai_epi32(_mm_unpackhi_epi16(s16_lo, s16_lo), 16));
        s32[2] = _mm_add_epi32(s32[2], _mm_srai_epi32(_mm_unpacklo_epi16(s16_hi, s16_hi), 16));
        s32[3] = _mm_add_epi32(s32[3], _mm_srai_epi32(_mm_unpackhi_epi16(s16_hi, s16_hi), 16));
        s16_lo = s16_hi = _mm_setzero_si128();
      }
    }
    for (int q = 0; q < 4; ++q) {
      __m128i* at = reinterpret_cast<__m128i*>(sums + j + 4 * q);
      _mm_storeu_si128(at, _mm_add_epi32(_mm_loadu_si128(at), s32[q]));
    }
  }
  if (stream) _mm_sfence();  // the streamed stores before any later read, by any thread
  alignas(16) uint8_t mins[16], maxs[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(mins), umin);
  _mm_store_si128(reinterpret_cast<__m128i*>(maxs), umax);
  for (int i = 0; i < 16; ++i) *max_abs = std::max({*max_abs, 128 - mins[i], maxs[i] - 128});
}

// Four rows at once, four groups at a time: a 4x4 transpose of 32-bit
// words puts each group's four rows into one 16-byte store.
size_t a_four_rows_c4(const uint8_t* const* src, size_t full, int mr, uint32_t flip, uint32_t to_unsigned,
                    uint8_t* out, uint32_t* sums) {
  const __m128i vflip = _mm_set1_epi32(static_cast<int>(flip));
  const __m128i vto_u = _mm_set1_epi32(static_cast<int>(to_unsigned)), zero = _mm_setzero_si128();
  __m128i s[4] = {zero, zero, zero, zero};
  size_t g = 0;
  for (; g + 4 <= full; g += 4) {
    __m128i r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src[i] + 4 * g)), vflip);
      s[i] = _mm_add_epi64(s[i], _mm_sad_epu8(_mm_xor_si128(r[i], vto_u), zero));
    }
    const __m128i t0 = _mm_unpacklo_epi32(r[0], r[1]), t1 = _mm_unpacklo_epi32(r[2], r[3]);
    const __m128i t2 = _mm_unpackhi_epi32(r[0], r[1]), t3 = _mm_unpackhi_epi32(r[2], r[3]);
    uint8_t* o = out + g * mr * 4;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi64(t0, t1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + mr * 4), _mm_unpackhi_epi64(t0, t1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 2 * mr * 4), _mm_unpacklo_epi64(t2, t3));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 3 * mr * 4), _mm_unpackhi_epi64(t2, t3));
  }
  for (int i = 0; i < 4; ++i)
    sums[i] = static_cast<uint32_t>(_mm_cvtsi128_si32(s[i])) +
              static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_unpackhi_epi64(s[i], s[i])));
  return g;
}

// 8 columns at a time: their pairs interleave as 16-bit units.
size_t pairs_to_quads(const int8_t* even, const int8_t* odd, size_t nr, int8_t* dst) {
  size_t j = 0;
  for (; j + 8 <= nr; j += 8) {
    const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(even + 2 * j));
    const __m128i o = _mm_loadu_si128(reinterpret_cast<const __m128i*>(odd + 2 * j));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * j), _mm_unpacklo_epi16(e, o));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * j + 16), _mm_unpackhi_epi16(e, o));
  }
  return j;
}

int max_byte(const uint8_t* row, size_t n, uint8_t flip) {
  const __m128i vflip = _mm_set1_epi8(static_cast<char>(flip));
  __m128i vmax = _mm_setzero_si128();
  for (size_t k = 0; k + 16 <= n; k += 16)
    vmax = _mm_max_epu8(vmax, _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)), vflip));
  alignas(16) uint8_t lanes[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), vmax);
  return *std::max_element(lanes, lanes + 16);
}

}  // namespace

const Packers& baseline_packers() {
  static const Packers p = {pack_b_block, 16, a_four_rows_c4, pairs_to_quads, max_byte, nullptr};
  return p;
}

}  // namespace qgemm
