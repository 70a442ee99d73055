// A small persistent pool of the library's own threads (no OpenMP runtime to
// fight other libraries in the same process).
#pragma once
#include <cstddef>
#include <functional>

namespace qgemm {

// More threads than this are refused: far past any CPU's count, and each
// one is an OS thread with its own stack.
constexpr int kMaxThreads = 1024;

// Number of threads parallel_for uses (including the caller). Default: the
// CPUs this process may run on, or QGEMM_NUM_THREADS if set; a value that is
// not a whole number in [1, kMaxThreads] throws std::invalid_argument here
// (on the first call, which the Python module makes at import).
int get_num_threads();
void set_num_threads(int n);  // 1 <= n <= kMaxThreads, else std::invalid_argument
// The threads a parallel_for called from here would run on: 1 inside a task
// (a nested call runs inline), else get_num_threads(). What a call plans its
// split and per-thread scratch for.
int usable_threads();

// Runs fn(task, slot) for task in [0, n_tasks) on up to max_threads threads,
// the caller included, and returns when all are done. slot < max_threads
// names the thread running the task: two tasks with the same slot never run
// at the same time, so a caller can allocate one scratch buffer per slot
// before the call (no allocation, hence no failure, inside the tasks).
// If the pool is busy (another thread's call, or a nested call) the tasks run
// on the caller, slot 0: safe for concurrent callers, never a deadlock.
// If a task throws, tasks not yet started are skipped, and the first
// exception is rethrown here once every started task has finished.
void parallel_for(size_t n_tasks, size_t max_threads, const std::function<void(size_t, size_t)>& fn);

// The same on up to get_num_threads() threads, for tasks that need no slot.
void parallel_for(size_t n_tasks, const std::function<void(size_t)>& fn);

// Runs fn(item, slot) for item in [0, n_items) on up to max_threads threads
// (slot as in parallel_for), each thread owning a contiguous range of the
// items, which it runs in order; a thread done with its range then takes
// what is left of the others', one item at a time. For items that touch
// neighbouring data: each thread then works through one block of it, the
// same one from call to call (its cache keeps it), where items handed out
// in turn would alternate between threads; and a thread descheduled on a
// busy machine still delays the call by one item, not by its range.
// Failures as in parallel_for, item by item.
void parallel_for_ranges(size_t n_items, size_t max_threads, const std::function<void(size_t, size_t)>& fn);

// The same for a callable of any type. On one thread (a nested call, such
// as a batch item's) the items run here, in order, without making fn a
// std::function first: a lambda that captures much costs an allocation.
template <class Fn>
void parallel_for_ranges(size_t n_items, size_t max_threads, Fn&& fn) {
  if (max_threads <= 1 || n_items <= 1 || usable_threads() <= 1) {
    for (size_t i = 0; i < n_items; ++i) fn(i, size_t(0));
    return;
  }
  const std::function<void(size_t, size_t)> wrapped(std::ref(fn));  // an lvalue: the overload above
  parallel_for_ranges(n_items, max_threads, wrapped);
}

}  // namespace qgemm
