// Reject reason names and the watermark-dependent time checks.
#include <algorithm>
#include <array>
#include <limits>

#include "absl/strings/str_cat.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

constexpr std::array<std::string_view, kNumRejectReasons> kReasonNames = {
    "malformed",    "not_object", "missing_field", "invalid_model_id",
    "invalid_time", "future",     "too_late",      "too_large",
};

std::string DayLabel(Day day) { return FormatRfc3339(StartOfDay(day)).substr(0, 10); }

}  // namespace

std::string_view RejectReasonName(RejectReason r) {
  const auto i = static_cast<size_t>(r);
  return i < kReasonNames.size() ? kReasonNames[i] : std::string_view("unknown");
}

std::optional<Rejection> CheckEventSize(uint64_t size, uint64_t max_bytes) {
  if (size <= max_bytes) return std::nullopt;
  return Rejection{RejectReason::kTooLarge,
                   absl::StrCat("record of ", size, " bytes is longer than the limit of ",
                                max_bytes, " bytes (--max_event_bytes)")};
}

std::optional<RejectReason> RejectReasonFromName(std::string_view name) {
  for (size_t i = 0; i < kReasonNames.size(); ++i) {
    if (kReasonNames[i] == name) return static_cast<RejectReason>(i);
  }
  return std::nullopt;
}

EventValidator::EventValidator(ValidatorOptions options, const Clock* clock,
                               std::optional<absl::Time> watermark,
                               absl::flat_hash_map<int32_t, absl::Time> partitions, Day floor)
    : options_(options),
      clock_(clock),
      watermark_(watermark),
      partitions_(std::move(partitions)),
      floor_(floor) {
  // State from before per-partition watermarks: the global one stands for all.
  if (partitions_.empty() && watermark_) {
    floor_ = std::max(floor_, DayOf(*watermark_) - options_.lateness_days);
  }
  RaiseFloor();
}

void EventValidator::ExpectPartitions(std::span<const int32_t> partitions) {
  for (int32_t p : partitions) partitions_.try_emplace(p, absl::InfinitePast());
}

void EventValidator::RaiseFloor() {
  if (partitions_.empty()) return;
  Day lowest = std::numeric_limits<Day>::max();
  for (const auto& [p, w] : partitions_) {
    if (w == absl::InfinitePast()) return;  // an expected partition not heard from yet
    lowest = std::min(lowest, DayOf(w));
  }
  floor_ = std::max(floor_, lowest - options_.lateness_days);
}

std::optional<Rejection> EventValidator::Accept(absl::Time time, int32_t partition,
                                                absl::Time now) {
  if (now != limit_for_) {
    limit_for_ = now;
    future_limit_ = now + options_.max_future_skew;
  }
  if (time > future_limit_) {
    return Rejection{
        RejectReason::kFuture,
        absl::StrCat("event time ", FormatRfc3339(time), " is ", absl::FormatDuration(time - now),
                     " ahead of the wall clock; at most ",
                     absl::FormatDuration(options_.max_future_skew), " allowed")};
  }
  const Day day = DayOf(time);
  auto it = partitions_.find(partition);
  if (day < floor_) {
    return Rejection{RejectReason::kTooLate,
                     absl::StrCat("event day ", DayLabel(day), " is before ", DayLabel(floor_),
                                  ", the oldest day whose downloads can still be deduplicated "
                                  "(lateness_days ",
                                  options_.lateness_days, ")")};
  }
  if (it != partitions_.end() && it->second != absl::InfinitePast()) {
    const Day oldest = DayOf(it->second) - options_.lateness_days;
    if (day < oldest) {
      return Rejection{RejectReason::kTooLate,
                       absl::StrCat("event day ", DayLabel(day), " is before ", DayLabel(oldest),
                                    ", the oldest day still accepted (watermark ",
                                    FormatRfc3339(it->second), " of partition ", partition,
                                    ", lateness_days ", options_.lateness_days, ")")};
    }
  }
  if (!watermark_ || time > *watermark_) watermark_ = time;
  if (it == partitions_.end()) {
    partitions_.emplace(partition, time);
    RaiseFloor();
  } else if (it->second == absl::InfinitePast()) {
    it->second = time;
    RaiseFloor();
  } else if (time > it->second) {
    const bool new_day = DayOf(time) != DayOf(it->second);
    it->second = time;
    if (new_day) RaiseFloor();
  }
  return std::nullopt;
}

}  // namespace hubmetrics
