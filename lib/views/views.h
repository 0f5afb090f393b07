// The vocabulary of views — levels, filters, attributions, samples — and of
// windows, as docs/DEFINITIONS.md defines them, and their parsing from the
// API's words. This is the one place that lists them: hubmetricsd, the
// exporter, hubctl's help and the bench clients derive their lists from here.
//
// A level is one row of LevelTable(): its name and how its entity is derived
// from the catalog record of the credited model. Adding a level is a row plus
// its derivation (and a Level value).
//
// Thread safety: everything here is immutable values and pure functions.
#ifndef HUBMETRICS_LIB_VIEWS_VIEWS_H_
#define HUBMETRICS_LIB_VIEWS_VIEWS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "proto/hubmetrics/v1/metrics.pb.h"

namespace hubmetrics {

enum class Level : uint8_t {
  kModel = 0,
  kDeveloper = 1,
  kCountry = 2,
  kOrgType = 3,
  kLicense = 4,
  kTask = 5,
  kModality = 6,
  kSize = 7,
  kDerivation = 8,
};
inline constexpr int kNumLevels = 9;

// The entity of a level for a credited model: `model_id` is the credited
// model, `record` its catalog record or nullptr when it has none.
using DeriveEntity = std::string (*)(std::string_view model_id, const v1::ModelInfo* record);

struct LevelRow {
  Level level;
  std::string_view name;  // the API's word
  // What an entity of this level is, for help texts ("a model id", ...).
  std::string_view entity;
  DeriveEntity derive;
  // Whether the level can be kept in live distributions (updated per event);
  // the others are computed on request.
  bool live;
};

// Every level, in Level order.
std::span<const LevelRow> LevelTable();
const LevelRow& LevelOf(Level level);
inline std::string EntityOf(Level level, std::string_view model_id, const v1::ModelInfo* record) {
  return LevelOf(level).derive(model_id, record);
}

// The modality of a Hub pipeline tag (the Hub's task taxonomy): "nlp",
// "computer_vision", "audio", "multimodal", "tabular",
// "reinforcement_learning", "other" for a tag not in the taxonomy, "unknown"
// for an empty one.
std::string_view ModalityOf(std::string_view pipeline_tag);
// The size bucket of a parameter count ("<100M" ... ">=100B"); "unknown" for 0
// or less.
std::string_view SizeBucketOf(int64_t parameters);

enum class Filter : uint8_t { kAll = 0, kRolling1y = 1 };
enum class Attribution : uint8_t { kDirect = 0, kRecursive = 1 };
enum class Sample : uint8_t { kAll = 0, kPopulation = 1, kHead = 2 };

// The population sample: models with at least this many unique downloads in
// all time.
inline constexpr uint64_t kPopulationMinDownloads = 200;
// The head sample: models among this many largest of at least one ISO week.
inline constexpr size_t kHeadModelsPerWeek = 200;

inline constexpr std::array<Filter, 2> kFilters = {Filter::kAll, Filter::kRolling1y};
inline constexpr std::array<Attribution, 2> kAttributions = {Attribution::kDirect,
                                                             Attribution::kRecursive};
inline constexpr std::array<Sample, 3> kSamples = {Sample::kAll, Sample::kPopulation,
                                                   Sample::kHead};

std::string_view LevelName(Level l);
std::string_view FilterName(Filter f);
std::string_view AttributionName(Attribution a);
std::string_view SampleName(Sample s);

struct View {
  Level level = Level::kModel;
  // Set for a pair "level+second": the entity is both values joined by '|'.
  std::optional<Level> second;
  Filter filter = Filter::kAll;
  Attribution attribution = Attribution::kDirect;
  Sample sample = Sample::kAll;

  // Whether the view is one of the kNumLiveViews that can be kept live: a
  // live level alone, at sample all.
  bool Liveable() const { return !second && LevelOf(level).live && sample == Sample::kAll; }
  // 0..kNumLiveViews-1 for a Liveable() view, for arrays indexed by live view.
  int LiveIndex() const {
    return (static_cast<int>(level) * 2 + static_cast<int>(filter)) * 2 +
           static_cast<int>(attribution);
  }
  static View FromLiveIndex(int index);
  // "developer", "country+org_type".
  std::string LevelLabel() const;
  // "country+org_type/all/direct/head": unique per view.
  std::string Key() const;
  v1::View ToProto() const;
  friend bool operator==(const View&, const View&) = default;
};
// Live levels x filters x attributions at sample all.
inline constexpr int kNumLiveViews = 12;
// Every Liveable() view, by LiveIndex.
std::vector<View> AllLiveableViews();

// A view in one word, as View::Key() writes it: LEVEL[/FILTER[/ATTRIBUTION[/SAMPLE]]]
// ("developer/rolling_1y/recursive"); the parts left out are the defaults.
absl::StatusOr<View> ParseViewKey(std::string_view key);

// Parses a request's view. Empty filter, attribution and sample mean "all",
// "direct" and "all"; level is required. InvalidArgument lists the allowed
// words.
absl::StatusOr<View> ParseView(const v1::View& view);
// Parses a level word alone ("size", "country+org_type").
absl::StatusOr<View> ParseLevel(std::string_view level);
// The level words for help texts: "model | developer | ... | A+B".
std::string LevelWords();

// Longest window and series, in weeks (20 years).
inline constexpr int kMaxWindowWeeks = 1040;

struct Window {
  enum class Kind { kAll, kWeek, kCurrentWeek, kTrailing, kRange };
  Kind kind = Kind::kAll;
  IsoWeek week = IsoWeek::FromMonday(0);  // kWeek: the week; kRange: the first
  IsoWeek last = IsoWeek::FromMonday(0);  // kRange only: the last (inclusive)
  int weeks = 0;                          // kTrailing only: N

  static Window Week(IsoWeek w) {
    Window out;
    out.kind = Kind::kWeek;
    out.week = w;
    return out;
  }
  // "all", "week:2025-W10", "week:current", "trailing:4",
  // "range:2020-W23..2022-W52".
  std::string Label() const;
  // The ISO weeks covered, given the watermark's week; nullopt for kAll, and
  // for kTrailing and kCurrentWeek before any event (no watermark: the
  // window is empty).
  std::optional<std::pair<IsoWeek, IsoWeek>> Range(std::optional<IsoWeek> watermark_week) const;
  // The trailing window of this many weeks ending at the watermark that
  // covers the same weeks (trailing:N, week:current, and week:W when W is
  // the watermark's week); 0 for all time; nullopt otherwise.
  std::optional<int> TrailingWeeks(std::optional<IsoWeek> watermark_week) const;
};

// Parses "all", "week:YYYY-Www", "week:current", "trailing:N" (1 <= N <=
// kMaxWindowWeeks), "range:YYYY-Www..YYYY-Www" (first <= last, at most
// kMaxWindowWeeks weeks); empty means "all".
absl::StatusOr<Window> ParseWindow(std::string_view text);
// The window words for help texts.
std::string_view WindowWords();

// Parses an inclusive week range of a series request (at most
// kMaxWindowWeeks weeks, from <= to).
absl::StatusOr<std::pair<IsoWeek, IsoWeek>> ParseWeekRange(std::string_view from,
                                                           std::string_view to);

// Parses the k list of a request; empty means DefaultTopK(). At most 16 values, each 1..1000000.
absl::StatusOr<std::vector<uint32_t>> ParseTopK(
    const google::protobuf::RepeatedField<uint32_t>& ks);
// {1, 10, 100}: the ks of a request that asks for none.
const std::vector<uint32_t>& DefaultTopK();

// Items of one GetConcentrations call, at most (the API's contract,
// metrics.proto): a longer list fails as a whole with InvalidArgument.
inline constexpr size_t kMaxConcentrationsPerCall = 1024;

// An instant as the API's Timestamp (microsecond precision, as stored).
void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_VIEWS_VIEWS_H_
