#include "lib/base/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"

namespace hubmetrics {
namespace {

// On Linux, PRIO_PROCESS with a thread id addresses that one thread.
id_t CurrentThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }

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

void LowerIngestPriority(int nice) {
  if (nice == 0) return;
  if (absl::Status s = SetCurrentThreadNice(nice); !s.ok()) {
    LogWarning("ingest threads keep the default priority: %s", s.message());
  }
}

int CurrentThreadNice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, CurrentThreadId());
}

}  // namespace hubmetrics
