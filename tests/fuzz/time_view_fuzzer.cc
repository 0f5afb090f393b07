// Fuzz target: the parsers of the API's words and of event times: ParseWindow,
// ParseView, ParseTopK (lib/views/views.h), IsoWeek::Parse and
// ParseRfc3339 (lib/time), and the JSON decoder's time fast path
// (events_internal::ParseEventTime). The whole input is the text of each
// parser; split at ',' it is a view (level, filter, attribution); read as
// little-endian 32-bit words it is a top_k list. Besides crashes and undefined
// behaviour, it aborts when:
//  - a failure is not InvalidArgument;
//  - a parsed value, printed again, does not parse to itself (window and week
//    labels, views through their proto and index, times through
//    FormatRfc3339), or breaks the documented bounds;
//  - the time fast path and ParseRfc3339 disagree (they must, exactly);
//  - DayOf, StartOfDay and IsoWeek::Containing disagree about a parsed time.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "lib/events/internal.h"
#include "lib/time/time.h"
#include "lib/views/views.h"
#include "tests/fuzz/fuzz_util.h"

namespace hubmetrics::fuzz {
namespace {

bool IsBadArgument(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty();
}

// The characters ParseEventTime allows before it calls ParseRfc3339.
bool Rfc3339Alphabet(std::string_view s) {
  for (char c : s) {
    if (std::string_view("0123456789-:.+TtZz").find(c) == std::string_view::npos) return false;
  }
  return true;
}

void CheckTime(std::string_view text) {
  const absl::StatusOr<absl::Time> t = ParseRfc3339(text);
  const absl::StatusOr<absl::Time> fast = events_internal::ParseEventTime(text);
  const bool want_fast = t.ok() && Rfc3339Alphabet(text);
  FUZZ_CHECK(fast.ok() == want_fast,
             absl::StrCat(Shown(text), ": ParseEventTime ", fast.status().ToString(),
                          ", ParseRfc3339 ", t.status().ToString()));
  if (fast.ok()) {
    FUZZ_CHECK(*fast == *t, absl::StrCat(Shown(text), ": ", absl::FormatTime(*fast), " vs ",
                                         absl::FormatTime(*t)));
  } else {
    FUZZ_CHECK(IsBadArgument(fast.status()), fast.status().ToString());
  }
  if (!t.ok()) {
    FUZZ_CHECK(IsBadArgument(t.status()), t.status().ToString());
    return;
  }
  static const absl::Time kMin =
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kEnd =
      absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  FUZZ_CHECK(*t >= kMin && *t < kEnd, Shown(text));

  const std::string printed = FormatRfc3339(*t);
  const absl::StatusOr<absl::Time> again = ParseRfc3339(printed);
  FUZZ_CHECK(again.ok() && *again == *t, absl::StrCat(Shown(text), " -> ", printed));

  const Day day = DayOf(*t);
  FUZZ_CHECK(StartOfDay(day) <= *t && *t < StartOfDay(day + 1), Shown(text));
  const IsoWeek week = IsoWeek::Containing(day);
  FUZZ_CHECK(week.Contains(day) && IsoWeek::Containing(week.monday()) == week, Shown(text));
  const absl::StatusOr<IsoWeek> parsed_week = IsoWeek::Parse(week.Label());
  // Weeks of year 0001 that begin in year 0000, and the ISO year 10000, have no label
  // Parse accepts; every other week's label parses back.
  if (week.year() >= 1 && week.year() <= 9999) {
    FUZZ_CHECK(parsed_week.ok() && *parsed_week == week,
               absl::StrCat(Shown(text), " -> ", week.Label()));
  }
}

void CheckWeek(std::string_view text) {
  const absl::StatusOr<IsoWeek> w = IsoWeek::Parse(text);
  if (!w.ok()) {
    FUZZ_CHECK(IsBadArgument(w.status()), w.status().ToString());
    return;
  }
  std::string upper(text);
  upper[5] = 'W';
  FUZZ_CHECK(w->Label() == upper, absl::StrCat(Shown(text), " -> ", w->Label()));
  FUZZ_CHECK(w->week() >= 1 && w->week() <= 53, w->Label());
  FUZZ_CHECK(IsoWeek::Containing(w->monday()) == *w && IsoWeek::Containing(w->sunday()) == *w,
             w->Label());
  FUZZ_CHECK(w->Plus(1).WeeksSince(*w) == 1 && w->Plus(-1).WeeksSince(*w) == -1, w->Label());
}

void CheckWindow(std::string_view text) {
  const absl::StatusOr<Window> w = ParseWindow(text);
  if (!w.ok()) {
    FUZZ_CHECK(IsBadArgument(w.status()), w.status().ToString());
    return;
  }
  const std::string label = w->Label();
  const absl::StatusOr<Window> again = ParseWindow(label);
  FUZZ_CHECK(again.ok() && again->kind == w->kind && again->Label() == label,
             absl::StrCat(Shown(text), " -> ", label));
  static const IsoWeek watermark =
      IsoWeek::Containing(DayOf(absl::FromCivil(absl::CivilDay(2025, 3, 14), absl::UTCTimeZone())));
  const auto range = w->Range(watermark);
  switch (w->kind) {
    case Window::Kind::kAll:
      FUZZ_CHECK(!range.has_value(), label);
      break;
    case Window::Kind::kWeek:
      FUZZ_CHECK(
          again->week == w->week && range && range->first == w->week && range->second == w->week,
          label);
      break;
    case Window::Kind::kTrailing:
      FUZZ_CHECK(w->weeks >= 1 && w->weeks <= kMaxWindowWeeks && again->weeks == w->weeks, label);
      FUZZ_CHECK(range && range->second == watermark &&
                     range->second.WeeksSince(range->first) == w->weeks - 1,
                 label);
      FUZZ_CHECK(!w->Range(std::nullopt).has_value(), label);
      break;
    case Window::Kind::kCurrentWeek:
      FUZZ_CHECK(range && range->first == watermark && range->second == watermark, label);
      FUZZ_CHECK(!w->Range(std::nullopt).has_value(), label);
      break;
    case Window::Kind::kRange:
      FUZZ_CHECK(again->week == w->week && again->last == w->last && range &&
                     range->first == w->week && range->second == w->last && !(w->last < w->week) &&
                     w->last.WeeksSince(w->week) < kMaxWindowWeeks,
                 label);
      break;
  }
}

void CheckView(std::string_view text) {
  v1::View proto;
  std::string* parts[4] = {proto.mutable_level(), proto.mutable_filter(),
                           proto.mutable_attribution(), proto.mutable_sample()};
  size_t start = 0;
  for (int i = 0; i < 4 && start <= text.size(); ++i) {
    const size_t comma = i == 3 ? std::string_view::npos : text.find(',', start);
    const size_t end = comma == std::string_view::npos ? text.size() : comma;
    parts[i]->assign(text.substr(start, end - start));
    start = end + 1;
  }
  const absl::StatusOr<View> v = ParseView(proto);
  if (!v.ok()) {
    FUZZ_CHECK(IsBadArgument(v.status()), v.status().ToString());
    return;
  }
  if (v->Liveable()) {
    FUZZ_CHECK(v->LiveIndex() >= 0 && v->LiveIndex() < kNumLiveViews, proto.ShortDebugString());
    FUZZ_CHECK(View::FromLiveIndex(v->LiveIndex()) == *v, proto.ShortDebugString());
  }
  const absl::StatusOr<View> again = ParseView(v->ToProto());
  FUZZ_CHECK(again.ok() && *again == *v, proto.ShortDebugString());
}

void CheckTopK(std::string_view bytes) {
  google::protobuf::RepeatedField<uint32_t> ks;
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    uint32_t k;
    std::memcpy(&k, bytes.data() + i, 4);
    ks.Add(k);
  }
  const absl::StatusOr<std::vector<uint32_t>> parsed = ParseTopK(ks);
  bool valid = ks.size() <= 16;
  for (uint32_t k : ks) valid = valid && k >= 1 && k <= 1000000;
  FUZZ_CHECK(parsed.ok() == valid, parsed.status().ToString());
  if (!parsed.ok()) {
    FUZZ_CHECK(IsBadArgument(parsed.status()), parsed.status().ToString());
    return;
  }
  if (ks.empty()) {
    FUZZ_CHECK((*parsed == std::vector<uint32_t>{1, 10, 100}), "default ks");
  } else {
    FUZZ_CHECK(std::vector<uint32_t>(ks.begin(), ks.end()) == *parsed, "ks changed");
  }
}

}  // namespace
}  // namespace hubmetrics::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  hubmetrics::fuzz::CheckTime(text);
  hubmetrics::fuzz::CheckWeek(text);
  hubmetrics::fuzz::CheckWindow(text);
  hubmetrics::fuzz::CheckView(text);
  hubmetrics::fuzz::CheckTopK(text);
  return 0;
}
