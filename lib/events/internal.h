// Helpers of lib/events exposed only for its unit tests.
#ifndef HUBMETRICS_LIB_EVENTS_INTERNAL_H_
#define HUBMETRICS_LIB_EVENTS_INTERNAL_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hubmetrics::events_internal {

// The time check of DecodeJsonEvent: ParseRfc3339 (lib/time), with a fast path
// for "YYYY-MM-DDTHH:MM:SS[.fff]Z" that must agree with it exactly, and
// rejecting characters outside the RFC 3339 alphabet (which absl::ParseTime
// would skip: trailing whitespace, a NUL byte and whatever follows it).
absl::StatusOr<absl::Time> ParseEventTime(std::string_view text);

}  // namespace hubmetrics::events_internal

#endif  // HUBMETRICS_LIB_EVENTS_INTERNAL_H_
