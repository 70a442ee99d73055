#include "qgemm/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "qgemm/buffer_pool.h"
#include "qgemm/next_source_lines.h"
#include "qgemm/output_stage_scalar.h"
#include "qgemm/thread_pool.h"

namespace qgemm {
namespace {

constexpr size_t kKc = 2048;  // K block (measured: fewer, longer blocks beat an L1-sized B slice)
constexpr size_t kMcBytes = 256 << 10;  // M block: the packed A block (mc x kc) stays in L2
constexpr size_t kMcMaxTiles = 16;
constexpr size_t kMinParallelMacs = size_t(1) << 19;  // below this, threads cost more than they give
constexpr size_t kTasksPerThread = 4;
constexpr size_t kSingleUseMinRows = 512;  // see choose_kernel
// A packed whole for column tasks (WholeA): at most this large, and chosen
// over a row split when B is this many times larger (measured at M x 4096 x
// 4096 on 2 threads: +17-22% for M = 128 to 512, +5% at 1024, where A is 4 MiB).
constexpr size_t kWholeAMaxBytes = size_t(4) << 20;
constexpr size_t kWholeAToB = 4;
// An output this large is written from L3 or memory: the tiles fetch their
// rows of C ahead (kGemmPrefetchOutput). Measured on 2 threads, AVX-512 VNNI:
// 1024^3 +5-13%, 4096x1024x1024 +6-9%, 128x4096x4096 (2 MiB) +1-5%; smaller
// outputs, in cache, lost up to 7% (512x64x512, 1 MiB; 256^3 2-5%).
constexpr size_t kPrefetchOutputBytes = size_t(2) << 20;

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// A per-column array padded with zeros to whole panels (empty if src is null).
template <class T>
std::vector<T> padded(const T* src, size_t n, size_t padded_n) {
  std::vector<T> v;
  if (src) {
    v.assign(padded_n, T(0));
    std::copy(src, src + n, v.begin());
  }
  return v;
}

template <class T>
const T* at_or_null(const std::vector<T>& v, size_t offset) {
  return v.empty() ? nullptr : v.data() + offset;
}

// The output stage's per-column arrays padded to whole panels, and the
// stage positioned at one tile (EpilogueParams::out).
struct PaddedColumns {
  std::vector<float> scale, offset;
  std::vector<int32_t> multiplier, shift;
  PaddedColumns() = default;
  PaddedColumns(const OutputStage& o, size_t n, size_t padded_n)
      : scale(padded(o.scale, n, padded_n)),
        offset(padded(o.offset, n, padded_n)),
        multiplier(padded(o.multiplier, n, padded_n)),
        shift(padded(o.shift, n, padded_n)) {}
  // The stage for the tile at row r0, column j0.
  OutputStage at(const OutputStage& o, size_t r0, size_t j0) const {
    OutputStage t = o;
    t.bias = nullptr;  // folded into col_term
    t.scale = at_or_null(scale, j0);
    t.offset = at_or_null(offset, j0);
    t.multiplier = at_or_null(multiplier, j0);
    t.shift = at_or_null(shift, j0);
    t.row_scale = o.row_scale ? o.row_scale + r0 : nullptr;
    return t;
  }
};

struct Plan {
  const GemmKernel& kern;
  const AOperand& a;
  const PackedB& b;
  const GemmOutput& out;
  size_t out_bytes;               // bytes per output element
  size_t kc_max;                  // K block (all of K unless the output is int32)
  size_t mc_max;                  // M block: rows of A packed at a time
  int32_t za_stored;              // za in the stored domain of A
  std::vector<int32_t> za_rows;   // per-row za in the stored domain (empty: per tensor)
  // Per-column epilogue data, padded to [panels * nr]:
  std::vector<int32_t> col_term;  // za_stored * colsum - bias
  std::vector<int32_t> col_zb;    // zb in the stored domain, empty if all zero
  PaddedColumns cols;             // scale, offset, multiplier, shift
  // A packed whole once for column tasks, or read in place (see WholeA).
  const class WholeA* a_whole = nullptr;
  int prefetch_output = 0;  // kGemmPrefetchOutput for a large C, else 0
};

// za * colsum - bias over n columns (bias may be null): EpilogueParams::col_term.
void col_terms(int32_t za, const int32_t* colsum, const int32_t* bias, size_t n, int32_t* term) {
  for (size_t j = 0; j < n; ++j) term[j] = wrap_sub(wrap_mul(za, colsum[j]), bias ? bias[j] : 0);
}

int prefetch_output_flag(size_t rows, size_t n, size_t out_bytes) {
  return rows * n * out_bytes >= kPrefetchOutputBytes ? kGemmPrefetchOutput : 0;
}

// The plan's zero points in the stored domains (bytes flipped by ^0x80 move
// by 128, see pack.h) and its per-column output parameters: all but
// col_term, which needs B's column sums.
void set_zero_points(Plan& plan, int32_t za, const int32_t* zb, bool zb_per_column, size_t padded_n) {
  const GemmKernel& kern = plan.kern;
  const size_t rows = plan.a.batch * plan.a.m, N = plan.b.n;
  const int32_t za_shift = stored_zero_point_shift(kern.packed_a, plan.a.is_u8);
  plan.za_stored = za + za_shift;
  if (plan.a.row_zero_point) {  // the za * colsum term is then per element (EpilogueParams::row_za)
    plan.za_stored = 0;
    plan.za_rows.resize(rows);
    for (size_t r = 0; r < rows; ++r) plan.za_rows[r] = plan.a.row_zero_point[r] + za_shift;
  }
  const int32_t zb_shift = plan.b.is_u8 ? 128 : 0;
  bool any_zb = false;
  for (size_t j = 0; j < N && !any_zb; ++j) any_zb = (zb[zb_per_column ? j : 0] - zb_shift) != 0;
  if (any_zb) {
    plan.col_zb.assign(padded_n, 0);
    for (size_t j = 0; j < N; ++j) plan.col_zb[j] = zb[zb_per_column ? j : 0] - zb_shift;
  }
  plan.cols = PaddedColumns(plan.out, N, padded_n);
}

// Packs rows [m0, m0 + mc) x columns [k0, k0 + kc) of A, tile by tile, into
// dst and adds the rows' sums of stored values into rowsum[0..mc).
void pack_a_block(const Plan& plan, size_t m0, size_t mc, size_t k0, size_t kc, uint8_t* dst,
                  int32_t* rowsum) {
  const GemmKernel& kern = plan.kern;
  const size_t mr = kern.mr;
  const size_t tile_bytes = (kc + kern.kr - 1) / kern.kr * kern.kr * mr * packed_a_bytes(kern.packed_a);
  const uint8_t* row_ptr[64];  // one tile's rows (every kernel's mr is far below 64)
  for (size_t t = 0; t * mr < mc; ++t) {
    const int m = static_cast<int>(std::min(mr, mc - t * mr));
    for (int i = 0; i < m; ++i) {
      const size_t r = m0 + t * mr + i, bi = r / plan.a.m, mi = r % plan.a.m;
      row_ptr[i] = plan.a.data + static_cast<ptrdiff_t>(bi) * plan.a.batch_stride +
                   static_cast<ptrdiff_t>(mi) * plan.a.row_stride;
    }
    pack_a(row_ptr, m, plan.a.col_stride, plan.a.is_u8, k0, kc, kern, dst + t * tile_bytes, rowsum + t * mr);
  }
}

// rowsum(A) - K * za per row (rows m0 ..): the row term of the zero-point algebra.
void row_terms(const Plan& plan, const int32_t* rowsum, size_t m0, size_t mc, int32_t* row_term) {
  const int32_t k = static_cast<int32_t>(plan.a.k);
  for (size_t i = 0; i < mc; ++i)
    row_term[i] = wrap_sub(rowsum[i], wrap_mul(k, plan.za_rows.empty() ? plan.za_stored : plan.za_rows[m0 + i]));
}

// A for every task of a call: packed whole, once, for tasks that each need
// all of it (the column splits): every row tile of every K block (of
// plan.kc_max rows; K block k0's tiles start at k0 * rows_padded values),
// with the row terms.
// The tasks pack it together: each claims chunks of row tiles as it starts
// and packs them, then waits for the chunks others claimed. One parallel
// region, not two: on a busy machine a second thread woken twice per call
// joined too late for small calls.
//
// Where the kernel can read A in place (GemmKernel::micro_in_place: A of
// unit column stride, int8 flipped as it is read, K a multiple of kr, rows
// equally spaced) and no zero point of B needs A's row sums, nothing is
// packed at all, whatever the split.
class WholeA {
 public:
  // Bytes of A packed whole; rowsum and row_term need rows_padded int32 each.
  static size_t bytes(const GemmKernel& kern, size_t rows, size_t k) {
    return round_up(rows, kern.mr) * round_up(k, kern.kr) * packed_a_bytes(kern.packed_a);
  }
  WholeA(const Plan& plan, size_t chunks, uint8_t* data, int32_t* rowsum, int32_t* row_term)
      : plan_(plan), chunks_(chunks), in_place_(readable_in_place(plan)),
        k_row_bytes_(round_up(rows(), plan.kern.mr) * packed_a_bytes(plan.kern.packed_a)), data_(data),
        rowsum_(rowsum), row_term_(row_term), state_(in_place_ ? nullptr : new std::atomic<int>[chunks]) {
    if (!in_place_)
      for (size_t c = 0; c < chunks; ++c) state_[c].store(0, std::memory_order_relaxed);
  }
  // Called by every task before it reads A.
  void ensure_packed() const {
    if (in_place_) return;
    for (size_t c = 0; c < chunks_; ++c) {
      int expected = 0;
      if (state_[c].load(std::memory_order_relaxed) == 0 &&
          state_[c].compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        pack_chunk(c);
        state_[c].store(2, std::memory_order_release);
      }
    }
    // Every chunk is claimed now, by a thread that packs it before it waits.
    for (size_t c = 0; c < chunks_; ++c)
      while (state_[c].load(std::memory_order_acquire) != 2) std::this_thread::yield();
  }
  // The kernel on m rows from row tile t (rows t * mr ..; m > mr: the tiles
  // after it too) of the K block that starts at row k0 of B, over k_groups
  // groups of it.
  void tile(size_t k0, size_t t, size_t k_groups, const int8_t* b, void* c, size_t ldc, int m, int n, int flags,
            const EpilogueParams* ep) const {
    const GemmKernel& kern = plan_.kern;
    if (in_place_) {
      const AOperand& a = plan_.a;
      kern.micro_in_place(k_groups, a.data + static_cast<ptrdiff_t>(t * kern.mr) * a.row_stride + k0, a.row_stride,
                          !a.is_u8, b, c, ldc, m, n, flags, ep);
    } else {
      const size_t tile_bytes = k_groups * kern.kr * kern.mr * packed_a_bytes(kern.packed_a);
      kern.micro(k_groups, block_data(k0) + t * tile_bytes, b, c, ldc, m, n, flags, ep);
    }
  }
  const int32_t* row_term() const { return row_term_; }
  static bool readable_in_place(const Plan& plan) {
    const AOperand& a = plan.a;
    const bool rows_equally_spaced = a.batch == 1 || a.batch_stride == static_cast<ptrdiff_t>(a.m) * a.row_stride;
    return plan.kern.micro_in_place && a.col_stride == 1 && a.k % plan.kern.kr == 0 &&
           rows_equally_spaced && plan.col_zb.empty();
  }

 private:
  uint8_t* block_data(size_t k0) const { return data_ + k0 * k_row_bytes_; }
  size_t rows() const { return plan_.a.batch * plan_.a.m; }
  void pack_chunk(size_t c) const {
    const GemmKernel& kern = plan_.kern;
    const size_t K = plan_.a.k, mr = kern.mr, kc = plan_.kc_max, row_tiles = (rows() + mr - 1) / mr;
    const size_t t0 = row_tiles * c / chunks_, t1 = row_tiles * (c + 1) / chunks_;
    if (t0 == t1) return;
    const size_t m0 = t0 * mr, mc = std::min(rows(), t1 * mr) - m0;
    std::fill(rowsum_ + m0, rowsum_ + m0 + mc, 0);
    for (size_t k0 = 0; k0 < K; k0 += kc) {
      const size_t kcb = std::min(kc, K - k0);
      uint8_t* dst = block_data(k0) + t0 * round_up(kcb, kern.kr) * mr * packed_a_bytes(kern.packed_a);
      pack_a_block(plan_, m0, mc, k0, kcb, dst, rowsum_ + m0);
    }
    row_terms(plan_, rowsum_ + m0, m0, mc, row_term_ + m0);
  }

  const Plan& plan_;
  const size_t chunks_;
  const bool in_place_;
  const size_t k_row_bytes_;  // one column of K over the padded rows (no division per tile)
  uint8_t* const data_;
  int32_t* const rowsum_;
  int32_t* const row_term_;
  const std::unique_ptr<std::atomic<int>[]> state_;  // per chunk: 0 free, 1 packing, 2 packed (none in place)
};

// One thread's scratch in run_block: A's packed block, its row sums and row
// terms. Allocated by gemm() before any task runs.
struct BlockScratch {
  uint8_t* a_pack;
  int32_t* rowsum;
  int32_t* row_term;
};

// Rows [r0, r1) x panels [p0, p1): pack A block by block (or take it from
// plan.a_whole: packed already, or in place) and run the tiles.
void run_block(const Plan& plan, const BlockScratch& s, size_t r0, size_t r1, size_t p0, size_t p1) {
  const GemmKernel& kern = plan.kern;
  const size_t K = plan.a.k, mr = kern.mr, nr = kern.nr;
  const WholeA* whole = plan.a_whole;
  const size_t kc_max = plan.kc_max, mc_max = plan.mc_max;

  for (size_t m0 = r0; m0 < r1; m0 += mc_max) {
    const size_t mc = std::min(mc_max, r1 - m0);
    if (!whole) std::fill(s.rowsum, s.rowsum + mc_max, 0);
    // One pass at least: with K == 0 the epilogue still runs, on empty sums.
    for (size_t k0 = 0;;) {
      const size_t kc = std::min(kc_max, K - k0);
      const size_t kc_padded = (kc + kern.kr - 1) / kern.kr * kern.kr;
      const bool final = k0 + kc == K;
      if (!whole) {
        pack_a_block(plan, m0, mc, k0, kc, s.a_pack, s.rowsum);
        if (final) row_terms(plan, s.rowsum, m0, mc, s.row_term);
      }
      const int32_t* rt = whole ? whole->row_term() + m0 : s.row_term;
      const int flags = (k0 > 0 ? kGemmAccumulate : 0) | (final ? kGemmFinal : 0) | plan.prefetch_output;
      for (size_t p = p0; p < p1; ++p) {
        const int8_t* b_slice = plan.b.panel(p) + k0 * nr;
        const int n = static_cast<int>(std::min(nr, plan.b.n - p * nr));
        EpilogueParams ep{};
        ep.col_term = plan.col_term.data() + p * nr;
        ep.col_zb = at_or_null(plan.col_zb, p * nr);
        ep.col_sum = plan.za_rows.empty() ? nullptr : plan.b.colsum.data() + p * nr;
        ep.out = plan.cols.at(plan.out, m0, p * nr);
        ep.row_term = rt;
        ep.row_za = at_or_null(plan.za_rows, m0);
        // Every row tile of the block in one call (GemmMicroFn: m > mr).
        uint8_t* c_block = static_cast<uint8_t*>(plan.out.data) + (m0 * plan.out.ldc + p * nr) * plan.out_bytes;
        const int m = static_cast<int>(mc);
        if (whole)
          whole->tile(k0, m0 / mr, kc_padded / kern.kr, b_slice, c_block, plan.out.ldc, m, n, flags, &ep);
        else
          kern.micro(kc_padded / kern.kr, s.a_pack, b_slice, c_block, plan.out.ldc, m, n, flags, &ep);
      }
      if (final) break;
      k0 += kc;
    }
  }
}

// True if every element of A, in the unsigned stored domain (uint8 as is,
// int8 flipped by ^0x80), is at most limit. Stops at the first row past it.
bool a_within(const AOperand& a, int limit, const Packers& packers) {
  const uint8_t flip = a.is_u8 ? 0 : 0x80;
  const auto max_byte = packers.max_byte;
  for (size_t bi = 0; bi < a.batch; ++bi)
    for (size_t i = 0; i < a.m; ++i) {
      const uint8_t* row = a.data + static_cast<ptrdiff_t>(bi) * a.batch_stride +
                           static_cast<ptrdiff_t>(i) * a.row_stride;
      int hi = 0;
      size_t k = 0;
      if (a.col_stride == 1 && max_byte) {
        k = a.k / 16 * 16;
        hi = max_byte(row, k, flip);
      }
      for (; k < a.k; ++k) hi = std::max<int>(hi, row[static_cast<ptrdiff_t>(k) * a.col_stride] ^ flip);
      if (hi > limit) return false;
    }
  return true;
}

// A's stored values are at most limit: by the caller's bound (max_stored), or read.
bool a_at_most(const AOperand& a, int limit, const Packers& packers) {
  return a.max_stored >= 0 ? a.max_stored <= limit : a_within(a, limit, packers);
}

}  // namespace

const GemmKernel& choose_kernel(const GemmKernel& kern, const AOperand& a, const PackedB& b) {
  const GemmKernel* fast = kern.proven_range;
  if (!fast) return kern;
  // B's second layout costs about what packing it did (mostly page faults on
  // new memory); packed for one call, B repays that only on many rows
  // (measured break-even ~500 rows at 1024 x 1024 on AVX2).
  if (b.single_use && a.batch * a.m < kSingleUseMinRows) return kern;
  // |a0*b0 + a1*b1| <= 2 * max(A) * max|B| must fit int16.
  const int a_limit = b.max_abs == 0 ? 255 : 32767 / (2 * b.max_abs);
  if (a_limit >= 255) return *fast;
  return a_at_most(a, a_limit, *fast->packers) ? *fast : kern;
}

const GemmKernel& plain_b_kernel(const GemmKernel& kern, const AOperand& a) {
  const GemmKernel* fast = kern.proven_range;
  if (!fast) return kern;
  constexpr int kAnyBLimit = 32767 / (2 * 128);  // |stored B| <= 128 for every B
  return a_at_most(a, kAnyBLimit, *fast->packers) ? *fast : kern;
}

void gemm(const GemmKernel& base_kernel, const AOperand& a, int32_t za, const PackedB& b_base,
          const int32_t* zb, bool zb_per_column, const GemmOutput& out) {
  const size_t rows = a.batch * a.m, N = b_base.n, K = a.k;
  if (rows == 0 || N == 0) return;
  const GemmKernel& kern = choose_kernel(base_kernel, a, b_base);
  const PackedB& b = packed_for(b_base, kern);
  const size_t padded_n = b.panels * kern.nr;
  Plan plan{kern, a, b, out, output_element_bytes(out.kind), 0, 0, 0, {}, {}, {}, {}};
  // K blocks keep partial sums in C, which only an int32 output can hold.
  const size_t k_rounded = (K + kern.kr - 1) / kern.kr * kern.kr;
  // Few rows (GEMV-like): no K blocks either, so that each thread streams its
  // part of B once, front to back.
  const bool few_rows = rows <= static_cast<size_t>(2 * kern.mr);
  plan.kc_max = out.kind == OutputKind::int32 && !few_rows ? std::min(kKc, k_rounded) : k_rounded;
  plan.mc_max = kern.mr * std::max<size_t>(1, std::min(kMcMaxTiles, kMcBytes / std::max<size_t>(
                                                  1, kern.mr * plan.kc_max * packed_a_bytes(kern.packed_a))));
  set_zero_points(plan, za, zb, zb_per_column, padded_n);
  plan.prefetch_output = prefetch_output_flag(rows, N, plan.out_bytes);
  plan.col_term.assign(padded_n, 0);
  col_terms(plan.za_stored, b.colsum.data(), out.bias, N, plan.col_term.data());
  // Split rows across threads when there are enough, else split panels. Up
  // to kTasksPerThread tasks per thread, taken dynamically: a thread that is
  // descheduled (a busy machine) then delays the call by one small task, not
  // by its whole share. Panels also when A is small next to B: each row task
  // would stream all of B, while a panel task reads A packed whole, once,
  // from cache (see kWholeAMaxBytes).
  const size_t threads = static_cast<size_t>(usable_threads());
  const size_t mr = kern.mr, row_tiles = (rows + mr - 1) / mr;
  const size_t a_whole_bytes = WholeA::bytes(kern, rows, K);
  const size_t b_bytes = b.panels * kern.nr * b.k_padded;
  size_t tasks = 1;
  bool split_rows = false;
  if (threads > 1 && rows * N * K >= kMinParallelMacs) {
    const bool a_small = a_whole_bytes <= kWholeAMaxBytes && a_whole_bytes * kWholeAToB <= b_bytes;
    split_rows = row_tiles >= threads * 2 && !a_small;
    tasks = std::min(threads * kTasksPerThread, split_rows ? row_tiles / 2 : b.panels);
  }
  // A packed whole for column tasks, or read in place by any split.
  const bool in_place = WholeA::readable_in_place(plan);
  const bool a_once = in_place || (tasks > 1 && !split_rows && a_whole_bytes <= kWholeAMaxBytes);
  // All scratch is allocated here: a failed allocation raises in the caller,
  // never inside a task. A packed whole, or one block of it per thread.
  const size_t slots = std::min<size_t>(threads, tasks);
  const size_t rows_bytes = round_up(row_tiles * mr * sizeof(int32_t), 64);
  const size_t whole_data_bytes = in_place ? 0 : round_up(a_whole_bytes, 64);
  const size_t whole_bytes = a_once ? whole_data_bytes + 2 * rows_bytes : 0;
  const size_t a_bytes = a_once ? 0 : round_up(plan.mc_max * plan.kc_max * packed_a_bytes(kern.packed_a), 64);
  const size_t sums_bytes = a_once ? 0 : round_up(plan.mc_max * sizeof(int32_t), 64);
  const size_t slot_bytes = a_bytes + 2 * sums_bytes;
  const ScratchBuffer scratch(whole_bytes + slots * slot_bytes);
  uint8_t* const whole_data = scratch.as<uint8_t>();
  std::unique_ptr<WholeA> whole;
  if (a_once) {
    int32_t* rowsum = reinterpret_cast<int32_t*>(whole_data + whole_data_bytes);
    whole.reset(new WholeA(plan, std::min(slots, row_tiles), whole_data, rowsum,
                           reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(rowsum) + rows_bytes)));
    plan.a_whole = whole.get();
  }
  parallel_for_ranges(tasks, slots, [&](size_t t, size_t slot) {
    uint8_t* base = whole_data + whole_bytes + slot * slot_bytes;
    const BlockScratch s{base, reinterpret_cast<int32_t*>(base + a_bytes),
                         reinterpret_cast<int32_t*>(base + a_bytes + sums_bytes)};
    if (whole) whole->ensure_packed();
    if (split_rows) {
      const size_t r0 = std::min(rows, row_tiles * t / tasks * mr);
      const size_t r1 = std::min(rows, row_tiles * (t + 1) / tasks * mr);
      if (r0 < r1) run_block(plan, s, r0, r1, 0, b.panels);
    } else {
      const size_t p0 = b.panels * t / tasks, p1 = b.panels * (t + 1) / tasks;
      if (p0 < p1) run_block(plan, s, 0, rows, p0, p1);
    }
  });
}

namespace {

// A plain B (gemm_plain_b): each task owns kPlainNc columns and walks them
// kPlainKc rows at a time, panel by panel: it packs one panel of the block
// (or a few narrow ones: plain_b_panels_together) into its own scratch
// (L1-sized) and at once runs every row of A on it, so
// that the memory-bound packing and the compute-bound tiles overlap and B is
// never written to memory whole. Neighbouring panels read the rest of the
// source's cache lines while they are still cached (a strip of 64 columns
// over all of K instead touched one page per row and measured slower), and
// the tiles prefetch the next line (NextSourceLines). Wide tasks read long
// runs of each row: 1024 columns against 256 measured 1.2x at 16x4096x4096
// on 2 threads, with the prefetches; narrower ones keep 2 tasks per thread.
constexpr size_t kPlainKc = 512;
constexpr size_t kPlainNc = 1024;
// B of this many bytes or more, with this many rows or more, is packed whole
// (measured on 2 threads with the prefetches, GOPS plain/whole: 128x4096x4096
// 1.13-1.16, 128x1024x4096 1.08-1.13, 256x4096x4096 0.99-1.01, 512x4096x4096
// 0.86, 1024^3 0.91).
constexpr size_t kPlainMaxBBytes = size_t(1) << 20;
constexpr size_t kPlainManyRows = 256;
constexpr size_t kPlainMaxPartials = size_t(1) << 20;  // a slot's int32 partials (outputs other than int32)

struct PlainBScratch {
  int8_t* b_panels;   // the panels packed together (plain_b_panels_together), of one K block: [kc][nr] each
  int32_t* colsum;    // [nc] column sums of stored values, over the K blocks so far
  int32_t* col_term;  // [nc] za * colsum - bias, for the last K block
  int32_t* partials;  // [rows][nc] int32 sums across K blocks, when C cannot hold them (else null)
};

// Columns [n0, n0 + ncols) of C, all rows: B packed here panel by panel, A
// packed whole already.
void run_plain_b_columns(const Plan& plan, const ByteMatrix& bm, const WholeA& whole, const PlainBScratch& s,
                         size_t n0, size_t ncols, size_t nc) {
  const GemmKernel& kern = plan.kern;
  const size_t K = plan.a.k, N = bm.cols, mr = kern.mr, nr = kern.nr, kr = kern.kr;
  const size_t rows = plan.a.batch * plan.a.m, row_tiles = (rows + mr - 1) / mr;
  const size_t panels = (ncols + nr - 1) / nr;
  const Packers& packers = *kern.packers;
  std::fill(s.colsum, s.colsum + nc, 0);
  std::fill(s.col_term, s.col_term + nc, 0);
  static const int32_t no_term[64] = {};  // every kernel's nr is at most 64
  EpilogueParams task_ep{};  // the fields every panel shares; each panel's go on a copy
  task_ep.row_term = whole.row_term();
  task_ep.row_za = at_or_null(plan.za_rows, 0);
  // za * colsum - bias is 0 when both are (a uint8 A with zero point 0): col_term stays as filled.
  const bool any_col_term = plan.za_stored != 0 || plan.out.bias;
  for (size_t k0 = 0;;) {  // one pass at least: with K == 0 the epilogue still runs
    const size_t kc = std::min(plan.kc_max, K - k0), kc_padded = round_up(kc, kr);
    const bool final = k0 + kc == K;
    const ByteMatrix rows_k{bm.data + static_cast<ptrdiff_t>(k0) * bm.row_stride, kc, N, bm.row_stride,
                            bm.col_stride, bm.is_u8};
    const int flags = (k0 > 0 ? kGemmAccumulate : 0) | (final ? kGemmFinal : 0);
    const size_t together = plain_b_panels_together(packers, nr), panel_bytes = kc_padded * nr;
    for (size_t q = 0; q < panels; ++q) {
      // Pack the panel (with the next ones, `together`), then run every row
      // on it at once: the memory-bound packing and the compute-bound tiles
      // overlap, and the panel is in L1.
      const size_t j0 = n0 + q * nr;
      const int n = static_cast<int>(std::min(nr, N - j0));
      if (q % together == 0) {
        const size_t count = std::min(together, panels - q);
        const ByteMatrix from_j0{rows_k.data + static_cast<ptrdiff_t>(j0) * rows_k.col_stride, kc,
                                 std::min(count * nr, N - j0), rows_k.row_stride, rows_k.col_stride, rows_k.is_u8};
        int max_abs = 0;  // unused: a range-proven kernel runs here on A's range alone (plain_b_kernel)
        pack_b_panels_rows(from_j0, 0, count, 0, kc, static_cast<int>(nr), static_cast<int>(kr), packers,
                           /*stream=*/false, s.b_panels, panel_bytes, s.colsum + q * nr, &max_abs);
      }
      const int8_t* b_panel = s.b_panels + q % together * panel_bytes;
      if (final && any_col_term)
        col_terms(plan.za_stored, s.colsum + q * nr, plan.out.bias ? plan.out.bias + j0 : nullptr,
                  static_cast<size_t>(n), s.col_term + q * nr);
      EpilogueParams ep = task_ep;
      ep.col_term = s.col_term + q * nr;
      ep.col_zb = at_or_null(plan.col_zb, j0);
      ep.col_sum = plan.za_rows.empty() ? nullptr : s.colsum + q * nr;
      ep.out = plan.cols.at(plan.out, 0, j0);
      ep.prefetch = NextSourceLines(rows_k, n0, ncols, q, row_tiles, nr, kc_padded / kr).for_panel();
      // Every row on the panel in one call (GemmMicroFn: m > mr).
      uint8_t* c = static_cast<uint8_t*>(plan.out.data) + j0 * plan.out_bytes;
      if (!s.partials) {
        whole.tile(k0, 0, kc_padded / kr, b_panel, c, plan.out.ldc, static_cast<int>(rows), n,
                   flags | plan.prefetch_output, &ep);
        continue;
      }
      // With partials, the last block finishes the int32 sums in them, and the
      // output stage alone (GemmKernel::epilogue) then writes C.
      EpilogueParams stage{};
      stage.col_term = no_term;
      stage.out = ep.out;
      ep.out.kind = OutputKind::int32;
      int32_t* acc = s.partials + q * nr;
      whole.tile(k0, 0, kc_padded / kr, b_panel, acc, nc, static_cast<int>(rows), n, flags, &ep);
      if (final) kern.epilogue(acc, nc, c, plan.out.ldc, static_cast<int>(rows), n, &stage);
    }
    if (final) break;
    k0 += kc;
  }
}

}  // namespace

void gemm_plain_b(const GemmKernel& base_kernel, const AOperand& a, int32_t za, const ByteMatrix& bm,
                  const int32_t* zb, bool zb_per_column, const GemmOutput& out) {
  const size_t rows = a.batch * a.m, N = bm.cols, K = a.k;
  if (rows == 0 || N == 0) return;
  const GemmKernel& kern = plain_b_kernel(base_kernel, a);
  const size_t mr = kern.mr, nr = kern.nr, kr = kern.kr;
  const size_t k_rounded = round_up(K, kr), row_tiles = (rows + mr - 1) / mr;
  const size_t threads = static_cast<size_t>(usable_threads());
  const bool parallel = threads > 1 && rows * N * K >= kMinParallelMacs;
  // Columns per task: kPlainNc while that makes 2 tasks per thread, else up
  // to kTasksPerThread tasks per thread (taken dynamically, as in gemm()),
  // each at least a 64-byte line of every row.
  size_t nc = std::min(std::max(nr, kPlainNc / nr * nr), round_up(N, nr));  // no wider than B
  if (parallel && (N + nc - 1) / nc < 2 * threads) {
    const size_t most_tasks = threads * kTasksPerThread;
    nc = std::min(nc, std::max(round_up(64, nr), round_up((N + most_tasks - 1) / most_tasks, nr)));
  }
  const size_t tasks = (N + nc - 1) / nc;
  const size_t kc = std::min(std::max(kr, kPlainKc / kr * kr), k_rounded);
  const bool partials = out.kind != OutputKind::int32 && kc < k_rounded;
  const size_t a_total = WholeA::bytes(kern, rows, K);
  // Otherwise B is packed whole first: a range-proven kernel may repay its
  // second layout on many rows (choose_kernel); a large B read by many rows
  // is packed faster whole (rows read in order, not 4 KiB apart per panel)
  // and then read packed by every row tile; A may be too large to pack
  // whole, or there are too few column blocks to keep the threads busy; or
  // more rows than one kernel call takes (m is an int; only with K = 0,
  // where A packed whole is empty).
  const bool large_b_many_rows = K * N >= kPlainMaxBBytes && rows >= kPlainManyRows;
  const bool rows_past_one_call = rows > static_cast<size_t>(std::numeric_limits<int>::max());
  if ((kern.proven_range && rows >= kSingleUseMinRows) || large_b_many_rows || a_total > kWholeAMaxBytes ||
      rows_past_one_call || (partials && rows * nc * sizeof(int32_t) > kPlainMaxPartials) ||
      (parallel && tasks < threads)) {
    const PackedB packed = pack_b(bm, kern, /*single_use=*/true);
    gemm(kern, a, za, packed, zb, zb_per_column, out);
    return;
  }
  PackedB shape;  // B's shape only: the panels are packed in the tasks
  shape.k = K;
  shape.n = N;
  shape.nr = kern.nr;
  shape.kr = kern.kr;
  shape.k_padded = k_rounded;
  shape.panels = (N + nr - 1) / nr;
  shape.is_u8 = bm.is_u8;
  Plan plan{kern, a, shape, out, output_element_bytes(out.kind), kc, rows, 0, {}, {}, {}, {}};
  set_zero_points(plan, za, zb, zb_per_column, shape.panels * nr);
  plan.prefetch_output = prefetch_output_flag(rows, N, plan.out_bytes);
  // Scratch, all allocated here (a failed allocation raises in the caller):
  // A whole (unless read in place) with its row sums and terms, then per
  // slot the panels of B packed together, the task's column sums and terms,
  // and its int32 partials if needed.
  const size_t slots = parallel ? std::min(threads, tasks) : 1;
  const size_t a_bytes = WholeA::readable_in_place(plan) ? 0 : round_up(a_total, 64);
  const size_t sums_bytes = round_up(row_tiles * mr * sizeof(int32_t), 64);
  const size_t block_bytes = round_up(kc * nr * plain_b_panels_together(*kern.packers, nr), 64);
  const size_t cols_bytes = round_up(nc * sizeof(int32_t), 64);
  const size_t partial_bytes = partials ? round_up(row_tiles * mr * nc * sizeof(int32_t), 64) : 0;
  const size_t slot_bytes = block_bytes + 2 * cols_bytes + partial_bytes;
  const ScratchBuffer scratch(a_bytes + 2 * sums_bytes + slots * slot_bytes);
  int32_t* rowsum = reinterpret_cast<int32_t*>(scratch.as<uint8_t>() + a_bytes);
  const WholeA whole(plan, parallel ? std::min(threads, row_tiles) : 1, scratch.as<uint8_t>(), rowsum,
                     reinterpret_cast<int32_t*>(scratch.as<uint8_t>() + a_bytes + sums_bytes));
  parallel_for_ranges(tasks, slots, [&](size_t t, size_t slot) {
    uint8_t* base = scratch.as<uint8_t>() + a_bytes + 2 * sums_bytes + slot * slot_bytes;
    const PlainBScratch s{reinterpret_cast<int8_t*>(base), reinterpret_cast<int32_t*>(base + block_bytes),
                          reinterpret_cast<int32_t*>(base + block_bytes + cols_bytes),
                          partials ? reinterpret_cast<int32_t*>(base + block_bytes + 2 * cols_bytes) : nullptr};
    whole.ensure_packed();
    const size_t n0 = t * nc;
    run_plain_b_columns(plan, bm, whole, s, n0, std::min(nc, N - n0), nc);
  });
}

void requantize(const GemmKernel& kern, const int32_t* acc, size_t rows, size_t n, size_t lda,
                const GemmOutput& out) {
  if (rows == 0 || n == 0) return;
  const size_t nr = kern.nr, panels = (n + nr - 1) / nr, padded_n = panels * nr;
  const PaddedColumns cols(out, n, padded_n);
  std::vector<int32_t> col_term(padded_n, 0);  // minus the bias: see EpilogueParams
  for (size_t j = 0; j < n; ++j) col_term[j] = out.bias ? wrap_sub(0, out.bias[j]) : 0;
  const size_t out_bytes = output_element_bytes(out.kind);
  const size_t mr = kern.mr, row_blocks = (rows + mr - 1) / mr;
  const size_t threads = static_cast<size_t>(usable_threads());
  const size_t tasks = rows * n >= (size_t(1) << 18) ? std::min(threads, row_blocks) : 1;
  parallel_for(tasks, [&](size_t t) {
    for (size_t rb = row_blocks * t / tasks; rb < row_blocks * (t + 1) / tasks; ++rb) {
      const size_t r0 = rb * mr;
      const int m = static_cast<int>(std::min(mr, rows - r0));
      for (size_t p = 0; p < panels; ++p) {
        EpilogueParams ep{};
        ep.col_term = col_term.data() + p * nr;
        ep.out = cols.at(out, r0, p * nr);
        uint8_t* c = static_cast<uint8_t*>(out.data) + (r0 * out.ldc + p * nr) * out_bytes;
        kern.epilogue(acc + r0 * lda + p * nr, lda, c, out.ldc, m,
                      static_cast<int>(std::min(nr, n - p * nr)), &ep);
      }
    }
  });
}

}  // namespace qgemm
