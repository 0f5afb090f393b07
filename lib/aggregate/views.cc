#include "lib/aggregate/views.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hubmetrics {

View View::FromIndex(int index) {
  View v;
  v.attribution = static_cast<Attribution>(index % 2);
  v.filter = static_cast<Filter>((index / 2) % 2);
  v.level = static_cast<Level>(index / 4);
  return v;
}

std::string_view LevelName(Level l) {
  switch (l) {
    case Level::kModel:
      return "model";
    case Level::kDeveloper:
      return "developer";
    case Level::kCountry:
      return "country";
  }
  return "?";
}

std::string_view FilterName(Filter f) { return f == Filter::kAll ? "all" : "rolling_1y"; }

std::string_view AttributionName(Attribution a) {
  return a == Attribution::kDirect ? "direct" : "recursive";
}

v1::View View::ToProto() const {
  v1::View v;
  v.set_level(std::string(LevelName(level)));
  v.set_filter(std::string(FilterName(filter)));
  v.set_attribution(std::string(AttributionName(attribution)));
  return v;
}

absl::StatusOr<View> ParseView(const v1::View& p) {
  View v;
  if (p.level() == "model") {
    v.level = Level::kModel;
  } else if (p.level() == "developer") {
    v.level = Level::kDeveloper;
  } else if (p.level() == "country") {
    v.level = Level::kCountry;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        p.level().empty() ? "missing level" : absl::StrCat("unknown level '", p.level(), "'"),
        ": allowed are model, developer, country"));
  }
  if (p.filter().empty() || p.filter() == "all") {
    v.filter = Filter::kAll;
  } else if (p.filter() == "rolling_1y") {
    v.filter = Filter::kRolling1y;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown filter '", p.filter(), "': allowed are all, rolling_1y"));
  }
  if (p.attribution().empty() || p.attribution() == "direct") {
    v.attribution = Attribution::kDirect;
  } else if (p.attribution() == "recursive") {
    v.attribution = Attribution::kRecursive;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown attribution '", p.attribution(), "': allowed are direct, recursive"));
  }
  return v;
}

std::string Window::Label() const {
  switch (kind) {
    case Kind::kAll:
      return "all";
    case Kind::kWeek:
      return absl::StrCat("week:", week.Label());
    case Kind::kTrailing:
      return absl::StrCat("trailing:", weeks);
  }
  return "?";
}

std::optional<std::pair<IsoWeek, IsoWeek>> Window::Range(
    std::optional<IsoWeek> watermark_week) const {
  switch (kind) {
    case Kind::kAll:
      return std::nullopt;
    case Kind::kWeek:
      return std::make_pair(week, week);
    case Kind::kTrailing:
      if (!watermark_week) return std::nullopt;
      return std::make_pair(watermark_week->Plus(-(weeks - 1)), *watermark_week);
  }
  return std::nullopt;
}

absl::StatusOr<Window> ParseWindow(std::string_view text) {
  constexpr const char* kAllowed =
      "allowed are all, week:YYYY-Www (e.g. week:2025-W10), trailing:N with 1 <= N <= 1040";
  Window w;
  if (text.empty() || text == "all") return w;
  if (text.substr(0, 5) == "week:") {
    auto week = IsoWeek::Parse(text.substr(5));
    if (!week.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid window '", absl::string_view(text.data(), text.size()),
                       "': ", week.status().message(), "; ", kAllowed));
    }
    w.kind = Window::Kind::kWeek;
    w.week = *week;
    return w;
  }
  if (text.substr(0, 9) == "trailing:") {
    int n = 0;
    std::string_view num = text.substr(9);
    bool digits = !num.empty() && num.size() <= 5;
    for (char c : num) digits = digits && c >= '0' && c <= '9';
    if (digits && absl::SimpleAtoi(absl::string_view(num.data(), num.size()), &n) && n >= 1 &&
        n <= kMaxWindowWeeks) {
      w.kind = Window::Kind::kTrailing;
      w.weeks = n;
      return w;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid window '", absl::string_view(text.data(), text.size()), "': ", kAllowed));
}

absl::StatusOr<std::vector<uint32_t>> ParseTopK(
    const google::protobuf::RepeatedField<uint32_t>& ks) {
  if (ks.empty()) return std::vector<uint32_t>{1, 10, 100};
  if (ks.size() > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many top_k values (", ks.size(), "): at most 16"));
  }
  for (uint32_t k : ks) {
    if (k < 1 || k > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k ", k, " is out of range: each k must be between 1 and 1000000"));
    }
  }
  return std::vector<uint32_t>(ks.begin(), ks.end());
}

}  // namespace hubmetrics
