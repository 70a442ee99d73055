#include "qgemm/packed_b.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "qgemm/buffer_pool.h"
#include "qgemm/pack.h"

namespace qgemm {

void PanelFree::operator()(void* p) const {
  if (owner) return;  // borrowed: the owner goes with this deleter
  if (pool_capacity) pool_release(p, pool_capacity);
  else std::free(p);
}

// p.data for p.bytes(), 64-byte aligned: a size that aligned_alloc accepts
// (a multiple of the alignment) and never zero, even for an empty B.
void allocate_panels(PackedB& p) {
  const size_t bytes = (p.bytes() + 63) / 64 * 64 + 64;
  if (p.single_use && bytes >= kPoolMinBytes) {
    size_t capacity = 0;
    void* mem = pool_acquire(bytes, &capacity);
    p.data = std::unique_ptr<int8_t[], PanelFree>(static_cast<int8_t*>(mem), PanelFree{capacity, nullptr});
    return;
  }
  void* mem = std::aligned_alloc(64, bytes);
  if (!mem) throw std::bad_alloc();
  p.data.reset(static_cast<int8_t*>(mem));
}

PackedB packed_b_from_panels(size_t k, size_t n, int nr, int kr, bool is_u8, const int8_t* panels,
                             std::vector<int32_t> colsum, int max_abs, std::shared_ptr<const void> owner) {
  PackedB p;
  p.k = k;
  p.n = n;
  p.nr = nr;
  p.kr = kr;
  p.k_padded = (k + kr - 1) / kr * kr;
  p.panels = (n + nr - 1) / nr;
  p.is_u8 = is_u8;
  // The pointer is only read through (PackedB never writes its panels once made).
  p.data = std::unique_ptr<int8_t[], PanelFree>(const_cast<int8_t*>(panels), PanelFree{0, std::move(owner)});
  p.colsum = std::move(colsum);
  p.max_abs = max_abs;
  p.second = std::make_shared<SecondLayout>();
  return p;
}

namespace {

// B from K pairs to K quads, same panels (the exact AVX2 kernel's layout to
// the range-proven one's): a column's quad is its pairs from two consecutive
// groups, so this is a copy of 2-byte units, at memory speed.
PackedB pairs_to_quads(const PackedB& src, const Packers& packers) {
  PackedB dst;
  dst.k = src.k;
  dst.n = src.n;
  dst.nr = src.nr;
  dst.kr = 4;
  dst.k_padded = (src.k + 3) / 4 * 4;
  dst.panels = src.panels;
  dst.is_u8 = src.is_u8;
  dst.single_use = src.single_use;
  allocate_panels(dst);
  dst.colsum = src.colsum;
  dst.max_abs = src.max_abs;
  dst.second = std::make_shared<SecondLayout>();
  const size_t nr = src.nr, pairs = src.k_padded / 2, quads = dst.k_padded / 4;
  const std::vector<int8_t> zeros(2 * nr, 0);  // the pair group past an odd count
  for (size_t p = 0; p < src.panels; ++p) {
    const int8_t* s = src.panel(p);
    int8_t* d = dst.data.get() + p * dst.k_padded * nr;
    for (size_t q = 0; q < quads; ++q, d += 4 * nr) {
      const int8_t* even = s + 2 * q * 2 * nr;
      const int8_t* odd = 2 * q + 1 < pairs ? even + 2 * nr : zeros.data();
      size_t j = packers.pairs_to_quads ? packers.pairs_to_quads(even, odd, nr, d) : 0;
      for (; j < nr; ++j) {
        std::memcpy(d + 4 * j, even + 2 * j, 2);
        std::memcpy(d + 4 * j + 2, odd + 2 * j, 2);
      }
    }
  }
  return dst;
}

}  // namespace

const PackedB& packed_for(const PackedB& b, const GemmKernel& k) {
  if (b.nr == k.nr && b.kr == k.kr) return b;
  SecondLayout& second = *b.second;
  std::call_once(second.once, [&] {
    if (b.nr == k.nr && b.kr == 2 && k.kr == 4) {
      second.b = pairs_to_quads(b, *k.packers);
    } else {
      std::vector<uint8_t> plain(b.k * b.n);
      unpack_b(b, plain.data());
      const ByteMatrix m{plain.data(), b.k, b.n, static_cast<ptrdiff_t>(b.n), 1, b.is_u8};
      second.b = pack_b(m, k);
    }
    second.ready = true;
  });
  return second.b;
}

size_t packed_bytes(const PackedB& b) {
  size_t bytes = b.bytes() + b.colsum.size() * sizeof(int32_t);
  if (b.second && b.second->ready) bytes += packed_bytes(b.second->b);
  return bytes;
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

}  // namespace qgemm
