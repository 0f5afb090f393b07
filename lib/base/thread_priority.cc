#include "lib/base/thread_priority.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"

namespace hubmetrics {
namespace {

// On Linux, PRIO_PROCESS with a thread id addresses that one thread.
id_t CurrentThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }

std::string SchedulingError(int err, const std::string& what) {
  return absl::StrCat(what, ": ", std::strerror(err));
}

}  // namespace

absl::Status SetCurrentThreadNice(int nice) {
  if (nice < -20 || nice > 19) {
    return absl::InvalidArgumentError(absl::StrCat("nice ", nice, " is out of range: -20..19"));
  }
  if (setpriority(PRIO_PROCESS, CurrentThreadId(), nice) != 0) {
    const int err = errno;
    const std::string what =
        absl::StrCat("cannot set thread nice to ", nice, ": ", std::strerror(err));
    return err == EACCES || err == EPERM ? absl::PermissionDeniedError(what)
                                         : absl::InternalError(what);
  }
  return absl::OkStatus();
}

void LowerIngestPriority(int by) {
  if (by <= 0) return;
  const int nice = std::min(CurrentThreadNice() + by, 19);
  if (absl::Status s = SetCurrentThreadNice(nice); !s.ok()) {
    LogWarning("ingest threads keep the default priority: %s", s.message());
  }
}

absl::Status RunAtRealtimePriority(int priority, absl::FunctionRef<void()> start) {
  const int lowest = sched_get_priority_min(SCHED_FIFO);
  const int highest = sched_get_priority_max(SCHED_FIFO);
  if (priority < lowest || priority > highest) {
    return absl::InvalidArgumentError(
        absl::StrCat("real-time priority ", priority, " is out of range: ", lowest, "..", highest));
  }
  int policy = SCHED_OTHER;
  sched_param before{};
  if (const int err = pthread_getschedparam(pthread_self(), &policy, &before); err != 0) {
    return absl::InternalError(SchedulingError(err, "cannot read the thread's scheduling policy"));
  }
  sched_param realtime{};
  realtime.sched_priority = priority;
  if (const int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &realtime); err != 0) {
    const std::string what = SchedulingError(
        err, absl::StrCat("cannot use real-time priority ", priority, " (SCHED_FIFO)"));
    return err == EPERM ? absl::PermissionDeniedError(absl::StrCat(
                              what, "; it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least ",
                              priority, " (ulimit -r)"))
                        : absl::InternalError(what);
  }
  start();
  // Back to a time-shared policy, the kernel keeps the nice value it had.
  if (const int err = pthread_setschedparam(pthread_self(), policy, &before); err != 0) {
    return absl::InternalError(
        SchedulingError(err, "cannot return the thread to its scheduling policy"));
  }
  return absl::OkStatus();
}

int CurrentThreadRealtimePriority() {
  int policy = SCHED_OTHER;
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &policy, &param) != 0) return 0;
  return policy == SCHED_FIFO || policy == SCHED_RR ? param.sched_priority : 0;
}

int CurrentThreadNice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, CurrentThreadId());
}

}  // namespace hubmetrics
