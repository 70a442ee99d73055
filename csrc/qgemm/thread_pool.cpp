#include "qgemm/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace qgemm {
namespace {

int default_threads() {
  if (const char* env = std::getenv("QGEMM_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

class Pool {
 public:
  static Pool& instance() {
    // Leaked on purpose: worker threads must not be joined during static
    // destruction at interpreter exit.
    static Pool* pool = new Pool();
    return *pool;
  }

  int num_threads() const { return num_threads_.load(); }
  void set_num_threads(int n) { num_threads_.store(n < 1 ? 1 : n); }

  void run(size_t n_tasks, const std::function<void(size_t)>& fn) {
    const int want = num_threads();
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (n_tasks <= 1 || want <= 1 || !busy.owns_lock()) {
      for (size_t t = 0; t < n_tasks; ++t) fn(t);
      return;
    }
    const int helpers = static_cast<int>(std::min<size_t>(want, n_tasks)) - 1;
    ensure_workers(helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0);
      active_helpers_ = helpers;
      pending_ = helpers;
      ++generation_;
    }
    cv_work_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  Pool() : num_threads_(default_threads()) {}

  void work() {
    for (size_t t; (t = next_.fetch_add(1)) < n_tasks_;) (*fn_)(t);
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size());
      // The worker starts from the current generation, so it joins the call
      // about to be published even if it only gets scheduled after that.
      workers_.emplace_back([this, id, gen = generation_] { worker_loop(id, gen); });
      workers_.back().detach();
    }
  }

  void worker_loop(int id, size_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= active_helpers_) continue;
      }
      work();
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

  std::atomic<int> num_threads_;
  std::mutex run_mutex_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_{0};
  int active_helpers_ = 0;
  int pending_ = 0;
  size_t generation_ = 0;
};

}  // namespace

int get_num_threads() { return Pool::instance().num_threads(); }
void set_num_threads(int n) { Pool::instance().set_num_threads(n); }
void parallel_for(size_t n_tasks, const std::function<void(size_t)>& fn) {
  Pool::instance().run(n_tasks, fn);
}

}  // namespace qgemm
