// A fixed set of threads running submitted tasks in submission order.
//
// For work that may block (waiting for a lock held by ingest) and must not run
// on a thread that others wait on, such as a gRPC callback thread.
//
// Lifetime: the destructor runs every task already submitted (and those they
// submit), then joins the threads. Once destruction has begun, only tasks may
// call Schedule(). Tasks must not destroy the pool.
//
// Thread safety: Schedule() and pending() may be called from any thread,
// including from a task.
#ifndef HUBMETRICS_LIB_BASE_THREAD_POOL_H_
#define HUBMETRICS_LIB_BASE_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace hubmetrics {

class ThreadPool {
 public:
  // Starts `threads` threads (at least 1), named `name` (thread_name.h).
  explicit ThreadPool(int threads, std::string_view name = "hm-pool");
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  // Runs `task` on one of the threads, after the tasks submitted before it
  // have started. Never blocks: the queue is unbounded.
  void Schedule(absl::AnyInvocable<void() &&> task);

  // Tasks submitted and not started yet.
  size_t pending() const;

 private:
  void Work();

  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_THREAD_POOL_H_
