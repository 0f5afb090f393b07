// Views (level x filter x attribution) and windows, as docs/DEFINITIONS.md
// defines them, and their parsing from the API's words.
//
// Thread safety: everything here is immutable values and pure functions.
#ifndef HUBMETRICS_LIB_AGGREGATE_VIEWS_H_
#define HUBMETRICS_LIB_AGGREGATE_VIEWS_H_

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/metrics.pb.h"

namespace hubmetrics {

enum class Level { kModel = 0, kDeveloper = 1, kCountry = 2 };
enum class Filter { kAll = 0, kRolling1y = 1 };
enum class Attribution { kDirect = 0, kRecursive = 1 };

struct View {
  Level level = Level::kModel;
  Filter filter = Filter::kAll;
  Attribution attribution = Attribution::kDirect;

  // 0..kNumViews-1, for arrays indexed by view.
  int Index() const {
    return (static_cast<int>(level) * 2 + static_cast<int>(filter)) * 2 +
           static_cast<int>(attribution);
  }
  static View FromIndex(int index);
  v1::View ToProto() const;
  friend bool operator==(const View&, const View&) = default;
};
inline constexpr int kNumViews = 12;

std::string_view LevelName(Level l);
std::string_view FilterName(Filter f);
std::string_view AttributionName(Attribution a);

// Parses a request's view. Empty filter means "all", empty attribution
// "direct"; level is required. InvalidArgument lists the allowed words.
absl::StatusOr<View> ParseView(const v1::View& view);

// Longest trailing window and series, in weeks (20 years).
inline constexpr int kMaxWindowWeeks = 1040;

struct Window {
  enum class Kind { kAll, kWeek, kTrailing };
  Kind kind = Kind::kAll;
  IsoWeek week = IsoWeek::FromMonday(0);  // kWeek only
  int weeks = 0;                          // kTrailing only: N

  // "all", "week:2025-W10", "trailing:4".
  std::string Label() const;
  // The ISO weeks covered, given the watermark's week; nullopt for kAll, and
  // for kTrailing before any event (no watermark: the window is empty).
  std::optional<std::pair<IsoWeek, IsoWeek>> Range(std::optional<IsoWeek> watermark_week) const;
};

// Parses "all", "week:YYYY-Www", "trailing:N" (1 <= N <= kMaxWindowWeeks); empty means "all".
absl::StatusOr<Window> ParseWindow(std::string_view text);

// Parses the k list of a request; empty means {1, 10, 100}. At most 16 values, each 1..1000000.
absl::StatusOr<std::vector<uint32_t>> ParseTopK(
    const google::protobuf::RepeatedField<uint32_t>& ks);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_AGGREGATE_VIEWS_H_
