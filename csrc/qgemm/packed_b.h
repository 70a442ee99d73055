// Packed B: its storage (panels, column sums, max|B|, where the panels
// come from and go back to) and the cache of its second layout, made on a
// range-proven kernel's first use. The layouts are in pack.h.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "qgemm/kernels.h"

namespace qgemm {

// Frees packed panels: back to the buffer pool if they came from it
// (pool_capacity > 0), else with free(). Panels borrowed from an owner (a
// memory-mapped file) are not freed: the owner is kept alive as long as the
// panels are held, and released with them.
struct PanelFree {
  size_t pool_capacity = 0;
  std::shared_ptr<const void> owner;
  void operator()(void* p) const;
};

// What packed B stores for every kernel: int8, uint8 flipped (see pack.h).
// Files of packed panels name it, so that a file written under another
// convention is never misread.
constexpr const char* kPackedBStored = "s8,u8^0x80";

struct SecondLayout;

struct PackedB {
  size_t k = 0, n = 0;  // logical shape of B
  int nr = 0, kr = 0;
  size_t k_padded = 0;  // k rounded up to kr
  size_t panels = 0;    // ceil(n / nr)
  bool is_u8 = false;   // the original dtype (stored values are flipped if so)
  std::unique_ptr<int8_t[], PanelFree> data;  // panels * k_padded * nr bytes, 64-byte aligned
  std::vector<int32_t> colsum;                  // panels * nr, sums of stored values
  int max_abs = 0;  // largest |stored value| (0..128): what range proofs need of B
  std::shared_ptr<SecondLayout> second;  // B in a second kernel's layout, made on first use
  bool single_use = false;  // packed for one call (a plain B to matmul): see choose_kernel

  size_t bytes() const { return panels * k_padded * static_cast<size_t>(nr); }
  const int8_t* panel(size_t p) const { return data.get() + p * k_padded * nr; }
};

// B in another kernel's layout (a range-proven kernel's, see kernels.h),
// packed from the first on first use and then kept with it.
struct SecondLayout {
  std::once_flag once;
  std::atomic<bool> ready{false};
  PackedB b;
};

// B from panels already in the layout above (for tile nr, groups of kr),
// with their column sums and max|stored value|, as pack_b made them: the
// PackedB borrows `panels` (64-byte aligned, bytes() long) and keeps `owner`
// alive while it holds them. Nothing is copied or checked here; the caller
// (the reader of a packed file) has checked sizes and checksums.
PackedB packed_b_from_panels(size_t k, size_t n, int nr, int kr, bool is_u8, const int8_t* panels,
                             std::vector<int32_t> colsum, int max_abs, std::shared_ptr<const void> owner);
// b itself if it is packed for kernel k's tile, else its second layout for
// k, packed on the first call (thread-safe; needs b to be from pack_b).
const PackedB& packed_for(const PackedB& b, const GemmKernel& k);
// Bytes held by b, its second layout included once made.
size_t packed_bytes(const PackedB& b);
// Writes B back in its original dtype, C order, into out[k * n].
void unpack_b(const PackedB& b, uint8_t* out);

// p.data for p.bytes() (p's shape set), 64-byte aligned: from the buffer
// pool for a large single-use B, else from the system.
void allocate_panels(PackedB& p);

}  // namespace qgemm
