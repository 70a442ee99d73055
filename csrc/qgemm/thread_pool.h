// A small persistent pool of the library's own threads (no OpenMP runtime to
// fight other libraries in the same process).
#pragma once
#include <cstddef>
#include <functional>

namespace qgemm {

// Number of threads parallel_for uses (including the caller). Default: the
// CPUs this process may run on, or QGEMM_NUM_THREADS if set.
int get_num_threads();
void set_num_threads(int n);  // n >= 1

// Runs fn(task) for task in [0, n_tasks) on up to get_num_threads() threads,
// the caller included, and returns when all are done. If the pool is busy
// (another thread's call, or a nested call) the tasks run on the caller: safe
// for concurrent callers, never a deadlock. Exceptions must not escape fn.
void parallel_for(size_t n_tasks, const std::function<void(size_t)>& fn);

}  // namespace qgemm
