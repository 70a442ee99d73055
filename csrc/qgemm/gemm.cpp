#include "qgemm/gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "qgemm/thread_pool.h"

namespace qgemm {
namespace {

constexpr size_t kKc = 2048;  // K block (measured: fewer, longer blocks beat an L1-sized B slice)
constexpr int kMcTiles = 16;          // M block = 16 tiles: the packed A block stays in L2
constexpr size_t kMinParallelMacs = size_t(1) << 19;  // below this, threads cost more than they give

inline int32_t wrap_sub(int32_t x, int32_t y) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) - static_cast<uint32_t>(y));
}
inline int32_t wrap_mul(int32_t x, int32_t y) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) * static_cast<uint32_t>(y));
}

struct Plan {
  const GemmKernel& kern;
  const AOperand& a;
  const PackedB& b;
  const COperand& c;
  int32_t za_eff;                 // za in the stored domain of A
  std::vector<int32_t> col_term;  // [panels * nr] za_eff * colsum
  std::vector<int32_t> col_zb;    // [panels * nr] zb in the stored domain, empty if all zero
};

// Rows [r0, r1) x panels [p0, p1): pack A block by block and run the tiles.
void run_block(const Plan& P, size_t r0, size_t r1, size_t p0, size_t p1) {
  const GemmKernel& kern = P.kern;
  const size_t K = P.a.k, mr = kern.mr, nr = kern.nr;
  const size_t mc_max = mr * kMcTiles;
  const size_t kc_max = std::min(kKc, (K + kern.kr - 1) / kern.kr * kern.kr);
  thread_local std::vector<int64_t> a_buf;  // int64 for alignment
  const size_t a_block_bytes = mc_max * kc_max * kern.a_bytes;
  if (a_buf.size() * 8 < a_block_bytes) a_buf.resize(a_block_bytes / 8 + 1);
  uint8_t* a_pack = reinterpret_cast<uint8_t*>(a_buf.data());
  std::vector<int32_t> rowsum(mc_max), row_term(mc_max);
  std::vector<const uint8_t*> row_ptr(mc_max);

  for (size_t m0 = r0; m0 < r1; m0 += mc_max) {
    const size_t mc = std::min(mc_max, r1 - m0);
    const size_t tiles = (mc + mr - 1) / mr;
    for (size_t i = 0; i < mc; ++i) {
      const size_t r = m0 + i, bi = r / P.a.m, mi = r % P.a.m;
      row_ptr[i] = P.a.data + static_cast<ptrdiff_t>(bi) * P.a.batch_stride +
                   static_cast<ptrdiff_t>(mi) * P.a.row_stride;
    }
    std::fill(rowsum.begin(), rowsum.end(), 0);
    for (size_t k0 = 0; k0 < K; k0 += kKc) {
      const size_t kc = std::min(kKc, K - k0);
      const size_t kc_padded = (kc + kern.kr - 1) / kern.kr * kern.kr;
      const size_t tile_bytes = kc_padded * mr * kern.a_bytes;
      for (size_t t = 0; t < tiles; ++t) {
        const int m = static_cast<int>(std::min(mr, mc - t * mr));
        pack_a(row_ptr.data() + t * mr, m, P.a.col_stride, P.a.is_u8, k0, kc, kern.mr, kern.kr,
               kern.a_bytes, a_pack + t * tile_bytes, rowsum.data() + t * mr);
      }
      const bool final = k0 + kc == K;
      if (final)
        for (size_t i = 0; i < mc; ++i)
          row_term[i] = wrap_sub(rowsum[i], wrap_mul(static_cast<int32_t>(K), P.za_eff));
      const int flags = (k0 > 0 ? kGemmAccumulate : 0) | (final ? kGemmFinal : 0);
      for (size_t p = p0; p < p1; ++p) {
        const int8_t* b_slice = P.b.panel(p) + k0 * nr;
        const int n = static_cast<int>(std::min(nr, P.b.n - p * nr));
        GemmEpilogue ep{P.col_term.data() + p * nr,
                        P.col_zb.empty() ? nullptr : P.col_zb.data() + p * nr, nullptr};
        for (size_t t = 0; t < tiles; ++t) {
          const int m = static_cast<int>(std::min(mr, mc - t * mr));
          ep.row_term = row_term.data() + t * mr;
          int32_t* c_tile = P.c.data + (m0 + t * mr) * P.c.ldc + p * nr;
          kern.micro(kc_padded / kern.kr, a_pack + t * tile_bytes, b_slice, c_tile, P.c.ldc, m, n,
                     flags, &ep);
        }
      }
    }
  }
}

}  // namespace

void gemm_s32(const GemmKernel& kern, const AOperand& a, int32_t za, const PackedB& b,
              const int32_t* zb, bool zb_per_column, const COperand& c) {
  const size_t rows = a.batch * a.m, N = b.n, K = a.k;
  if (rows == 0 || N == 0) return;
  if (K == 0) {  // empty sums: the exact result is zero
    for (size_t r = 0; r < rows; ++r) std::memset(c.data + r * c.ldc, 0, N * sizeof(int32_t));
    return;
  }
  Plan P{kern, a, b, c, 0, {}, {}};
  // Stored-domain zero points: int8 A / B flip uint8 by -128 (see pack.h).
  P.za_eff = (kern.a_bytes == 1 && a.is_u8) ? za - 128 : za;
  const int32_t zb_shift = b.is_u8 ? 128 : 0;
  const size_t padded = b.panels * kern.nr;
  P.col_term.assign(padded, 0);
  for (size_t j = 0; j < N; ++j) P.col_term[j] = wrap_mul(P.za_eff, b.colsum[j]);
  bool any_zb = false;
  for (size_t j = 0; j < N && !any_zb; ++j) any_zb = (zb[zb_per_column ? j : 0] - zb_shift) != 0;
  if (any_zb) {
    P.col_zb.assign(padded, 0);
    for (size_t j = 0; j < N; ++j) P.col_zb[j] = zb[zb_per_column ? j : 0] - zb_shift;
  }

  // Split rows across threads when there are enough, else split panels.
  const size_t threads = static_cast<size_t>(get_num_threads());
  const size_t mr = kern.mr;
  size_t tasks = 1;
  if (threads > 1 && rows * N * K >= kMinParallelMacs) tasks = threads;
  const bool split_rows = rows >= tasks * 2 * mr;
  if (!split_rows) tasks = std::min(tasks, b.panels);
  parallel_for(tasks, [&](size_t t) {
    if (split_rows) {
      const size_t tiles = (rows + mr - 1) / mr;
      const size_t r0 = std::min(rows, tiles * t / tasks * mr);
      const size_t r1 = std::min(rows, tiles * (t + 1) / tasks * mr);
      if (r0 < r1) run_block(P, r0, r1, 0, b.panels);
    } else {
      const size_t p0 = b.panels * t / tasks, p1 = b.panels * (t + 1) / tasks;
      if (p0 < p1) run_block(P, 0, rows, p0, p1);
    }
  });
}

}  // namespace qgemm
