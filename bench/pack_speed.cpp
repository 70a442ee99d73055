// Packing speed of B against a plain memcpy of the same bytes, one thread:
// every packing table this CPU runs (Packers, kernels.h), on a k x n int8 B
// with unit column stride, destination and source touched before timing.
// Usage: bench_pack [k n [nr kr]]  (default 4096 4096, nr 32, kr 4); the
// environment variables KC and NC set the block of the second measurement
// (default 512 rows x 1024 columns, as gemm_plain_b; there the tiles also
// prefetch the next panels' source, which this loop alone cannot show).
// Built with the C++ tests: build/dev/bench_pack.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "qgemm/cpu.h"
#include "qgemm/kernels.h"
#include "qgemm/pack.h"

using namespace qgemm;

template <class F>
static double best_seconds(F f, int reps = 15) {
  f();
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  const size_t k = argc > 2 ? std::strtoul(argv[1], nullptr, 10) : 4096;
  const size_t n = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4096;
  const int nr = argc > 4 ? std::atoi(argv[3]) : 32, kr = argc > 4 ? std::atoi(argv[4]) : 4;
  std::vector<uint8_t> src(k * n), copy(k * n);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  const size_t panels = (n + nr - 1) / nr, k_padded = (k + kr - 1) / kr * kr;
  // 64-byte aligned, as pack_b's panels (streamed stores need 32).
  std::vector<int8_t> dst_bytes(panels * k_padded * nr + 64);
  int8_t* const dst = dst_bytes.data() + (64 - reinterpret_cast<uintptr_t>(dst_bytes.data()) % 64) % 64;
  std::vector<int32_t> sums(panels * nr);
  const ByteMatrix b{src.data(), k, n, static_cast<ptrdiff_t>(n), 1, false};
  const double gb = static_cast<double>(k * n) / 1e9;
  std::printf("B %zu x %zu, panels of %d columns, groups of %d rows, 1 thread\n", k, n, nr, kr);
  std::printf("  memcpy            %6.1f GB/s\n", gb / best_seconds([&] { std::memcpy(copy.data(), src.data(), k * n); }));
  struct Table { const char* name; const Packers* p; };
  std::vector<Table> tables = {{"baseline", &baseline_packers()}};
#if defined(QGEMM_HAVE_AVX2)
  if (cpu_features().avx2) tables.push_back({"avx2", &avx2_packers()});
  if (cpu_features().avx512_vnni) tables.push_back({"avx512", &avx512_packers()});
#endif
  // As pack_b walks B: a pass of rows across every panel, then the next
  // rows; streamed as pack_b streams a large weight, and with plain stores
  // (as a smaller one).
  for (const Table& t : tables)
    for (const bool stream : {true, false}) {
      const double s = best_seconds([&] {
        int max_abs = 0;
        std::fill(sums.begin(), sums.end(), 0);
        const size_t rows = pack_b_rows_per_pass(stream);
        for (size_t k0 = 0; k0 < k; k0 += rows)
          pack_b_panels_rows(b, 0, panels, k0, std::min(k, k0 + rows), nr, kr, *t.p, stream,
                             dst, k_padded * nr, sums.data(), &max_abs);
      });
      std::printf("  pack_b %-10s %6.1f GB/s  (whole B, as qgemm.pack, %s stores)\n", t.name, gb / s,
                  stream ? "streamed" : "plain");
    }
  // As gemm_plain_b walks B: the panels of a block of 512 rows x 1024
  // columns one call after the other (plain_b_panels_together per call) into
  // one scratch that stays in L1, then the next block down K.
  const size_t kc = std::getenv("KC") ? std::strtoul(std::getenv("KC"), nullptr, 10) : 512;
  const size_t nc = (std::getenv("NC") ? std::strtoul(std::getenv("NC"), nullptr, 10) : 1024) / nr * nr;
  for (const Table& t : tables) {
    const size_t together = plain_b_panels_together(*t.p, nr);
    std::vector<int8_t> block(kc * nr * together);
    const double s = best_seconds([&] {
      int max_abs = 0;
      std::fill(sums.begin(), sums.end(), 0);
      for (size_t n0 = 0; n0 < n; n0 += nc)
        for (size_t k0 = 0; k0 < k; k0 += kc) {
          const size_t rows = std::min(kc, k - k0), n1 = std::min(n, n0 + nc);
          for (size_t j = n0; j < n1; j += together * nr) {
            const size_t cols = std::min(together * nr, n1 - j);
            const ByteMatrix part{src.data() + k0 * n + j, rows, cols, static_cast<ptrdiff_t>(n), 1, false};
            pack_b_panels_rows(part, 0, (cols + nr - 1) / nr, 0, rows, nr, kr, *t.p, false, block.data(),
                               (rows + kr - 1) / kr * kr * nr, sums.data() + j, &max_abs);
          }
        }
    });
    std::printf("  pack_b %-10s %6.1f GB/s  (%zu x %zu blocks, %zu panel%s per call into scratch: a plain B, without "
                "the tiles' prefetches)\n",
                t.name, gb / s, kc, nc, together, together > 1 ? "s" : "");
  }
  return 0;
}
