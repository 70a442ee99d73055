// The thread pool and the buffer pool on their own: failures inside tasks,
// per-thread slots, thread counts, and scratch buffers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "qgemm/buffer_pool.h"
#include "qgemm/thread_pool.h"

#if !defined(_WIN32)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "check.h"

using namespace qgemm;


// A task that throws: the exception reaches the caller after every started
// task has finished, the tasks not yet started are skipped, and the pool
// runs the next call normally.
static void test_task_failure(int threads) {
  set_num_threads(threads);
  const std::string tag = " (" + std::to_string(threads) + " threads)";
  for (size_t failing : {size_t(0), size_t(3), size_t(63)}) {
    std::atomic<size_t> ran{0}, finished{0};
    bool caught = false;
    try {
      parallel_for(64, [&](size_t t) {
        ran.fetch_add(1);
        if (t == failing) throw std::bad_alloc();
        finished.fetch_add(1);
      });
    } catch (const std::bad_alloc&) {
      caught = true;
    }
    check(caught, "bad_alloc from task " + std::to_string(failing) + " reaches the caller" + tag);
    check(finished.load() + 1 == ran.load(), "every started task finished before the rethrow" + tag);
    if (failing == 0 && threads == 1) check(ran.load() == 1, "later tasks are skipped after a failure");
    std::vector<int> hit(100, 0);
    parallel_for(hit.size(), [&](size_t t) { hit[t] += 1; });
    check(std::all_of(hit.begin(), hit.end(), [](int h) { return h == 1; }),
          "the pool runs every task of the next call" + tag);
  }
  // The first of several failures wins; the others are dropped.
  bool caught = false;
  try {
    parallel_for(16, [](size_t) { throw std::runtime_error("task failed"); });
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "task failed";
  }
  check(caught, "one of many failures is rethrown" + tag);
}

// Two tasks with the same slot never overlap, and slots stay below the limit.
static void test_slots(int threads) {
  set_num_threads(threads);
  for (size_t max_threads : {size_t(1), size_t(2), size_t(8)}) {
    std::vector<std::atomic<int>> busy(max_threads);
    std::atomic<bool> ok{true};
    parallel_for(200, max_threads, [&](size_t, size_t slot) {
      if (slot >= max_threads || busy[slot].fetch_add(1) != 0) ok = false;
      volatile int spin = 0;
      for (int i = 0; i < 2000; ++i) spin = spin + i;
      if (slot < max_threads) busy[slot].fetch_sub(1);
    });
    check(ok.load(), "slots below " + std::to_string(max_threads) + " and never shared (" +
                         std::to_string(threads) + " threads)");
  }
}

// parallel_for_ranges: every item exactly once, whatever the counts; slots
// below the limit and never shared; each range's items run in order, by
// whichever thread (its owner, then the others taking what is left); and a
// slowed thread's range is taken over by the other.
static void test_ranges(int threads) {
  set_num_threads(threads);
  const std::string tag = " (" + std::to_string(threads) + " threads)";
  for (size_t items : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(64), size_t(1001)})
    for (size_t max_threads : {size_t(1), size_t(2), size_t(3), size_t(16)}) {
      const size_t parts = std::max<size_t>(1, std::min({items, max_threads, size_t(threads)}));
      std::vector<std::atomic<int>> hit(items), busy(max_threads);
      std::vector<std::vector<size_t>> ran(max_threads);  // per slot, in the order run
      std::atomic<bool> ok{true};
      parallel_for_ranges(items, max_threads, [&](size_t i, size_t slot) {
        if (slot >= max_threads || busy[slot].fetch_add(1) != 0) {
          ok = false;
          return;
        }
        hit[i].fetch_add(1);
        ran[slot].push_back(i);
        busy[slot].fetch_sub(1);
      });
      const bool once = std::all_of(hit.begin(), hit.end(), [](const std::atomic<int>& h) { return h.load() == 1; });
      auto range_of = [&](size_t i) {  // range r is [items * r / parts, items * (r + 1) / parts)
        size_t r = 0;
        while (items * (r + 1) / parts <= i) ++r;
        return r;
      };
      bool in_order = true;  // within a slot, the items of one range rise
      for (const auto& r : ran)
        for (size_t j = 0; j < r.size(); ++j)
          for (size_t k = j + 1; k < r.size(); ++k)
            if (range_of(r[j]) == range_of(r[k]) && r[k] < r[j]) in_order = false;
      check(ok.load() && once && in_order, "parallel_for_ranges: " + std::to_string(items) + " items on up to " +
                                               std::to_string(max_threads) + " threads, each once, in order" + tag);
    }
  // An item that throws: the exception reaches the caller, items not yet
  // started are skipped, and the next call runs every item.
  for (size_t failing : {size_t(0), size_t(150), size_t(299)}) {
    std::atomic<size_t> ran{0};
    bool caught = false;
    try {
      parallel_for_ranges(300, 4, [&](size_t i, size_t) {
        ran.fetch_add(1);
        if (i == failing) throw std::runtime_error("item failed");
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "item failed";
    }
    check(caught, "parallel_for_ranges: item " + std::to_string(failing) + "'s failure reaches the caller" + tag);
    if (threads == 1 && failing == 0) check(ran.load() == 1, "parallel_for_ranges: later items are skipped");
    std::atomic<size_t> all{0};
    parallel_for_ranges(300, 4, [&](size_t, size_t) { all.fetch_add(1); });
    check(all.load() == 300, "parallel_for_ranges runs every item of the next call" + tag);
  }
  if (threads > 1) {
    std::atomic<size_t> slow_slot{99};
    std::vector<std::atomic<size_t>> first_range(2);  // per slot: items of range 0 run
    parallel_for_ranges(400, 2, [&](size_t i, size_t slot) {
      if (i == 0) {
        slow_slot = slot;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (i < 200) first_range[slot].fetch_add(1);
    });
    check(slow_slot.load() < 2 && first_range[slow_slot.load()].load() < 100,
          "a slowed thread's range is taken over by the other" + tag);
  }
}

// A parallel_for inside a task (the caller's included) runs inline on that
// thread, all of its tasks, with slot 0.
static void test_nested(int threads) {
  set_num_threads(threads);
  std::vector<std::atomic<int>> inner_done(16);
  std::atomic<bool> ok{true};
  parallel_for(16, 4, [&](size_t t, size_t) {
    const auto outer_thread = std::this_thread::get_id();
    parallel_for(8, 4, [&](size_t, size_t slot) {
      if (slot != 0 || std::this_thread::get_id() != outer_thread) ok = false;
      inner_done[t].fetch_add(1);
    });
  });
  bool all = true;
  for (auto& d : inner_done) all = all && d.load() == 8;
  check(ok.load() && all, "nested parallel_for runs inline (" + std::to_string(threads) + " threads)");
}

static void test_thread_count() {
  for (int bad : {0, -1, kMaxThreads + 1}) {
    bool refused = false;
    try {
      set_num_threads(bad);
    } catch (const std::invalid_argument&) {
      refused = true;
    }
    check(refused, "set_num_threads(" + std::to_string(bad) + ") is refused");
  }
  set_num_threads(3);
  check(get_num_threads() == 3, "set_num_threads(3) holds after the refusals");
}

static void test_scratch() {
  for (size_t bytes : {size_t(0), size_t(1), size_t(4096), size_t(3) << 20}) {
    ScratchBuffer s(bytes);
    check(s.data() != nullptr && reinterpret_cast<uintptr_t>(s.data()) % 64 == 0,
          "scratch of " + std::to_string(bytes) + " bytes is 64-byte aligned");
    std::memset(s.data(), 0xab, bytes);  // writable to the end (ASan checks)
  }
  // A released large block is reused by the next request of its size.
  void* first;
  {
    ScratchBuffer s(size_t(3) << 20);
    first = s.data();
  }
  ScratchBuffer again(size_t(3) << 20);
  check(again.data() == first, "a cached block is reused");
  ScratchBuffer moved(std::move(again));
  check(moved.data() == first && again.data() == nullptr, "a moved scratch buffer owns its block once");
  bool refused = false;
  try {
    ScratchBuffer huge(~size_t(0) - 4096);
  } catch (const std::bad_alloc&) {
    refused = true;
  }
  check(refused, "an impossible size throws bad_alloc");
  // Small scratch: the thread's own cached block, reused by the next request
  // that fits, grown for a larger one; a request while it is held (a nested
  // call) gets a block of its own, as does another thread.
  void* small;
  {
    ScratchBuffer s(1000);
    small = s.data();
    ScratchBuffer nested(500);
    check(nested.data() != small, "a nested small scratch gets a block of its own");
    std::memset(nested.data(), 0xcd, 500);
    std::memset(s.data(), 0xab, 1000);
  }
  {
    ScratchBuffer s(800);
    check(s.data() == small, "the thread's small block is reused by the next request that fits");
  }
  {
    ScratchBuffer s(20000);
    check(s.data() != nullptr && reinterpret_cast<uintptr_t>(s.data()) % 64 == 0, "a grown small block is aligned");
    std::memset(s.data(), 0xab, 20000);  // the grown block is large enough (ASan checks)
    void* other = nullptr;
    std::thread([&] {
      ScratchBuffer t(100);
      other = t.data();
    }).join();
    check(other != nullptr && other != s.data(), "another thread's small scratch is its own");
  }
}

// Back-to-back regions of different task counts: every task of every
// region runs exactly once. A helper holding the ticket of a region that had
// just ended once read the next region's larger count (stored before the
// next ticket) as room to claim more: it ran a task of the next region twice,
// and the caller then waited for ever. A watchdog turns such a hang into a
// failure instead of a stalled test.
static void test_back_to_back_regions() {
  set_num_threads(2);
  constexpr long kRegions = 1200000;
  std::atomic<long> progress{0};
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    for (long last = -1; !finished.load();) {
      for (int i = 0; i < 200 && !finished.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const long now = progress.load();
      if (!finished.load() && now == last) {
        std::printf("FAIL: back-to-back regions: no progress for 10 s at region %ld (a hang)\n", now);
        std::fflush(stdout);
        std::_Exit(1);
      }
      last = now;
    }
  });
  std::atomic<int> runs[8];
  long bad = -1;
  for (long r = 0; r < kRegions && bad < 0; ++r) {
    const size_t n = r % 3 == 0 ? 8 : 2;
    for (auto& x : runs) x.store(0);
    const int spin = n == 8 ? static_cast<int>(r % 7) * 40 : 0;  // varying lengths: helpers claim at varying times
    parallel_for(n, [&](size_t t) {
      for (volatile int i = 0; i < spin * static_cast<int>(t + 1); i = i + 1) {
      }
      runs[t].fetch_add(1);
    });
    for (size_t t = 0; t < n; ++t)
      if (runs[t].load() != 1) bad = r;
    progress.store(r + 1);
  }
  finished.store(true);
  watchdog.join();
  check(bad < 0, "back-to-back regions of 8 and 2 tasks: every task once (region " + std::to_string(bad) + ")");
}

#if !defined(_WIN32)
// Whether a forked child's `body` ends within 3 s with status 0 (a hang ends
// it by SIGALRM).
template <class Body>
static bool child_ok(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(3);
    _exit(body() ? 0 : 2);
  }
  int status = 0;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A child forked right after a region (the helper spinning, going to sleep
// or asleep) runs regions of its own. Its copy of the pool once counted the
// parent's helper as waiting on a condition variable, and the child's first
// broadcast then waited for ever (about 1 child in 10).
static void test_fork_after_regions() {
  set_num_threads(4);  // more helpers than cores: some asleep, some on their way
  int failed = 0;
  for (int trial = 0; trial < 100; ++trial) {
    std::atomic<long> sum{0};
    for (int r = 0; r < trial % 7; ++r) parallel_for(2 + trial % 5, [&](size_t t) { sum += static_cast<long>(t); });
    failed += !child_ok([] {
      std::atomic<long> s{0};
      for (int r = 0; r < 20; ++r) parallel_for(8, [&](size_t t) { s += static_cast<long>(t); });
      return s.load() == 20 * 28 && get_num_threads() == 4;
    });
  }
  set_num_threads(2);
  check(failed == 0, "a child forked after regions runs its own (" + std::to_string(failed) + " of 100 failed)");
}

// A child forked while another thread takes and returns pooled blocks can
// take one itself (the pool's mutex is not left locked in the child).
static void test_fork_during_pool_use() {
  std::atomic<bool> stop{false};
  std::thread user([&] {
    while (!stop.load()) {
      size_t cap = 0;
      void* p = pool_acquire(size_t(3) << 20, &cap);
      pool_release(p, cap);
    }
  });
  int failed = 0;
  for (int trial = 0; trial < 30; ++trial)
    failed += !child_ok([] {
      size_t cap = 0;
      void* p = pool_acquire(size_t(5) << 20, &cap);
      pool_release(p, cap);
      return cap >= (size_t(5) << 20);
    });
  stop.store(true);
  user.join();
  check(failed == 0, "a child forked during pool use takes a block (" + std::to_string(failed) + " of 30 failed)");
}
#endif

int main() {
  test_back_to_back_regions();
#if !defined(_WIN32)
  test_fork_after_regions();
  test_fork_during_pool_use();
#endif
  for (int threads : {1, 2, 4}) {
    test_task_failure(threads);
    test_slots(threads);
    test_nested(threads);
    test_ranges(threads);
  }
  test_thread_count();
  test_scratch();
  return report();
}
