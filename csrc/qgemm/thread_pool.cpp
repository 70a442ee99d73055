#include "qgemm/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif
#include <system_error>

namespace qgemm {
namespace {

// QGEMM_NUM_THREADS: a whole number in [1, kMaxThreads], nothing else.
int threads_from_env(const char* env) {
  const std::string v(env);
  const bool digits = !v.empty() && v.size() <= 9 &&
                      std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  const long n = digits ? std::stol(v) : 0;
  if (n < 1 || n > kMaxThreads)
    throw std::invalid_argument("QGEMM_NUM_THREADS must be a whole number from 1 to " +
                                std::to_string(kMaxThreads) + ", got '" + v + "'");
  return static_cast<int>(n);
}

int default_threads() {
  if (const char* env = std::getenv("QGEMM_NUM_THREADS")) return threads_from_env(env);
  int n = 0;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n < 1) n = static_cast<int>(std::thread::hardware_concurrency());
  return std::min(std::max(n, 1), kMaxThreads);
}

// Waking a sleeping thread takes tens of microseconds (more on a busy or
// virtual machine): as long as a whole GEMV. So helpers spin this long for
// the next call before they sleep, and the caller spins for the last tasks.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins until done() or kSpin has passed; true if done.
template <class Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) return done();
  }
}

// True on a thread while it runs tasks (a pool worker, always): a
// parallel_for from inside a task then runs inline, without touching the
// region's mutex (which the caller may hold).
thread_local bool t_in_task = false;

struct InTask {
  bool was = t_in_task;
  InTask() { t_in_task = true; }
  ~InTask() { t_in_task = was; }
};

// One parallel region at a time. Tasks are claimed from a ticket that holds
// the region's generation and the next task index, so a helper that wakes
// after its region ended claims nothing, and the caller waits only for tasks
// that were actually claimed: a helper that never got a CPU (a busy machine)
// costs nothing, the caller simply runs every task itself. The task count
// carries its generation too (region_): a helper holding the last ticket of
// a finished region must not read the next region's count, which is stored
// before the next ticket, as room to claim more (that ran a task twice and
// left the caller waiting for ever).
class Pool {
 public:
  static Pool& instance() {
    static const bool made = [] {
      // Leaked on purpose: worker threads must not be joined during static
      // destruction at interpreter exit.
      current_.store(new Pool(default_threads()), std::memory_order_release);
#if !defined(_WIN32)
      // A forked child (Python's multiprocessing, data loader workers) has
      // none of the workers, and may inherit a condition variable that counts
      // one of them as waiting (the next broadcast then waits for ever) or a
      // mutex one of them held: it starts a pool of its own, as many threads.
      pthread_atfork(nullptr, nullptr, [] {
        current_.store(new Pool(current_.load(std::memory_order_relaxed)->num_threads()),
                       std::memory_order_relaxed);  // the parent's copy is left as it is
      });
#endif
      return true;
    }();
    (void)made;
    return *current_.load(std::memory_order_acquire);
  }

  int num_threads() const { return num_threads_.load(); }
  void set_num_threads(int n) {
    if (n < 1 || n > kMaxThreads)
      throw std::invalid_argument("the thread count must be from 1 to " + std::to_string(kMaxThreads) +
                                  ", got " + std::to_string(n));
    num_threads_.store(n);
  }

  void run(size_t n_tasks, size_t max_threads, const std::function<void(size_t, size_t)>& fn) {
    const size_t want = std::min<size_t>(num_threads(), max_threads);
    // Inline: one task or thread, a call from inside a task, or another
    // thread's region under way.
    std::unique_lock<std::mutex> busy;
    if (n_tasks > 1 && n_tasks <= UINT32_MAX && want > 1 && !t_in_task)
      busy = std::unique_lock<std::mutex>(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) {
      for (size_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    const int helpers = ensure_workers(static_cast<int>(std::min(want, n_tasks)) - 1);
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lk(m_);
      gen = ((ticket_.load() >> 32) + 1) & 0xFFFFFFFFu;  // as the ticket holds it, also past 2^32 regions
      fn_.store(&fn, std::memory_order_relaxed);  // published by the ticket's release
      region_.store(gen << 32 | n_tasks, std::memory_order_release);
      done_.store(0, std::memory_order_relaxed);
      failed_.store(false, std::memory_order_relaxed);
      active_helpers_ = helpers;
      ticket_.store(gen << 32, std::memory_order_release);  // task 0 of the new region
    }
    cv_work_.notify_all();
    {
      const InTask in_task;
      work(gen, 0);
    }
    auto finished = [&] { return done_.load(std::memory_order_acquire) == n_tasks; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lk(m_);
      cv_done_.wait(lk, finished);
    }
    // Every claimed task has finished: nothing uses fn or the caller's data
    // any more, so the failure can unwind the caller.
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lk(m_);
      error.swap(error_);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  explicit Pool(int threads) : num_threads_(threads) {}

  // Claims and runs tasks of region `gen` until none is left. After a task
  // has failed, the rest are claimed but not run.
  void work(uint64_t gen, size_t slot) {
    for (;;) {
      uint64_t ticket = ticket_.load(std::memory_order_acquire);
      size_t task, n;
      do {
        task = static_cast<uint32_t>(ticket);
        // The count of this ticket's region, or return: a later region's
        // count, stored before its ticket, says nothing of this one (whose
        // tasks are all claimed once a later region is being set up). After
        // a claim the region cannot end before this task is done.
        const uint64_t region = region_.load(std::memory_order_acquire);
        n = static_cast<uint32_t>(region);
        if (ticket >> 32 != gen || region >> 32 != gen || task >= n) return;
      } while (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel));
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          (*fn_.load(std::memory_order_relaxed))(task, slot);
        } catch (...) {
          std::lock_guard<std::mutex> lk(m_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lk(m_);  // the caller may be about to sleep on cv_done_
        cv_done_.notify_one();
      }
    }
  }

  // Starts workers up to n; returns how many there are, at most n. A thread
  // the system refuses (a process limit) leaves the tasks to fewer threads.
  int ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size());
      // The worker starts from the current generation, so it joins the region
      // about to be published even if it only gets scheduled after that.
      try {
        workers_.emplace_back([this, id, gen = ticket_.load() >> 32] { worker_loop(id, gen); });
      } catch (const std::system_error&) {
        break;
      }
      workers_.back().detach();
    }
    return std::min(n, static_cast<int>(workers_.size()));
  }

  void worker_loop(int id, uint64_t seen) {
    t_in_task = true;
    auto generation = [&] { return ticket_.load(std::memory_order_acquire) >> 32; };
    for (;;) {
      if (!spin_until([&] { return generation() != seen; })) {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, [&] { return generation() != seen; });
      }
      seen = generation();
      int active;
      {
        std::lock_guard<std::mutex> lk(m_);
        active = active_helpers_;
      }
      if (id < active) work(seen, static_cast<size_t>(id) + 1);
    }
  }

  static inline std::atomic<Pool*> current_{nullptr};  // this process's pool (see instance)
  std::atomic<int> num_threads_;
  std::mutex run_mutex_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(size_t, size_t)>*> fn_{nullptr};
  std::atomic<uint64_t> region_{0};  // generation << 32 | task count
  int active_helpers_ = 0;
  std::atomic<uint64_t> ticket_{0};  // generation << 32 | next task
  std::atomic<size_t> done_{0};      // tasks of the current region finished
  std::atomic<bool> failed_{false};  // a task of the current region threw
  std::exception_ptr error_;         // its exception (guarded by m_)
};

}  // namespace

int get_num_threads() { return Pool::instance().num_threads(); }
int usable_threads() { return t_in_task ? 1 : get_num_threads(); }
void set_num_threads(int n) { Pool::instance().set_num_threads(n); }
void parallel_for(size_t n_tasks, size_t max_threads, const std::function<void(size_t, size_t)>& fn) {
  Pool::instance().run(n_tasks, max_threads, fn);
}
void parallel_for(size_t n_tasks, const std::function<void(size_t)>& fn) {
  Pool::instance().run(n_tasks, kMaxThreads, [&fn](size_t task, size_t) { fn(task); });
}

void parallel_for_ranges(size_t n_items, size_t max_threads, const std::function<void(size_t, size_t)>& fn) {
  const size_t parts = std::min({n_items, max_threads, static_cast<size_t>(usable_threads())});
  if (parts <= 1) {
    for (size_t i = 0; i < n_items; ++i) fn(i, 0);
    return;
  }
  struct alignas(64) Next {  // a range's next item, on a cache line of its own
    std::atomic<size_t> item;
  };
  const std::unique_ptr<Next[]> next(new Next[parts]);
  for (size_t r = 0; r < parts; ++r) next[r].item.store(n_items * r / parts, std::memory_order_relaxed);
  std::atomic<bool> failed{false};  // as in parallel_for: after a failure, items not yet started are skipped
  parallel_for(parts, parts, [&](size_t part, size_t slot) {
    for (size_t k = 0; k < parts; ++k) {  // its own range, then the others'
      const size_t r = (part + k) % parts, end = n_items * (r + 1) / parts;
      for (size_t i; !failed.load(std::memory_order_relaxed) &&
                     (i = next[r].item.fetch_add(1, std::memory_order_relaxed)) < end;) {
        try {
          fn(i, slot);
        } catch (...) {
          failed.store(true, std::memory_order_relaxed);
          throw;  // the pool carries it to the caller
        }
      }
    }
  });
}

}  // namespace qgemm
