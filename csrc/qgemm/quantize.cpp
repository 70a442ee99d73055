#include "qgemm/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "qgemm/quantize_dynamic.h"
#include "qgemm/thread_pool.h"

namespace qgemm {
namespace {

// Work below this many elements per thread is not worth a second thread: a
// sleeping helper starts 20-50 us late here (2-vCPU VM), but the pool's
// helpers spin for a while after each call, so back-to-back calls find them
// awake (one thread quantizes 64K cached elements in ~4 us).
constexpr size_t kMinChunk = 1 << 16;
// Arrays are cut into about 4 tasks per thread, taken by the threads as they
// come free: a helper that starts late, or is descheduled for a while on a
// shared machine, then delays the call by one task, not by its share of the
// array. Tasks stay within [kTaskMin, kTaskMax] elements; kTaskMax is large
// enough for the kernels' streaming-store path (1M elements per call).
constexpr size_t kTaskMin = 1 << 17, kTaskMax = 1 << 20;

size_t task_count(size_t n) {
  const size_t threads = static_cast<size_t>(usable_threads());
  const size_t by_threads = std::min(threads, n / kMinChunk);
  if (by_threads <= 1) return 1;
  const size_t task = std::min(kTaskMax, std::max(kTaskMin, n / (4 * threads)));
  return std::max(by_threads, n / task);
}

// Per-channel with short inner runs: expand the parameters to one per element
// of a [channels * inner] row and use the per-element kernels.
constexpr size_t kMinSegment = 64;

// Calls per_tensor(offset, len, scale, zp) or per_element(offset, len, scale*,
// zp*) over the element range [begin, end), split at channel boundaries.
template <class PerTensor, class PerElement>
void for_range(size_t begin, size_t end, const ChannelLayout& L, const float* scale,
               const int32_t* zp, const std::vector<float>& row_scale,
               const std::vector<int32_t>& row_zp, PerTensor per_tensor, PerElement per_element) {
  if (L.channels == 1) {
    per_tensor(begin, end - begin, scale[0], zp[0]);
  } else if (!row_scale.empty()) {
    const size_t row = row_scale.size();
    for (size_t pos = begin; pos < end;) {
      const size_t j = pos % row, len = std::min(end - pos, row - j);
      per_element(pos, len, row_scale.data() + j, row_zp.data() + j);
      pos += len;
    }
  } else {
    for (size_t pos = begin; pos < end;) {
      const size_t seg = pos / L.inner, c = seg % L.channels;
      const size_t len = std::min(end, (seg + 1) * L.inner) - pos;
      per_tensor(pos, len, scale[c], zp[c]);
      pos += len;
    }
  }
}

template <class PerTensor, class PerElement>
void run(const ChannelLayout& L, const float* scale, const int32_t* zp, PerTensor per_tensor,
         PerElement per_element) {
  if (L.n == 0) return;
  std::vector<float> row_scale;
  std::vector<int32_t> row_zp;
  if (L.channels > 1 && L.inner < kMinSegment) {
    row_scale.resize(L.channels * L.inner);
    row_zp.resize(L.channels * L.inner);
    for (size_t c = 0; c < L.channels; ++c)
      for (size_t i = 0; i < L.inner; ++i) {
        row_scale[c * L.inner + i] = scale[c];
        row_zp[c * L.inner + i] = zp[c];
      }
  }
  const size_t n_tasks = task_count(L.n);
  // Chunk boundaries on 64-element multiples keep stores cache-line aligned.
  const size_t chunk = ((L.n + n_tasks - 1) / n_tasks + 63) / 64 * 64;
  parallel_for(n_tasks, [&](size_t t) {
    const size_t b = std::min(L.n, t * chunk), e = std::min(L.n, b + chunk);
    if (b < e) for_range(b, e, L, scale, zp, row_scale, row_zp, per_tensor, per_element);
  });
}

}  // namespace

void quantize(const float* x, void* q, QDtype dtype, const ChannelLayout& L, const float* scale,
              const int32_t* zp, const QuantizeKernels& k) {
  if (dtype == QDtype::s8) {
    int8_t* y = static_cast<int8_t*>(q);
    run(L, scale, zp,
        [&](size_t o, size_t n, float s, int32_t z) { k.f32_to_s8(x + o, y + o, n, s, z); },
        [&](size_t o, size_t n, const float* s, const int32_t* z) {
          k.f32_to_s8_vec(x + o, y + o, n, s, z);
        });
  } else {
    uint8_t* y = static_cast<uint8_t*>(q);
    run(L, scale, zp,
        [&](size_t o, size_t n, float s, int32_t z) { k.f32_to_u8(x + o, y + o, n, s, z); },
        [&](size_t o, size_t n, const float* s, const int32_t* z) {
          k.f32_to_u8_vec(x + o, y + o, n, s, z);
        });
  }
}

void minmax(const float* x, size_t n, float* lo, float* hi, const QuantizeKernels& k) {
  const size_t n_tasks = task_count(n);
  std::vector<float> los(n_tasks, INFINITY), his(n_tasks, -INFINITY);
  const size_t chunk = (n + n_tasks - 1) / n_tasks;
  parallel_for(n_tasks, [&](size_t t) {
    const size_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (b < e) k.minmax_f32(x + b, e - b, &los[t], &his[t]);
  });
  *lo = *std::min_element(los.begin(), los.end());
  *hi = *std::max_element(his.begin(), his.end());
}

AffineParams affine_u8_params(float lo, float hi) { return range_qparams(lo, hi, 0, 255, false); }

void dequantize(const void* q, QDtype dtype, float* x, const ChannelLayout& L, const float* scale,
                const int32_t* zp, const QuantizeKernels& k) {
  if (dtype == QDtype::s8) {
    const int8_t* a = static_cast<const int8_t*>(q);
    run(L, scale, zp,
        [&](size_t o, size_t n, float s, int32_t z) { k.s8_to_f32(a + o, x + o, n, s, z); },
        [&](size_t o, size_t n, const float* s, const int32_t* z) {
          k.s8_to_f32_vec(a + o, x + o, n, s, z);
        });
  } else {
    const uint8_t* a = static_cast<const uint8_t*>(q);
    run(L, scale, zp,
        [&](size_t o, size_t n, float s, int32_t z) { k.u8_to_f32(a + o, x + o, n, s, z); },
        [&](size_t o, size_t n, const float* s, const int32_t* z) {
          k.u8_to_f32_vec(a + o, x + o, n, s, z);
        });
  }
}

}  // namespace qgemm
