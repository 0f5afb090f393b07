// Reject reason names and the watermark-dependent time checks.
#include <array>
#include <limits>

#include "absl/strings/str_cat.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

constexpr std::array<std::string_view, kNumRejectReasons> kReasonNames = {
    "malformed",    "not_object", "missing_field", "invalid_model_id",
    "invalid_time", "future",     "too_late",
};

std::string DayLabel(Day day) { return FormatRfc3339(StartOfDay(day)).substr(0, 10); }

}  // namespace

std::string_view RejectReasonName(RejectReason r) {
  const auto i = static_cast<size_t>(r);
  return i < kReasonNames.size() ? kReasonNames[i] : std::string_view("unknown");
}

std::optional<RejectReason> RejectReasonFromName(std::string_view name) {
  for (size_t i = 0; i < kReasonNames.size(); ++i) {
    if (kReasonNames[i] == name) return static_cast<RejectReason>(i);
  }
  return std::nullopt;
}

std::optional<Rejection> EventValidator::Accept(const DecodedEvent& e) {
  const absl::Time now = clock_->Now();
  if (e.time > now + options_.max_future_skew) {
    return Rejection{
        RejectReason::kFuture,
        absl::StrCat("event time ", FormatRfc3339(e.time), " is ",
                     absl::FormatDuration(e.time - now), " ahead of the wall clock; at most ",
                     absl::FormatDuration(options_.max_future_skew), " allowed")};
  }
  if (watermark_.has_value()) {
    const Day oldest = OldestAcceptedDay();
    const Day day = DayOf(e.time);
    if (day < oldest) {
      return Rejection{
          RejectReason::kTooLate,
          absl::StrCat("event day ", DayLabel(day), " is before ", DayLabel(oldest),
                       ", the oldest day still accepted (watermark ", FormatRfc3339(*watermark_),
                       ", lateness_days ", options_.lateness_days, ")")};
    }
    if (e.time > *watermark_) watermark_ = e.time;
  } else {
    watermark_ = e.time;
  }
  return std::nullopt;
}

Day EventValidator::OldestAcceptedDay() const {
  if (!watermark_.has_value()) return std::numeric_limits<Day>::min();
  return DayOf(*watermark_) - options_.lateness_days;
}

}  // namespace hubmetrics
