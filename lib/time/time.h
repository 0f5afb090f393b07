// Calendar arithmetic of hubmetrics: UTC days, ISO-8601 weeks, timestamps, and
// the clock behind an interface so that tests use a manual one.
//
// A Day is the number of UTC calendar days since 1970-01-01 (negative before).
// An IsoWeek is identified by its Monday's Day, so consecutive weeks differ by
// 7 and comparisons are plain integer comparisons.
//
// Thread safety: every free function is pure. SystemClock is thread-safe;
// ManualClock is thread-safe.
#ifndef HUBMETRICS_LIB_TIME_TIME_H_
#define HUBMETRICS_LIB_TIME_TIME_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace hubmetrics {

using Day = int32_t;

// The UTC day of `t`; saturates beyond the range of Day (the infinite times
// included).
Day DayOf(absl::Time t);

// A day as 4 bytes that sort in numeric order (big-endian, sign bit flipped):
// the form of days in stored keys (RocksDB state, unique topic).
void AppendSortableDay(std::string* out, Day day);
// The day of the first 4 bytes of `four_bytes` (at least 4 long).
Day ReadSortableDay(std::string_view four_bytes);
// Midnight UTC starting `day`.
absl::Time StartOfDay(Day day);

// An ISO-8601 week (Monday..Sunday, UTC), labelled "YYYY-Www".
class IsoWeek {
 public:
  // The week containing `day`.
  static IsoWeek Containing(Day day);
  // Parses "YYYY-Www" (W01..W53, and W53 only in years that have one).
  // InvalidArgument with the expected form otherwise.
  static absl::StatusOr<IsoWeek> Parse(std::string_view label);
  // The week whose Monday is `monday`; `monday` must be a Monday.
  static IsoWeek FromMonday(Day monday) { return IsoWeek(monday); }

  Day monday() const { return monday_; }
  Day sunday() const { return monday_ + 6; }
  // ISO week-numbering year and week number.
  int year() const;
  int week() const;
  // "YYYY-Www", e.g. "2025-W10".
  std::string Label() const;

  IsoWeek Plus(int weeks) const { return IsoWeek(monday_ + 7 * weeks); }
  // Number of weeks from `other` to this one (negative if this one is earlier).
  int WeeksSince(IsoWeek other) const { return (monday_ - other.monday_) / 7; }
  bool Contains(Day day) const { return day >= monday_ && day <= monday_ + 6; }

  friend bool operator==(IsoWeek a, IsoWeek b) { return a.monday_ == b.monday_; }
  friend auto operator<=>(IsoWeek a, IsoWeek b) { return a.monday_ <=> b.monday_; }
  template <typename H>
  friend H AbslHashValue(H h, IsoWeek w) {
    return H::combine(std::move(h), w.monday_);
  }

 private:
  explicit IsoWeek(Day monday) : monday_(monday) {}
  Day monday_;
};

// Parses an RFC 3339 timestamp as the protobuf JSON mapping writes it
// ("2025-03-04T12:34:56Z", optional fraction, "Z" or "+hh:mm"), years 0001..9999.
absl::StatusOr<absl::Time> ParseRfc3339(std::string_view text);
// "2025-03-04T12:34:56Z" (fraction only when non-zero).
std::string FormatRfc3339(absl::Time t);

// Microseconds since the Unix epoch (the unit of stored watermarks).
int64_t ToUnixMicros(absl::Time t);
absl::Time FromUnixMicros(int64_t micros);

// Where "now" comes from. Production uses SystemClock; unit tests use
// ManualClock and advance it instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance; never destroyed.
  static const Clock& Get();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override;
  void Set(absl::Time t);
  void Advance(absl::Duration d);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_TIME_TIME_H_
