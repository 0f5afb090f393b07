#include "lib/base/log.h"

#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hubmetrics {

void LogLine(LogLevel level, std::string_view message) {
  const char* tag = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  std::string now = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  absl::FPrintF(stderr, "%s %s %s\n", tag, now, message);
}

}  // namespace hubmetrics
