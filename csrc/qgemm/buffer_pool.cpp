#include "qgemm/buffer_pool.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace qgemm {
namespace {

constexpr size_t kGranule = size_t(2) << 20;  // 2 MiB: the huge page size

struct Block {
  void* p;
  size_t capacity;
};

std::mutex g_mutex;
#if !defined(_WIN32)
// A fork while another thread holds g_mutex would leave the child a mutex
// that nobody unlocks: the forking thread holds it across the fork instead.
const int g_fork_guard = pthread_atfork([] { g_mutex.lock(); }, [] { g_mutex.unlock(); },
                                        [] { g_mutex.unlock(); });
#endif
// Guarded by g_mutex. Never destroyed: blocks may be released during exit,
// after static destructors have run; and cached blocks stay reachable (a
// leak checker at exit does not report them).
std::vector<Block>& g_free = *new std::vector<Block>();
size_t g_free_bytes = 0;

// Each thread's one cached block of small scratch (under
// kScratchPoolMinBytes), kept after its ScratchBuffer is released.
struct ThreadScratch {
  void* p = nullptr;
  size_t capacity = 0;
  bool in_use = false;
  ~ThreadScratch() { std::free(p); }
};
thread_local ThreadScratch t_scratch;

void* aligned_block(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);  // never size 0
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* pool_acquire(size_t bytes, size_t* capacity) {
  if (bytes > SIZE_MAX - kGranule) throw std::bad_alloc();  // the rounding below would wrap
  const size_t cap = (bytes + kGranule - 1) / kGranule * kGranule;
  {
    std::lock_guard<std::mutex> lk(g_mutex);
    // Smallest cached block that fits without wasting more than half of it.
    size_t best = g_free.size();
    for (size_t i = 0; i < g_free.size(); ++i)
      if (g_free[i].capacity >= cap && g_free[i].capacity <= 2 * cap &&
          (best == g_free.size() || g_free[i].capacity < g_free[best].capacity))
        best = i;
    if (best != g_free.size()) {
      Block b = g_free[best];
      g_free.erase(g_free.begin() + static_cast<std::ptrdiff_t>(best));
      g_free_bytes -= b.capacity;
      *capacity = b.capacity;
      return b.p;
    }
  }
  void* p = std::aligned_alloc(kGranule, cap);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, cap, MADV_HUGEPAGE);  // fewer faults and TLB misses; advice only
#endif
  *capacity = cap;
  return p;
}

void pool_release(void* p, size_t capacity) {
  {
    std::lock_guard<std::mutex> lk(g_mutex);
    if (capacity <= kMaxCachedBlock && g_free.size() < kMaxFreeBlocks &&
        g_free_bytes + capacity <= kMaxFreeBytes) {
      g_free.push_back({p, capacity});
      g_free_bytes += capacity;
      return;
    }
  }
  std::free(p);
}

ScratchBuffer::ScratchBuffer(size_t bytes) {
  if (bytes >= kScratchPoolMinBytes) {
    p_ = pool_acquire(bytes, &pool_capacity_);
    return;
  }
  ThreadScratch& t = t_scratch;
  if (t.in_use) {  // taken by an enclosing call on this thread
    p_ = aligned_block(bytes);
    return;
  }
  if (!t.p || t.capacity < bytes) {
    void* grown = aligned_block(bytes);
    std::free(t.p);
    t.p = grown;
    t.capacity = bytes;
  }
  t.in_use = true;
  p_ = t.p;
  thread_cached_ = true;
}

ScratchBuffer& ScratchBuffer::operator=(ScratchBuffer&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_;
    pool_capacity_ = o.pool_capacity_;
    thread_cached_ = o.thread_cached_;
    o.p_ = nullptr;
  }
  return *this;
}

ScratchBuffer::~ScratchBuffer() { release(); }

void ScratchBuffer::release() noexcept {
  if (!p_) return;
  if (thread_cached_) t_scratch.in_use = false;
  else if (pool_capacity_) pool_release(p_, pool_capacity_);
  else std::free(p_);
  p_ = nullptr;
}

}  // namespace qgemm
