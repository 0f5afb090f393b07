// Minimal structured logging to stderr: one line per message, with a UTC
// timestamp and level. The Debian abseil has no absl/log.
//
// Privacy: never pass a raw user id to these functions.
#ifndef HUBMETRICS_LIB_BASE_LOG_H_
#define HUBMETRICS_LIB_BASE_LOG_H_

#include <string_view>

#include "absl/strings/str_format.h"

namespace hubmetrics {

enum class LogLevel { kInfo, kWarning, kError };

void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_LOG_H_
