#include "qgemm/pack.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "qgemm/thread_pool.h"

namespace qgemm {

void AlignedFree::operator()(void* p) const { std::free(p); }

PackedB pack_b(const ByteMatrix& b, int nr, int kr) {
  PackedB p;
  p.k = b.rows;
  p.n = b.cols;
  p.nr = nr;
  p.kr = kr;
  p.k_padded = (b.rows + kr - 1) / kr * kr;
  p.panels = (b.cols + nr - 1) / nr;
  p.is_u8 = b.is_u8;
  const size_t bytes = p.bytes();
  void* mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (!mem) throw std::bad_alloc();
  p.data.reset(static_cast<int8_t*>(mem));
  p.colsum.assign(p.panels * nr, 0);
  const uint8_t flip = b.is_u8 ? 0x80 : 0;
  parallel_for(p.panels, [&](size_t panel) {
    int8_t* dst = p.data.get() + panel * p.k_padded * nr;
    std::memset(dst, 0, p.k_padded * nr);
    const size_t j0 = panel * nr;
    const int width = static_cast<int>(std::min<size_t>(nr, b.cols - j0));
    int32_t* sums = p.colsum.data() + j0;
    for (size_t k = 0; k < b.rows; ++k) {
      const uint8_t* src = b.data + static_cast<ptrdiff_t>(k) * b.row_stride +
                           static_cast<ptrdiff_t>(j0) * b.col_stride;
      int8_t* out = dst + (k / kr) * nr * kr + (k % kr);
      for (int j = 0; j < width; ++j) {
        const int8_t v = static_cast<int8_t>(src[j * b.col_stride] ^ flip);
        out[j * kr] = v;
        sums[j] = static_cast<int32_t>(static_cast<uint32_t>(sums[j]) + static_cast<uint32_t>(v));
      }
    }
  });
  return p;
}

void unpack_b(const PackedB& p, uint8_t* out) {
  const uint8_t flip = p.is_u8 ? 0x80 : 0;
  for (size_t k = 0; k < p.k; ++k)
    for (size_t j = 0; j < p.n; ++j) {
      const int8_t* panel = p.panel(j / p.nr);
      const int8_t v = panel[(k / p.kr) * p.nr * p.kr + (j % p.nr) * p.kr + (k % p.kr)];
      out[k * p.n + j] = static_cast<uint8_t>(v) ^ flip;
    }
}

namespace {

template <class Out, bool kU8, bool kFlip>
void pack_a_typed(const uint8_t* const* row_ptr, int m, ptrdiff_t cs, size_t k0, size_t kc, int mr,
                  int kr, Out* dst, int32_t* rowsum) {
  const size_t kc_padded = (kc + kr - 1) / kr * kr;
  std::memset(dst, 0, kc_padded * mr * sizeof(Out));
  for (int i = 0; i < m; ++i) {
    const uint8_t* src = row_ptr[i] + static_cast<ptrdiff_t>(k0) * cs;
    Out* out = dst + i * kr;
    int32_t sum = 0;
    for (size_t k = 0; k < kc; ++k) {
      const uint8_t raw = src[static_cast<ptrdiff_t>(k) * cs];
      Out v;
      if (kFlip) v = static_cast<Out>(static_cast<int8_t>(raw ^ 0x80));
      else if (kU8) v = static_cast<Out>(raw);
      else v = static_cast<Out>(static_cast<int8_t>(raw));
      out[(k / kr) * mr * kr + (k % kr)] = v;
      sum = static_cast<int32_t>(static_cast<uint32_t>(sum) + static_cast<uint32_t>(v));
    }
    rowsum[i] = static_cast<int32_t>(static_cast<uint32_t>(rowsum[i]) + static_cast<uint32_t>(sum));
  }
}

}  // namespace

void pack_a(const uint8_t* const* row_ptr, int m, ptrdiff_t col_stride, bool is_u8, size_t k0,
            size_t kc, int mr, int kr, int a_bytes, void* dst, int32_t* rowsum) {
  if (a_bytes == 2) {
    int16_t* d = static_cast<int16_t*>(dst);
    if (is_u8) pack_a_typed<int16_t, true, false>(row_ptr, m, col_stride, k0, kc, mr, kr, d, rowsum);
    else pack_a_typed<int16_t, false, false>(row_ptr, m, col_stride, k0, kc, mr, kr, d, rowsum);
  } else {
    int8_t* d = static_cast<int8_t*>(dst);
    if (is_u8) pack_a_typed<int8_t, true, true>(row_ptr, m, col_stride, k0, kc, mr, kr, d, rowsum);
    else pack_a_typed<int8_t, false, false>(row_ptr, m, col_stride, k0, kc, mr, kr, d, rowsum);
  }
}

}  // namespace qgemm
