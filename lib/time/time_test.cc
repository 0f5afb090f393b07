#include "lib/time/time.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>
#include <limits>
#include <random>

#include "absl/time/civil_time.h"

namespace hubmetrics {
namespace {

Day D(int y, int m, int d) {
  return DayOf(absl::FromCivil(absl::CivilDay(y, m, d), absl::UTCTimeZone()));
}

TEST(DayOf, EpochAndNegative) {
  EXPECT_EQ(D(1970, 1, 1), 0);
  EXPECT_EQ(D(1970, 1, 2), 1);
  EXPECT_EQ(D(1969, 12, 31), -1);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(86399)), 0);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(-1)), -1);
  EXPECT_EQ(StartOfDay(1), absl::FromUnixSeconds(86400));
}

// Oracle: glibc's strftime %G-W%V over every day of 1990..2040.
// The floor-division DayOf against absl's civil-time conversion: random
// times (fractional seconds, negative, around day boundaries) over years
// 0001..9999 and beyond, plus the infinite times.
TEST(DayOf, AgreesWithCivilConversion) {
  std::mt19937_64 rng(11);
  auto civil = [](absl::Time t) {
    return static_cast<Day>(absl::ToCivilDay(t, absl::UTCTimeZone()) - absl::CivilDay(1970, 1, 1));
  };
  const int64_t kYear1 = -62135596800;
  const int64_t kYear9999 = 253402300799;
  for (int i = 0; i < 200000; ++i) {
    int64_t s = kYear1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(kYear9999 - kYear1));
    if (i % 4 == 0) s = (s / 86400) * 86400 + static_cast<int64_t>(rng() % 3) - 1;  // boundaries
    const absl::Time t = absl::FromUnixSeconds(s) + absl::Nanoseconds(rng() % 1000000000);
    ASSERT_EQ(DayOf(t), civil(t)) << absl::FormatTime(t);
  }
  for (int64_t s : {int64_t{0}, int64_t{-1}, int64_t{86399}, int64_t{86400}, int64_t{-86400},
                    int64_t{-86401}, (int64_t{1} << 40) - 1, -(int64_t{1} << 40) + 1,
                    int64_t{1} << 40, -(int64_t{1} << 40), int64_t{1} << 45}) {
    const absl::Time t = absl::FromUnixSeconds(s);
    EXPECT_EQ(DayOf(t), civil(t)) << s;
    EXPECT_EQ(DayOf(t - absl::Nanoseconds(1)), civil(t - absl::Nanoseconds(1))) << s;
  }
  // Past the range of Day (and for the infinite times, whose civil day the
  // oracle cannot subtract without overflowing) the day saturates.
  constexpr Day kMax = std::numeric_limits<Day>::max();
  constexpr Day kMin = std::numeric_limits<Day>::min();
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(int64_t{86400} * kMax + 86399)), kMax);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(int64_t{86400} * kMax + 86400)), kMax);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(int64_t{86400} * kMin)), kMin);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(int64_t{86400} * kMin - 1)), kMin);
  EXPECT_EQ(DayOf(absl::InfiniteFuture()), kMax);
  EXPECT_EQ(DayOf(absl::InfinitePast()), kMin);
}

TEST(IsoWeek, MatchesStrftimeForEveryDayOf50Years) {
  for (Day day = D(1990, 1, 1); day <= D(2040, 12, 31); ++day) {
    std::time_t secs = static_cast<std::time_t>(day) * 86400;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%G-W%V", &tm);
    IsoWeek w = IsoWeek::Containing(day);
    ASSERT_EQ(w.Label(), buf) << "day " << day;
    ASSERT_TRUE(w.Contains(day));
    ASSERT_EQ(tm.tm_wday == 0 ? 7 : tm.tm_wday, day - w.monday() + 1);
    auto parsed = IsoWeek::Parse(buf);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(*parsed, w);
  }
}

TEST(IsoWeek, KnownLabels) {
  EXPECT_EQ(IsoWeek::Containing(D(2025, 3, 4)).Label(), "2025-W10");
  EXPECT_EQ(IsoWeek::Containing(D(2024, 12, 30)).Label(), "2025-W01");
  EXPECT_EQ(IsoWeek::Containing(D(2021, 1, 3)).Label(), "2020-W53");
  EXPECT_EQ(IsoWeek::Containing(D(2025, 3, 4)).monday(), D(2025, 3, 3));
}

TEST(IsoWeek, ParseRejectsWhatIsNotAWeek) {
  for (const char* bad : {"", "2025-10", "2025-W00", "2025-W54", "2025-W1", "2025W10", "x025-W10",
                          "2025-W1a", "2025-W53" /* 2025 has 52 weeks */}) {
    auto w = IsoWeek::Parse(bad);
    EXPECT_FALSE(w.ok()) << bad;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(IsoWeek::Parse("2020-W53").ok());
}

TEST(IsoWeek, Arithmetic) {
  IsoWeek w = *IsoWeek::Parse("2025-W01");
  EXPECT_EQ(w.Plus(-1).Label(), "2024-W52");
  EXPECT_EQ(w.Plus(9).Label(), "2025-W10");
  EXPECT_EQ(w.Plus(9).WeeksSince(w), 9);
}

TEST(Rfc3339, ParsesProtobufJsonShapes) {
  EXPECT_EQ(*ParseRfc3339("2025-03-04T12:34:56Z"),
            absl::FromCivil(absl::CivilSecond(2025, 3, 4, 12, 34, 56), absl::UTCTimeZone()));
  EXPECT_EQ(*ParseRfc3339("2025-03-04T12:34:56.5Z"),
            absl::FromCivil(absl::CivilSecond(2025, 3, 4, 12, 34, 56), absl::UTCTimeZone()) +
                absl::Milliseconds(500));
  EXPECT_EQ(*ParseRfc3339("2025-03-04T14:34:56+02:00"), *ParseRfc3339("2025-03-04T12:34:56Z"));
  for (const char* bad :
       {"", "2025-03-04", "2025-03-04 12:34:56Z", "2025-13-04T12:34:56Z", "2025-03-04T12:34:56",
        "yesterday", "2025-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "2025-03-04t12:34:56Z",
        "2025-03-04T12:34:56z", "2025-03-04T12:34:56+0100", "2025-03-04T12:34:56+01",
        "2025-03-04T12:34:60Z", "2025-03-04T12:34:56.1234567890Z", "2025-03-04T12:34:56Z ",
        "2025-03-04T24:00:00Z", "2025-03-04T12:34:56.Z", "2025-03-04T12:34:56+24:00"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(Rfc3339, FormatRoundTrips) {
  absl::Time t = *ParseRfc3339("2025-03-04T12:34:56Z");
  EXPECT_EQ(FormatRfc3339(t), "2025-03-04T12:34:56Z");
  EXPECT_EQ(*ParseRfc3339(FormatRfc3339(t + absl::Microseconds(7))), t + absl::Microseconds(7));
}

// Years before 1000 keep their four digits (found by tests/fuzz: "%Y" wrote
// "1-01-01T01:30:00Z", which ParseRfc3339 rejects and too_late details cut wrong).
TEST(Rfc3339, FormatPadsEarlyYearsToFourDigits) {
  for (const char* text :
       {"0001-01-01T00:00:00Z", "0099-12-31T23:59:59.5Z", "0999-06-01T00:00:00Z"}) {
    absl::Time t = *ParseRfc3339(text);
    EXPECT_EQ(FormatRfc3339(t), text);
    EXPECT_EQ(*ParseRfc3339(FormatRfc3339(t)), t) << text;
  }
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("0001-01-01T00:30:00-01:00")), "0001-01-01T01:30:00Z");
}

TEST(ManualClock, AdvancesOnlyWhenTold) {
  ManualClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
}

}  // namespace
}  // namespace hubmetrics
