#include "lib/time/time.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"

namespace hubmetrics {
namespace {

constexpr absl::CivilDay kEpochDay(1970, 1, 1);

absl::CivilDay ToCivil(Day day) { return kEpochDay + day; }
Day FromCivil(absl::CivilDay d) { return static_cast<Day>(d - kEpochDay); }

// Monday-based weekday index: Monday 0 .. Sunday 6. 1970-01-01 was a Thursday (3).
int MondayIndex(Day day) { return static_cast<int>(((static_cast<int64_t>(day) + 3) % 7 + 7) % 7); }

Day MondayOfWeek1(int iso_year) {
  const Day jan4 = FromCivil(absl::CivilDay(iso_year, 1, 4));
  return jan4 - MondayIndex(jan4);
}

}  // namespace

Day DayOf(absl::Time t) { return FromCivil(absl::ToCivilDay(t, absl::UTCTimeZone())); }

absl::Time StartOfDay(Day day) { return absl::FromCivil(ToCivil(day), absl::UTCTimeZone()); }

IsoWeek IsoWeek::Containing(Day day) { return IsoWeek(day - MondayIndex(day)); }

int IsoWeek::year() const { return static_cast<int>(ToCivil(monday_ + 3).year()); }

int IsoWeek::week() const { return (monday_ - MondayOfWeek1(year())) / 7 + 1; }

std::string IsoWeek::Label() const { return absl::StrFormat("%04d-W%02d", year(), week()); }

absl::StatusOr<IsoWeek> IsoWeek::Parse(std::string_view label) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid ISO week '%s': expected YYYY-Www, e.g. 2025-W10 (W01..W53)", label));
  };
  if (label.size() != 8 || label[4] != '-' || (label[5] != 'W' && label[5] != 'w')) return bad();
  int year = 0;
  int week = 0;
  for (char c : label.substr(0, 4)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad();
  }
  for (char c : label.substr(6, 2)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad();
  }
  if (!absl::SimpleAtoi(absl::string_view(label.data(), 4), &year) ||
      !absl::SimpleAtoi(absl::string_view(label.data() + 6, 2), &week))
    return bad();
  if (year < 1 || week < 1 || week > 53) return bad();
  IsoWeek w(MondayOfWeek1(year) + 7 * (week - 1));
  if (w.year() != year) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid ISO week '%s': %04d has no week 53", label, year));
  }
  return w;
}

absl::StatusOr<absl::Time> ParseRfc3339(std::string_view text) {
  // absl accepts "Z" and "+hh:mm" for %Ez; we additionally insist on the fixed
  // shape the protobuf JSON mapping uses, so "2025-3-4T..." is rejected.
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid time '%s': %s; expected RFC 3339 like 2025-03-04T12:34:56Z", text, why));
  };
  if (text.size() < 20 || text.size() > 35) return bad("wrong length");
  if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') || text[13] != ':' ||
      text[16] != ':') {
    return bad("wrong shape");
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) return bad(err);
  static const absl::Time kMin = absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kMax =
      absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  if (t < kMin || t >= kMax) return bad("year outside 0001..9999");
  return t;
}

std::string FormatRfc3339(absl::Time t) {
  if (absl::ToUnixNanos(t) % 1000000000 == 0) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
  }
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

int64_t ToUnixMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromUnixMicros(int64_t micros) { return absl::FromUnixMicros(micros); }

const Clock& SystemClock::Get() {
  static const SystemClock* const kClock = new SystemClock();
  return *kClock;
}

absl::Time ManualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void ManualClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

void ManualClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

}  // namespace hubmetrics
