// Helpers of lib/events exposed only for its unit tests.
#ifndef HUBMETRICS_LIB_EVENTS_INTERNAL_H_
#define HUBMETRICS_LIB_EVENTS_INTERNAL_H_

#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/events/events.h"

namespace hubmetrics::events_internal {

// The time check of DecodeJsonEvent: ParseRfc3339 (lib/time), with a fast path
// for "YYYY-MM-DDTHH:MM:SS[.fff]Z" that must agree with it exactly, and
// rejecting characters outside the RFC 3339 alphabet (which absl::ParseTime
// would skip: trailing whitespace, a NUL byte and whatever follows it).
absl::StatusOr<absl::Time> ParseEventTime(std::string_view text);

// DecodeJsonEventView has a fast path for lines that are one flat object of
// strings without escapes or non-ASCII bytes (what event producers write),
// which must agree exactly with its general path (simdjson). For the tests
// that check it: whether `line` takes the fast path, and the decoder without
// it.
bool JsonEventFastPathTaken(std::string_view line);
DecodeViewResult DecodeJsonEventViewGeneral(
    std::string_view line,
    absl::FunctionRef<bool(std::string_view)> is_valid_model_id = IsValidModelId);

}  // namespace hubmetrics::events_internal

#endif  // HUBMETRICS_LIB_EVENTS_INTERNAL_H_
