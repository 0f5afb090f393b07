#include <limits>
#include <optional>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::Time At(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

// Days since 1970-01-01 computed independently of lib/time.
Day DaysSinceEpoch(int y, int mo, int d) {
  return static_cast<Day>(absl::CivilDay(y, mo, d) - absl::CivilDay(1970, 1, 1));
}

DecodedEvent Ev(absl::Time t) { return DecodedEvent{"org/model", "SECRET-USER-42", t}; }

std::optional<RejectReason> ReasonOf(const std::optional<Rejection>& r) {
  if (!r.has_value()) return std::nullopt;
  EXPECT_THAT(r->detail, Not(HasSubstr("SECRET-USER-42")));
  return r->reason;
}

TEST(RejectReasonTest, NamesRoundTrip) {
  const char* const names[kNumRejectReasons] = {"malformed",        "not_object",   "missing_field",
                                                "invalid_model_id", "invalid_time", "future",
                                                "too_late",         "too_large"};
  for (int i = 0; i < kNumRejectReasons; ++i) {
    const auto r = static_cast<RejectReason>(i);
    EXPECT_EQ(RejectReasonName(r), names[i]);
    EXPECT_EQ(RejectReasonFromName(names[i]), r);
  }
  EXPECT_EQ(RejectReasonFromName(""), std::nullopt);
  EXPECT_EQ(RejectReasonFromName("Malformed"), std::nullopt);
  EXPECT_EQ(RejectReasonFromName("too-late"), std::nullopt);
}

TEST(CheckEventSizeTest, OverTheLimitIsTooLargeAndSaysBothSizes) {
  EXPECT_EQ(CheckEventSize(0, 10), std::nullopt);
  EXPECT_EQ(CheckEventSize(10, 10), std::nullopt);
  const std::optional<Rejection> r = CheckEventSize(11, 10);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, RejectReason::kTooLarge);
  EXPECT_THAT(r->detail, HasSubstr("11 bytes"));
  EXPECT_THAT(r->detail, HasSubstr("10 bytes"));
  EXPECT_THAT(r->detail, HasSubstr("--max_event_bytes"));
  const std::optional<Rejection> huge = CheckEventSize(uint64_t{1} << 30, kDefaultMaxEventBytes);
  ASSERT_TRUE(huge.has_value());
  EXPECT_THAT(huge->detail, HasSubstr("1073741824 bytes"));
}

TEST(EventValidatorTest, FutureBoundaryIsInclusive) {
  const absl::Time now = At(2025, 3, 4, 12);
  ManualClock clock(now);
  EventValidator v(ValidatorOptions{}, &clock, std::nullopt);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(now + absl::Hours(1) + absl::Microseconds(1)))),
            RejectReason::kFuture);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(now + absl::Hours(3)))), RejectReason::kFuture);
  EXPECT_FALSE(v.watermark().has_value());  // a rejected event does not move it
  EXPECT_EQ(ReasonOf(v.Accept(Ev(now + absl::Hours(1)))), std::nullopt);
  EXPECT_EQ(v.watermark(), now + absl::Hours(1));
}

TEST(EventValidatorTest, FutureFollowsTheClockAndOptions) {
  const absl::Time now = At(2025, 3, 4, 12);
  ManualClock clock(now);
  ValidatorOptions options;
  options.max_future_skew = absl::Minutes(5);
  EventValidator v(options, &clock, std::nullopt);
  const absl::Time t = now + absl::Minutes(10);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(t))), RejectReason::kFuture);
  clock.Advance(absl::Minutes(5));
  EXPECT_EQ(ReasonOf(v.Accept(Ev(t))), std::nullopt);
}

TEST(EventValidatorTest, TooLateBoundaryIsTheLatenessDay) {
  ManualClock clock(At(2025, 3, 20));
  const absl::Time watermark = At(2025, 3, 10, 15, 30);
  EventValidator v(ValidatorOptions{}, &clock, watermark);  // lateness_days 3
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 7));
  // Day 2025-03-07 (exactly 3 days before) is accepted, even its first instant.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 7)))), std::nullopt);
  // The last instant of 2025-03-06 is one day too many.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 7) - absl::Nanoseconds(1)))), RejectReason::kTooLate);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 6, 12)))), RejectReason::kTooLate);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2000, 1, 1)))), RejectReason::kTooLate);
  EXPECT_EQ(v.watermark(), watermark);  // old accepted events do not lower it
}

TEST(EventValidatorTest, TooLateMessageNamesDaysInFull) {
  ManualClock clock(At(2025, 3, 20));
  EventValidator v(ValidatorOptions{}, &clock, At(2025, 3, 10, 15, 30));
  const std::optional<Rejection> r = v.Accept(Ev(At(1, 1, 1)));
  ASSERT_EQ(ReasonOf(r), RejectReason::kTooLate);
  EXPECT_THAT(r->detail, HasSubstr("event day 0001-01-01 is before 2025-03-07")) << r->detail;
}

// A consumer catching up reads partition 0 days ahead of partition 1: the
// slower partition's events are judged against its own progress, and dedup
// state is kept until every expected partition has moved on.
TEST(EventValidatorTest, LatenessIsPerPartition) {
  ManualClock clock(At(2025, 4, 1));
  EventValidator v(ValidatorOptions{}, &clock, std::nullopt);  // lateness_days 3
  const int32_t parts[] = {0, 1};
  v.ExpectPartitions(parts);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 20)), 0)), std::nullopt);
  // Partition 1 has delivered nothing yet: nothing may be dropped.
  EXPECT_EQ(v.OldestAcceptedDay(), std::numeric_limits<Day>::min());
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 1)), 1)), std::nullopt);
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 2, 26));
  // Ten days behind partition 0, but on time for partition 1.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 2)), 1)), std::nullopt);
  // Late within its own partition.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 16)), 0)), RejectReason::kTooLate);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 17)), 0)), std::nullopt);
  EXPECT_EQ(v.watermark(), At(2025, 3, 20));
  // Partition 1 moves on: the horizon follows the slowest partition.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 10)), 1)), std::nullopt);
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 7));
  // A partition assigned later cannot bring back days whose state is gone...
  const int32_t more[] = {2};
  v.ExpectPartitions(more);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 6)), 2)), RejectReason::kTooLate);
  // ...nor can the horizon move back down.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 8)), 2)), std::nullopt);
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 7));
  EXPECT_EQ(v.partition_watermarks().at(1), At(2025, 3, 10));

  // Restored with the stored per-partition watermarks, it judges the same way.
  EventValidator restored(ValidatorOptions{}, &clock, v.watermark(), v.partition_watermarks(),
                          v.OldestAcceptedDay());
  EXPECT_EQ(restored.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 7));
  EXPECT_EQ(ReasonOf(restored.Accept(Ev(At(2025, 3, 6)), 1)), RejectReason::kTooLate);
  EXPECT_EQ(ReasonOf(restored.Accept(Ev(At(2025, 3, 16, 12)), 0)), RejectReason::kTooLate);
  EXPECT_EQ(ReasonOf(restored.Accept(Ev(At(2025, 3, 7)), 1)), std::nullopt);
}

TEST(EventValidatorTest, LatenessDaysOption) {
  ManualClock clock(At(2025, 3, 20));
  ValidatorOptions options;
  options.lateness_days = 0;
  EventValidator v(options, &clock, At(2025, 3, 10, 23, 59, 59));
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 10));
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 10)))), std::nullopt);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 9, 23, 59, 59)))), RejectReason::kTooLate);
}

TEST(EventValidatorTest, WatermarkAdvancesOnlyOnAcceptance) {
  ManualClock clock(At(2025, 3, 10, 12));
  EventValidator v(ValidatorOptions{}, &clock, std::nullopt);
  EXPECT_EQ(v.OldestAcceptedDay(), std::numeric_limits<Day>::min());
  // Before the first event nothing is too late.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(1990, 1, 1)))), std::nullopt);
  EXPECT_EQ(v.watermark(), At(1990, 1, 1));
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(1989, 12, 29));

  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 10, 8)))), std::nullopt);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 8));
  // A duplicate of an accepted event is accepted again (duplicates are not the validator's
  // business).
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 10, 8)))), std::nullopt);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 8));
  // An older but still accepted event leaves it.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 8)))), std::nullopt);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 8));
  // A future event does not move it.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 11)))), RejectReason::kFuture);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 8));
  // A too-late event does not move it either.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 1)))), RejectReason::kTooLate);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 8));
  // A newer one does, and moves the lateness horizon with it.
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 10, 12, 30)))), std::nullopt);
  EXPECT_EQ(v.watermark(), At(2025, 3, 10, 12, 30));
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 7));
  clock.Set(At(2025, 3, 14));
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 13, 1)))), std::nullopt);
  EXPECT_EQ(v.OldestAcceptedDay(), DaysSinceEpoch(2025, 3, 10));
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 3, 9, 23)))), RejectReason::kTooLate);
}

TEST(EventValidatorTest, FutureIsCheckedBeforeTooLate) {
  // A watermark far ahead of the clock (restored state, clock stepped back):
  // an event that is both future and too late is reported as future.
  ManualClock clock(At(2025, 1, 1));
  EventValidator v(ValidatorOptions{}, &clock, At(2025, 6, 1));
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2025, 2, 1)))), RejectReason::kFuture);
  EXPECT_EQ(ReasonOf(v.Accept(Ev(At(2024, 12, 31)))), RejectReason::kTooLate);
}

TEST(EventValidatorTest, DetailsExplain) {
  ManualClock clock(At(2025, 3, 10));
  EventValidator v(ValidatorOptions{}, &clock, At(2025, 3, 10));
  std::optional<Rejection> future = v.Accept(Ev(At(2025, 3, 10, 3)));
  ASSERT_TRUE(future.has_value());
  EXPECT_THAT(future->detail, HasSubstr("2025-03-10T03:00:00Z"));
  std::optional<Rejection> late = v.Accept(Ev(At(2025, 3, 1)));
  ASSERT_TRUE(late.has_value());
  EXPECT_THAT(late->detail, HasSubstr("2025-03-01"));
  EXPECT_THAT(late->detail, HasSubstr("2025-03-07"));
}

}  // namespace
}  // namespace hubmetrics
