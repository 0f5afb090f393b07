#include "lib/time/time.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

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

void AppendSortableDay(std::string* out, Day day) {
  const uint32_t u = static_cast<uint32_t>(day) ^ 0x80000000u;
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((u >> shift) & 0xff));
}

Day ReadSortableDay(std::string_view b) {
  uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u = (u << 8) | static_cast<uint8_t>(b[i]);
  return static_cast<Day>(u ^ 0x80000000u);
}

Day DayOf(absl::Time t) {
  // UTC days are exactly 86,400 s in absl (no leap seconds), so the day is a
  // floor division of the Unix time (ToUnixSeconds rounds down); the
  // civil-time conversion it replaces was several times slower, on the path
  // of every event. Beyond the range of Day (about +-5.8 million years, the
  // infinite times included) it saturates.
  const int64_t s = absl::ToUnixSeconds(t);
  const int64_t day = s / 86400 - (s % 86400 < 0 ? 1 : 0);
  return static_cast<Day>(
      std::clamp<int64_t>(day, std::numeric_limits<Day>::min(), std::numeric_limits<Day>::max()));
}

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

namespace {

bool Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

int Num(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// The exact shape the protobuf JSON mapping writes and the Python reference
// accepts: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM), uppercase T and Z,
// no leap second. absl::ParseTime alone is more lenient (lowercase, "+0100",
// ":60", trailing space), which would make the two disagree on invalid_time.
bool StrictShape(std::string_view t) {
  if (!Digits(t, 0, 4) || t.size() < 20 || t[4] != '-' || !Digits(t, 5, 2) || t[7] != '-' ||
      !Digits(t, 8, 2) || t[10] != 'T' || !Digits(t, 11, 2) || t[13] != ':' || !Digits(t, 14, 2) ||
      t[16] != ':' || !Digits(t, 17, 2)) {
    return false;
  }
  if (Num(t, 11, 2) > 23 || Num(t, 14, 2) > 59 || Num(t, 17, 2) > 59) return false;
  size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    size_t digits = 0;
    while (pos + 1 + digits < t.size() && t[pos + 1 + digits] >= '0' && t[pos + 1 + digits] <= '9')
      ++digits;
    if (digits < 1 || digits > 9) return false;
    pos += 1 + digits;
  }
  if (pos < t.size() && t[pos] == 'Z') return pos + 1 == t.size();
  if (pos + 6 != t.size() || (t[pos] != '+' && t[pos] != '-') || !Digits(t, pos + 1, 2) ||
      t[pos + 3] != ':' || !Digits(t, pos + 4, 2)) {
    return false;
  }
  return Num(t, pos + 1, 2) <= 23 && Num(t, pos + 4, 2) <= 59;
}

}  // namespace

absl::StatusOr<absl::Time> ParseRfc3339(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid time '%s': %s; expected RFC 3339 like 2025-03-04T12:34:56Z", text, why));
  };
  if (!StrictShape(text)) return bad("wrong shape");
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) return bad(err);
  static const absl::Time kMin =
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kMax =
      absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  if (t < kMin || t >= kMax) return bad("year outside 0001..9999");
  return t;
}

std::string FormatRfc3339(absl::Time t) {
  // %E4Y, not %Y: RFC 3339 years have four digits, and %Y writes year 1 as "1".
  if (absl::ToUnixNanos(t) % 1000000000 == 0) {
    return absl::FormatTime("%E4Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
  }
  return absl::FormatTime("%E4Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
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
