// A thread that runs one task at a time for its owner, who waits for it: the
// second lane of Aggregates::ApplyStaged (live distributions are independent,
// so two threads can update disjoint sets of them at once) and the pipeline's
// apply thread.
//
// Thread safety: Start() and Wait() calls must not overlap (the owner
// serializes them, from one thread or under its own lock), and a Start() must
// follow a Wait() (one task at a time); Wait() with no task running returns at
// once. The destructor waits for the running task and joins the thread.
#ifndef HUBMETRICS_LIB_AGGREGATE_LANE_WORKER_H_
#define HUBMETRICS_LIB_AGGREGATE_LANE_WORKER_H_

#include <functional>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace hubmetrics {

class LaneWorker {
 public:
  // The thread is named `name` (lib/base/thread_name.h).
  explicit LaneWorker(std::string_view name);
  ~LaneWorker();
  LaneWorker(const LaneWorker&) = delete;
  LaneWorker& operator=(const LaneWorker&) = delete;

  // Runs `task` on the worker thread; returns at once.
  void Start(std::function<void()> task);
  // Returns once the task given to Start() has finished.
  void Wait();

 private:
  void Loop();

  absl::Mutex mu_;
  std::function<void()> task_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_AGGREGATE_LANE_WORKER_H_
