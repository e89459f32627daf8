// parallel_for(n, threads, chunk, fn): an OpenMP loop over [0, n) that carries the first
// exception out of the parallel region and rethrows it — an exception escaping an OpenMP
// region would terminate the process instead of reaching the caller as an error.
#pragma once
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <exception>

namespace herd::data {

template <typename F>
void parallel_for(int64_t n, int threads, int chunk, F&& fn) {
  if (threads <= 0) threads = omp_get_max_threads();
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, chunk) num_threads(threads)
  for (int64_t i = 0; i < n; i++) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      fn(i);
    } catch (...) {
#pragma omp critical(herd_parallel_for_error)
      if (!error) error = std::current_exception();
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace herd::data
