#include "qgemm/pack.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "qgemm/thread_pool.h"

namespace qgemm {

namespace {

// Rows [k_begin, k_end) x columns [0, width) of b, one byte at a time, into
// the panel layout at panel (the panel's row 0; row k goes to group k / kr,
// slot k % kr), column sums into sums.
void pack_b_bytes(const ByteMatrix& b, size_t j0, size_t k_begin, size_t k_end, int j_begin, int j_end, int nr,
                  int kr, int8_t* panel, int32_t* sums, int* max_abs) {
  if (j_begin >= j_end) return;  // nothing left to the vectors (the per-row division costs)
  const uint8_t flip = b.is_u8 ? 0x80 : 0;
  for (size_t k = k_begin; k < k_end; ++k) {
    const uint8_t* src = b.data + static_cast<ptrdiff_t>(k) * b.row_stride +
                         static_cast<ptrdiff_t>(j0) * b.col_stride;
    int8_t* group = panel + (k / kr) * nr * kr + k % kr;
    for (int j = j_begin; j < j_end; ++j) {
      const int8_t v = static_cast<int8_t>(src[j * b.col_stride] ^ flip);
      group[j * kr] = v;
      sums[j] = static_cast<int32_t>(static_cast<uint32_t>(sums[j]) + static_cast<uint32_t>(v));
      *max_abs = std::max(*max_abs, v < 0 ? -int(v) : int(v));
    }
  }
}

}  // namespace

void pack_b_panel_rows(const ByteMatrix& b, size_t j0, size_t k_begin, size_t k_end, int nr, int kr,
                       const Packers& packers, int8_t* panel, int32_t* sums, int* max_abs) {
  int8_t* dst = panel + k_begin * nr;
  const size_t k_padded_end = (k_end + kr - 1) / kr * kr;
  const int width = static_cast<int>(std::min<size_t>(nr, b.cols - j0));
  const bool vectors = packers.b_block && b.col_stride == 1 && (kr == 2 || kr == 4);
  // rows [k_begin, k_done) x columns [0, j_done) packed by vectors
  const size_t k_done = vectors ? k_begin + (k_end - k_begin) / kr * kr : k_begin;
  const int j_done = vectors ? width / 16 * 16 : 0;
  // Zero padding, unless the vectors write every byte (as wide as B's own bytes).
  if (k_padded_end > k_begin && (j_done < nr || k_done < k_padded_end))
    std::memset(dst, 0, (k_padded_end - k_begin) * nr);
  if (vectors)
    packers.b_block(b.data + static_cast<ptrdiff_t>(k_begin) * b.row_stride + j0, b.row_stride,
                    k_done - k_begin, j_done, kr, nr, 0, false, b.is_u8 ? 0x80 : 0, dst, sums, max_abs);
  pack_b_bytes(b, j0, k_begin, k_done, j_done, width, nr, kr, panel, sums, max_abs);
  pack_b_bytes(b, j0, k_done, k_end, 0, width, nr, kr, panel, sums, max_abs);
}

void pack_b_panels_rows(const ByteMatrix& b, size_t p_begin, size_t p_end, size_t k_begin, size_t k_end, int nr,
                        int kr, const Packers& packers, bool stream, int8_t* panels, size_t panel_stride,
                        int32_t* sums, int* max_abs) {
  auto one_panel = [&](size_t p, size_t k0) {
    pack_b_panel_rows(b, p * nr, k0, k_end, nr, kr, packers, panels + p * panel_stride, sums + p * nr, max_abs);
  };
  // The full panels' whole groups in one pass of the vector loop, which reads
  // B's rows a line at a time across every panel (the loop takes columns in
  // 16s: with nr = 8, an even count of panels); the rest panel by panel.
  const size_t full_end = std::clamp(b.cols / nr, p_begin, p_end);  // panels with nr columns of B
  const size_t step = nr % 16 == 0 ? 1 : 2;                           // panels per 16 columns (nr % 8 == 0)
  const size_t vector_end = p_begin + (full_end - p_begin) / step * step;
  const size_t k_done = k_begin + (k_end - k_begin) / kr * kr;
  if (!packers.b_block || b.col_stride != 1 || (kr != 2 && kr != 4) || nr % 8 != 0 || vector_end == p_begin ||
      k_done == k_begin) {
    for (size_t p = p_begin; p < p_end; ++p) one_panel(p, k_begin);
    return;
  }
  packers.b_block(b.data + static_cast<ptrdiff_t>(k_begin) * b.row_stride + p_begin * nr, b.row_stride,
                  k_done - k_begin, static_cast<int>((vector_end - p_begin) * nr), kr, nr, panel_stride, stream,
                  b.is_u8 ? 0x80 : 0, panels + p_begin * panel_stride + k_begin * nr, sums + p_begin * nr,
                  max_abs);
  if (k_done < k_end)
    for (size_t p = p_begin; p < vector_end; ++p) one_panel(p, k_done);
  for (size_t p = vector_end; p < p_end; ++p) one_panel(p, k_begin);
}

PackedB pack_b(const ByteMatrix& b, const GemmKernel& kernel, bool single_use) {
  const int nr = kernel.nr, kr = kernel.kr;
  PackedB p;
  p.single_use = single_use;
  p.k = b.rows;
  p.n = b.cols;
  p.nr = nr;
  p.kr = kr;
  p.k_padded = (b.rows + kr - 1) / kr * kr;
  p.panels = (b.cols + nr - 1) / nr;
  p.is_u8 = b.is_u8;
  allocate_panels(p);
  p.colsum.assign(p.panels * nr, 0);
  const Packers& packers = *kernel.packers;
  // Threads only pay off for large matrices (weights are packed once anyway).
  const size_t tasks = b.rows * b.cols >= (size_t(1) << 18)
                           ? std::min<size_t>(p.panels, static_cast<size_t>(usable_threads()))
                           : 1;
  // A weight's panels are not read soon: stream them past the caches once
  // they are large, as memcpy does for large copies.
  const bool stream = !single_use && p.bytes() >= kStreamPanelsFrom;
  std::vector<int> task_max_abs(tasks, 0);
  parallel_for(tasks, [&](size_t t) {
    const size_t p0 = p.panels * t / tasks, p1 = p.panels * (t + 1) / tasks;
    int max_abs = 0;  // local: the threads' slots share a cache line
    const size_t rows = pack_b_rows_per_pass(stream);
    for (size_t k0 = 0; k0 < b.rows; k0 += rows)
      pack_b_panels_rows(b, p0, p1, k0, std::min(b.rows, k0 + rows), nr, kr, packers, stream,
                         p.data.get(), p.k_padded * nr, p.colsum.data(), &max_abs);
    task_max_abs[t] = max_abs;
  });
  p.max_abs = *std::max_element(task_max_abs.begin(), task_max_abs.end());
  p.second = std::make_shared<SecondLayout>();
  return p;
}

namespace {

// One stored value from a raw byte. int16: both dtypes widened as they are.
// int8: uint8 flipped (b ^ 0x80 == b - 128). uint8: int8 flipped (b + 128).
template <class Out, bool kU8>
inline Out load_a(uint8_t raw) {
  if (std::is_same<Out, uint8_t>::value) return static_cast<Out>(kU8 ? raw : raw ^ 0x80);
  if (kU8 && sizeof(Out) == 1) return static_cast<Out>(static_cast<int8_t>(raw ^ 0x80));
  if (kU8) return static_cast<Out>(raw);
  return static_cast<Out>(static_cast<int8_t>(raw));
}

// Groups [g, full) of one row and its last kc % KR values (src and out at
// the row's group 0; rows mr * KR values apart per group); returns their sum.
// KR and the unit-stride case are compile-time constants so that the inner
// loop has no division and vectorizes; this runs once per A block per call.
template <class Out, bool kU8, int KR, bool kUnit>
uint32_t pack_a_row_groups(const uint8_t* src, ptrdiff_t cs, size_t g, size_t full, size_t tail, int mr,
                           Out* out) {
  const ptrdiff_t step = kUnit ? 1 : cs;
  src += static_cast<ptrdiff_t>(g * KR) * step;
  out += g * mr * KR;
  uint32_t sum = 0;
  for (; g < full; ++g, src += KR * step, out += mr * KR)
    for (int r = 0; r < KR; ++r) {
      const Out v = load_a<Out, kU8>(src[r * step]);
      out[r] = v;
      sum += static_cast<uint32_t>(static_cast<int32_t>(v));
    }
  for (size_t r = 0; r < tail; ++r) {
    const Out v = load_a<Out, kU8>(src[r * step]);
    out[r] = v;
    sum += static_cast<uint32_t>(static_cast<int32_t>(v));
  }
  return sum;
}

inline void add_wrapping(int32_t& total, uint32_t sum) {
  total = static_cast<int32_t>(static_cast<uint32_t>(total) + sum);
}

template <class Out, bool kU8, int KR, bool kUnit>
void pack_a_rows(const uint8_t* const* row_ptr, int m, ptrdiff_t cs, size_t k0, size_t kc, int mr,
                 Out* dst, int32_t* rowsum) {
  const size_t groups = (kc + KR - 1) / KR, full = kc / KR;
  std::memset(dst, 0, groups * KR * mr * sizeof(Out));
  for (int i = 0; i < m; ++i)
    add_wrapping(rowsum[i], pack_a_row_groups<Out, kU8, KR, kUnit>(row_ptr[i] + static_cast<ptrdiff_t>(k0) * cs,
                                                                    cs, 0, full, kc - full * KR, mr, dst + i * KR));
}

// int16 out in pairs, unit stride (the exact AVX2 kernel's A): the packers'
// vector loop takes four rows at a time; when m % 4 != 0 the last four
// overlap the ones before (their values are written twice, the same, and
// each row's sum is added once). The loops above take what it leaves.
template <bool kU8>
void pack_a_int16_pairs(const Packers& packers, const uint8_t* const* row_ptr, int m, size_t k0, size_t kc,
                        int mr, int16_t* dst, int32_t* rowsum) {
  if (!packers.a_four_rows_int16_pairs || m < 4)
    return pack_a_rows<int16_t, kU8, 2, true>(row_ptr, m, 1, k0, kc, mr, dst, rowsum);
  const size_t groups = (kc + 1) / 2, full = kc / 2;
  std::memset(dst, 0, groups * 2 * mr * sizeof(int16_t));
  size_t g = 0;
  for (int done = 0; done < m; done += 4) {
    const int i = std::min(done, m - 4);
    const uint8_t* src[4] = {row_ptr[i] + k0, row_ptr[i + 1] + k0, row_ptr[i + 2] + k0, row_ptr[i + 3] + k0};
    uint32_t sums[4];
    g = packers.a_four_rows_int16_pairs(src, full, mr, kU8, dst + 2 * i, sums);
    for (int r = done - i; r < 4; ++r) add_wrapping(rowsum[i + r], sums[r]);
  }
  for (int i = 0; i < m; ++i)
    add_wrapping(rowsum[i], pack_a_row_groups<int16_t, kU8, 2, true>(row_ptr[i] + k0, 1, g, full, kc - 2 * full,
                                                                     mr, dst + 2 * i));
}

// Bytes out, unit stride, groups of 4 (the dot-product kernels): whole
// 32-bit words, and row sums taken on words (SWAR) or vectors, since the byte
// loop above does not vectorize at -O2 and dominated small calls. Signed
// stored bytes are summed as unsigned (v ^ 0x80 == v + 128), then corrected.
template <bool kStoreU8, bool kU8>
struct C4Bytes {
  static constexpr uint32_t flip = kStoreU8 != kU8 ? 0x80808080u : 0;
  static constexpr uint32_t to_unsigned = kStoreU8 ? 0 : 0x80808080u;

  // Groups [g, full) of one row and its tail; returns `sum` plus their sum.
  static uint32_t finish_row(const uint8_t* src, size_t g, size_t full, size_t tail, int mr,
                             uint8_t* out, uint32_t sum) {
    src += 4 * g;
    out += g * mr * 4;
    for (; g < full; ++g, src += 4, out += mr * 4) {
      uint32_t w;
      std::memcpy(&w, src, 4);
      w ^= flip;
      std::memcpy(out, &w, 4);
      const uint32_t u = w ^ to_unsigned;
      const uint32_t pairs = (u & 0x00FF00FFu) + ((u >> 8) & 0x00FF00FFu);
      sum += (pairs & 0xFFFFu) + (pairs >> 16);
    }
    for (size_t r = 0; r < tail; ++r) {
      out[r] = static_cast<uint8_t>(src[r] ^ static_cast<uint8_t>(flip));
      sum += out[r] ^ static_cast<uint8_t>(to_unsigned);
    }
    return sum;
  }

  static void rows(const Packers& packers, const uint8_t* const* row_ptr, int m, size_t k0, size_t kc, int mr,
                   uint8_t* dst, int32_t* rowsum) {
    const size_t groups = (kc + 3) / 4, full = kc / 4, tail = kc - 4 * full;
    std::memset(dst, 0, groups * 4 * mr);
    const uint32_t correction = kStoreU8 ? 0 : static_cast<uint32_t>(128 * kc);
    auto add_sum = [&](int i, uint32_t sum) { add_wrapping(rowsum[i], sum - correction); };
    int i = 0;
    for (; packers.a_four_rows_c4 && i + 4 <= m; i += 4) {
      const uint8_t* src[4] = {row_ptr[i] + k0, row_ptr[i + 1] + k0, row_ptr[i + 2] + k0,
                               row_ptr[i + 3] + k0};
      uint32_t sums[4];
      const size_t g = packers.a_four_rows_c4(src, full, mr, flip, to_unsigned, dst + 4 * i, sums);
      for (int r = 0; r < 4; ++r)
        add_sum(i + r, finish_row(src[r], g, full, tail, mr, dst + 4 * (i + r), sums[r]));
    }
    for (; i < m; ++i) add_sum(i, finish_row(row_ptr[i] + k0, 0, full, tail, mr, dst + 4 * i, 0));
  }
};

template <class Out, bool kU8, int KR>
void pack_a_kr(const Packers& packers, const uint8_t* const* row_ptr, int m, ptrdiff_t cs, size_t k0, size_t kc,
               int mr, void* dst, int32_t* rowsum) {
  Out* d = static_cast<Out*>(dst);
  if constexpr (sizeof(Out) == 1 && KR == 4) {
    if (cs == 1)
      return C4Bytes<std::is_same<Out, uint8_t>::value, kU8>::rows(
          packers, row_ptr, m, k0, kc, mr, reinterpret_cast<uint8_t*>(d), rowsum);
  }
  if constexpr (sizeof(Out) == 2 && KR == 2) {
    if (cs == 1) return pack_a_int16_pairs<kU8>(packers, row_ptr, m, k0, kc, mr, d, rowsum);
  }
  if (cs == 1) pack_a_rows<Out, kU8, KR, true>(row_ptr, m, cs, k0, kc, mr, d, rowsum);
  else pack_a_rows<Out, kU8, KR, false>(row_ptr, m, cs, k0, kc, mr, d, rowsum);
}

template <class Out, bool kU8>
void pack_a_typed(const GemmKernel& kern, const uint8_t* const* row_ptr, int m, ptrdiff_t cs, size_t k0,
                  size_t kc, void* dst, int32_t* rowsum) {
  const Packers& p = *kern.packers;
  switch (kern.kr) {
    case 1: return pack_a_kr<Out, kU8, 1>(p, row_ptr, m, cs, k0, kc, kern.mr, dst, rowsum);
    case 2: return pack_a_kr<Out, kU8, 2>(p, row_ptr, m, cs, k0, kc, kern.mr, dst, rowsum);
    case 4: return pack_a_kr<Out, kU8, 4>(p, row_ptr, m, cs, k0, kc, kern.mr, dst, rowsum);
    case 8: return pack_a_kr<Out, kU8, 8>(p, row_ptr, m, cs, k0, kc, kern.mr, dst, rowsum);
    default: throw std::invalid_argument("pack_a: unsupported kr");
  }
}

}  // namespace

void pack_a(const uint8_t* const* row_ptr, int m, ptrdiff_t col_stride, bool is_u8, size_t k0,
            size_t kc, const GemmKernel& kernel, void* dst, int32_t* rowsum) {
  switch (kernel.packed_a) {
    case PackedA::int16:
      if (is_u8) return pack_a_typed<int16_t, true>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
      return pack_a_typed<int16_t, false>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
    case PackedA::int8:
      if (is_u8) return pack_a_typed<int8_t, true>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
      return pack_a_typed<int8_t, false>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
    case PackedA::uint8:
      if (is_u8) return pack_a_typed<uint8_t, true>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
      return pack_a_typed<uint8_t, false>(kernel, row_ptr, m, col_stride, k0, kc, dst, rowsum);
  }
}

}  // namespace qgemm
