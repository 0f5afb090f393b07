#include "lib/aggregate/lane_worker.h"

#include <string>
#include <utility>

#include "lib/base/thread_name.h"

namespace hubmetrics {

LaneWorker::LaneWorker(std::string_view name)
    : thread_([this, name = std::string(name)] {
        SetCurrentThreadName(name);
        Loop();
      }) {}

LaneWorker::~LaneWorker() {
  {
    absl::MutexLock lock(&mu_);
    quit_ = true;
  }
  thread_.join();
}

void LaneWorker::Start(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  task_ = std::move(task);
  busy_ = true;
}

void LaneWorker::Wait() {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !busy_; };
  mu_.Await(absl::Condition(&done));
}

void LaneWorker::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return busy_ || quit_; };
      mu_.Await(absl::Condition(&ready));
      if (!busy_) return;  // quit_ with nothing to run
      task = std::move(task_);
    }
    task();
    absl::MutexLock lock(&mu_);
    busy_ = false;
  }
}

}  // namespace hubmetrics
