// Translation of MetricsService answers into Prometheus metric families, and
// the parsing of the exporter's view and window configuration.
//
// Everything here is a pure function of its arguments: no I/O, no clock, no
// global state, so it is safe to call from any thread. The families it returns
// are what hubmetrics-exporter serves on /metrics (see services/exporter):
//
//   hubmetrics_hhi, hubmetrics_gini, hubmetrics_entities, hubmetrics_window_downloads
//       gauges {level, filter, attribution, window}
//   hubmetrics_top_share                gauge {level, filter, attribution, window, k}
//   hubmetrics_top_entity_share         gauge {level, filter, attribution, window, entity, rank}
//   hubmetrics_attribute_share          gauge {level, filter, attribution, sample, window, entity}
//   hubmetrics_attribute_downloads      gauge {level, filter, attribution, sample, window, entity}
//   hubmetrics_hhi_week_over_week_change    gauge {level, filter, attribution, from_week, to_week}
//   hubmetrics_hhi_change_contribution  gauge {level, filter, attribution, part, entity}
//   hubmetrics_hhi_change_alert_bound   gauge (exporter --hhi_change_alert_bound)
//   hubmetrics_events_total             counter {outcome="unique|duplicate|rejected"}
//   hubmetrics_rejected_total           counter {reason}
//   hubmetrics_consumer_lag             gauge (sum over partitions)
//   hubmetrics_consumer_partition_lag   gauge {topic, partition}
//   hubmetrics_watermark_timestamp_seconds  gauge (absent before the first event)
//   hubmetrics_up                       gauge, 1 when the last poll fully succeeded
//
// The first six are per concentration view (ConcentrationViews(): the views
// the daemon keeps live, at sample all) and window. The attribute families are
// per share view (ParseShareViews(): by default every level whose entities are
// a few categories — country, org_type, license, task, ... — at samples all and
// head) and share window: the share and unique downloads of each of the top N
// entities, and of kOtherEntity for all the others, so that each view and
// window's series add up to its whole (shares to 1 when it has downloads).
//
// The change families are per concentration view: ExplainChange from the week
// before the watermark's week to the watermark's week (docs/DEFINITIONS.md,
// "ΔHHI decomposition"). hubmetrics_hhi_change_contribution has part
// "top_mover" (entity: its name) for each of the top N movers and parts
// "other_entrants", "other_exits", "rest" (entity: the part's name in
// parentheses), which add up to hubmetrics_hhi_week_over_week_change: at most
// kMaxChangeTop + 3 series per view. The alert rule HubmetricsHhiMovedThisWeek
// compares the change with hubmetrics_hhi_change_alert_bound, so the bound is
// set where the exporter runs.
//
// The label `window` carries the window as configured and normalized
// ("week:current", "trailing:4"): the daemon answers "week:current" itself, so
// a dashboard query keeps selecting the same series when the week rolls over.
//
// Cardinality is bounded by construction: ConcentrationViews() x at most
// kMaxWindows windows for the view gauges, and at most kMaxTopEntities entities
// per view and window for the leaderboard; at most kMaxShareViews share views
// x kMaxWindows windows x (kMaxShareTop + 1) entities for each attribute family.
// Entity names are cut to kMaxLabelValueBytes. The per-partition lag has one
// series per consumed partition. Reject reasons are a closed list in the
// daemon; unknown ones are still exported (sanitized).
#ifndef HUBMETRICS_LIB_EXPORTER_TRANSLATE_H_
#define HUBMETRICS_LIB_EXPORTER_TRANSLATE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/views/views.h"
#include "prometheus/metric_family.h"
#include "proto/hubmetrics/v1/metrics.pb.h"

namespace hubmetrics::exporter {

// Most leaderboard entries exported per view and window.
inline constexpr int kMaxTopEntities = 100;
// Longest label value exported for an entity name, in bytes (UTF-8).
inline constexpr std::size_t kMaxLabelValueBytes = 128;
// Most windows one exporter may be configured with (concentration windows and
// share windows each).
inline constexpr int kMaxWindows = 16;
// Most share views (levels x samples x filters x attributions).
inline constexpr int kMaxShareViews = 64;
// Entities exported by name per share view and window: default and most.
inline constexpr int kDefaultShareTop = 10;
inline constexpr int kMaxShareTop = 100;
// Top movers exported per concentration view (week over week): default, most.
inline constexpr int kDefaultChangeTop = 5;
inline constexpr int kMaxChangeTop = 20;
// The entity label of everything outside a share view's top N. Parentheses
// are not in any level's generated words (unknown, Unknown, other, ...), and
// a catalog value that happens to read "(other)" is folded into it rather
// than exported twice (see BoundShares).
inline constexpr std::string_view kOtherEntity = "(other)";

// The views of the concentration families: every level of lib/views that the
// daemon keeps live (LevelRow::live) x every filter x every attribution, at
// sample all, in LevelTable() order, then filter, then attribution. These are
// answered from the daemon's live distributions, so asking for all of them on
// every poll is cheap.
const std::vector<View>& ConcentrationViews();

// Parses a comma-separated window list ("week:current,trailing:4,all") with
// lib/views' ParseWindow, so the exporter accepts exactly the daemon's words
// (all, week:YYYY-Www, week:current, trailing:N, range:A..B). Returns the
// normalized labels (Window::Label(): "trailing:04" is "trailing:4"), repeats
// dropped, in order. InvalidArgument names `flag_name` and the bad entry and
// lists what is allowed; also for an empty list or more than kMaxWindows.
absl::StatusOr<std::vector<std::string>> ParseWindows(std::string_view flag,
                                                      std::string_view flag_name = "windows");

// lib/views' samples, filters and attributions (kSamples, ...), comma-separated,
// for help texts.
std::string SampleWords();
std::string FilterWords();
std::string AttributionWords();

// The default of --share_levels: every level of LevelTable() but model and
// developer, whose entities are ids without bound (the leaderboard covers
// them), comma-separated in table order.
std::string DefaultShareLevels();

// The share views: every level of `levels` (level words, pairs A+B allowed)
// x every sample x every filter x every attribution, each a comma-separated
// list of lib/views' words (kSamples, kFilters, kAttributions), in the order
// given, repeats dropped. InvalidArgument names the flag (share_levels,
// share_samples, share_filters, share_attributions) and lists the allowed
// words; also for an empty list or more than kMaxShareViews views in all.
absl::StatusOr<std::vector<View>> ParseShareViews(std::string_view levels, std::string_view samples,
                                                  std::string_view filters,
                                                  std::string_view attributions);

// The daemon's watermark, or nullopt when it has accepted no event yet.
std::optional<absl::Time> WatermarkOf(const v1::IngestStats& stats);

// A label value that is valid UTF-8 (invalid bytes become U+FFFD) and at most
// kMaxLabelValueBytes long. A longer name is cut at a character boundary and
// ends in "~" and 8 hex digits of a hash of the full name, so that two long
// names that share a prefix stay distinct series. Escaping of \, " and newline
// is the text format's job (prometheus-cpp's serializer does it).
std::string SanitizeLabelValue(std::string_view raw);

// One concentration view and window as answered by the daemon.
struct ViewResult {
  View view;
  std::string window;  // as configured, e.g. "week:current"
  v1::Concentration concentration;
  std::optional<v1::TopEntities> top;  // absent when the leaderboard RPC failed
};

// One share view and window: the daemon's leaderboard of it, whose
// total_downloads is the whole the shares are of.
struct ShareResult {
  View view;
  std::string window;  // as configured
  v1::TopEntities top;
};

// One concentration view's week-over-week change.
struct ChangeResult {
  View view;
  v1::ConcentrationChange change;
};

// Everything one poll learned. `up` is false when any RPC of the poll failed.
struct Snapshot {
  bool up = false;
  std::optional<v1::IngestStats> stats;
  std::vector<ViewResult> views;
  std::vector<ShareResult> shares;
  std::vector<ChangeResult> changes;
  // The alert rule's bound on |week-over-week ΔHHI|; absent: not exported.
  std::optional<double> hhi_change_alert_bound;
};

// A share view and window cut to a bounded label set.
struct BoundedShares {
  struct Entry {
    std::string entity;  // SanitizeLabelValue'd; distinct, never kOtherEntity
    uint64_t downloads = 0;
    double share = 0;  // as the daemon answered it
  };
  // At most n entries, in the daemon's order (downloads descending).
  std::vector<Entry> entries;
  // total - the entries' downloads: exactly the downloads of every entity not
  // exported by name (0 if the daemon's answer were inconsistent), and
  // other_downloads / total (0 when total is 0).
  uint64_t other_downloads = 0;
  double other_share = 0;
  uint64_t total = 0;
};

// The first n (clamped to 0..kMaxShareTop) entities of `top`, whatever it
// holds, plus the rest. An entity whose sanitized name equals kOtherEntity or
// one already taken (two raw names that sanitize alike) is counted in the
// rest instead, so that no label set appears twice.
BoundedShares BoundShares(const v1::TopEntities& top, int n);

// The families for `snapshot`. `top_entities` (clamped to 0..kMaxTopEntities)
// caps the leaderboard per view and window, `share_top` (see BoundShares) the
// entities of the attribute families per share view and window, whatever the
// daemon returned. hubmetrics_up is always present; the others only for what
// the snapshot holds.
std::vector<prometheus::MetricFamily> ToFamilies(const Snapshot& snapshot, int top_entities,
                                                 int share_top = kDefaultShareTop);

}  // namespace hubmetrics::exporter

#endif  // HUBMETRICS_LIB_EXPORTER_TRANSLATE_H_
