#include "lib/exporter/translate.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/base/status_macros.h"
#include "lib/views/views.h"

namespace hubmetrics::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The daemon's closed list of reject reasons (metrics.proto, RejectCount). They
// are exported even at 0 so that rate() and the alert rules have a series from
// the first scrape on.
constexpr std::string_view kRejectReasons[] = {"malformed",        "not_object",   "missing_field",
                                               "invalid_model_id", "invalid_time", "future",
                                               "too_late",         "too_large"};

ClientMetric::Label L(std::string name, std::string value) {
  return ClientMetric::Label{std::move(name), std::move(value)};
}

std::vector<ClientMetric::Label> ViewLabelSet(const ViewResult& v) {
  return {L("level", v.view.LevelLabel()), L("filter", std::string(FilterName(v.view.filter))),
          L("attribution", std::string(AttributionName(v.view.attribution))),
          L("window", v.window)};
}

std::vector<ClientMetric::Label> ShareLabelSet(const ShareResult& s) {
  return {L("level", s.view.LevelLabel()), L("filter", std::string(FilterName(s.view.filter))),
          L("attribution", std::string(AttributionName(s.view.attribution))),
          L("sample", std::string(SampleName(s.view.sample))), L("window", s.window)};
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddGauge(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void AddCounter(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

uint32_t Fnv1a32(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The entries of a comma-separated flag value, whitespace around them removed,
// empty ones skipped.
std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(AV(text), ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

// The words of one of lib/views' closed lists, comma-separated.
template <typename T, std::size_t N>
std::string JoinNames(const std::array<T, N>& all, std::string_view (*name)(T)) {
  std::vector<absl::string_view> names;
  for (T t : all) names.push_back(AV(name(t)));
  return absl::StrJoin(names, ", ");
}

// Parses a list of the words of one of lib/views' closed lists (kSamples,
// kFilters, kAttributions), repeats dropped.
template <typename T, std::size_t N>
absl::StatusOr<std::vector<T>> ParseWords(std::string_view flag_name, std::string_view text,
                                          const std::array<T, N>& all,
                                          std::string_view (*name)(T)) {
  std::vector<T> out;
  for (const std::string& word : SplitList(text)) {
    const auto it = std::find_if(all.begin(), all.end(), [&](T t) { return name(t) == word; });
    if (it == all.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--", AV(flag_name), ": '", word,
                                                     "' is not allowed; allowed are ",
                                                     JoinNames(all, name)));
    }
    if (std::find(out.begin(), out.end(), *it) == out.end()) out.push_back(*it);
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", AV(flag_name), ": empty; allowed are ", JoinNames(all, name)));
  }
  return out;
}

}  // namespace

const std::vector<View>& ConcentrationViews() {
  static const std::vector<View>* const views = [] {
    auto* v = new std::vector<View>;
    for (const LevelRow& row : LevelTable()) {
      if (!row.live) continue;
      for (Filter filter : kFilters) {
        for (Attribution attribution : kAttributions) {
          v->push_back(View{.level = row.level,
                            .second = std::nullopt,
                            .filter = filter,
                            .attribution = attribution,
                            .sample = Sample::kAll});
        }
      }
    }
    return v;
  }();
  return *views;
}

absl::StatusOr<std::vector<std::string>> ParseWindows(std::string_view flag,
                                                      std::string_view flag_name) {
  const std::string allowed = absl::StrCat("allowed are ", AV(WindowWords()));
  std::vector<std::string> out;
  for (const std::string& entry : SplitList(flag)) {
    absl::StatusOr<Window> w = ParseWindow(entry);
    if (!w.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", AV(flag_name), ": ", w.status().message()));
    }
    std::string label = w->Label();
    if (std::find(out.begin(), out.end(), label) == out.end()) out.push_back(std::move(label));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", AV(flag_name), ": no window given; ", allowed));
  }
  if (static_cast<int>(out.size()) > kMaxWindows) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--%s: %d windows given, at most %d (each window is a series per view)",
                        AV(flag_name), out.size(), kMaxWindows));
  }
  return out;
}

std::string SampleWords() { return JoinNames(kSamples, &SampleName); }
std::string FilterWords() { return JoinNames(kFilters, &FilterName); }
std::string AttributionWords() { return JoinNames(kAttributions, &AttributionName); }

std::string DefaultShareLevels() {
  std::vector<absl::string_view> names;
  for (const LevelRow& row : LevelTable()) {
    if (row.level == Level::kModel || row.level == Level::kDeveloper) continue;
    names.push_back(AV(row.name));
  }
  return absl::StrJoin(names, ",");
}

absl::StatusOr<std::vector<View>> ParseShareViews(std::string_view levels, std::string_view samples,
                                                  std::string_view filters,
                                                  std::string_view attributions) {
  std::vector<View> level_views;
  for (const std::string& word : SplitList(levels)) {
    absl::StatusOr<View> v = ParseLevel(word);
    if (!v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--share_levels: ", v.status().message()));
    }
    if (std::find(level_views.begin(), level_views.end(), *v) == level_views.end()) {
      level_views.push_back(*v);
    }
  }
  if (level_views.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--share_levels: empty; allowed are ", LevelWords()));
  }
  ASSIGN_OR_RETURN(std::vector<Sample> sample_list,
                   ParseWords("share_samples", samples, kSamples, &SampleName));
  ASSIGN_OR_RETURN(std::vector<Filter> filter_list,
                   ParseWords("share_filters", filters, kFilters, &FilterName));
  ASSIGN_OR_RETURN(std::vector<Attribution> attribution_list,
                   ParseWords("share_attributions", attributions, kAttributions, &AttributionName));
  const std::size_t count =
      level_views.size() * sample_list.size() * filter_list.size() * attribution_list.size();
  if (count > static_cast<std::size_t>(kMaxShareViews)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--share_levels x --share_samples x --share_filters x --share_attributions: %d views "
        "(%d x %d x %d x %d), at most %d (each view is up to %d series per window)",
        count, level_views.size(), sample_list.size(), filter_list.size(), attribution_list.size(),
        kMaxShareViews, kMaxShareTop + 1));
  }
  std::vector<View> out;
  for (const View& level : level_views) {
    for (Sample sample : sample_list) {
      for (Filter filter : filter_list) {
        for (Attribution attribution : attribution_list) {
          View v = level;
          v.sample = sample;
          v.filter = filter;
          v.attribution = attribution;
          out.push_back(v);
        }
      }
    }
  }
  return out;
}

std::optional<absl::Time> WatermarkOf(const v1::IngestStats& stats) {
  if (!stats.has_watermark()) return std::nullopt;
  const auto& ts = stats.watermark();
  if (ts.seconds() == 0 && ts.nanos() == 0) return std::nullopt;
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string SanitizeLabelValue(std::string_view raw) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string valid;
  valid.reserve(std::min(raw.size(), kMaxLabelValueBytes * 2));
  // Boundaries after each complete character, to cut without splitting one.
  std::vector<std::size_t> ends;
  for (std::size_t i = 0; i < raw.size();) {
    const std::size_t len = Utf8SequenceLength(raw, i);
    if (len == 0) {
      valid.append(kReplacement);
      i += 1;
    } else {
      valid.append(raw.substr(i, len));
      i += len;
    }
    ends.push_back(valid.size());
    // Past this, the name is cut anyway; stop copying a huge input.
    if (valid.size() > kMaxLabelValueBytes) break;
  }
  if (valid.size() <= kMaxLabelValueBytes) return valid;
  const std::string suffix = absl::StrFormat("~%08x", Fnv1a32(raw));
  const std::size_t budget = kMaxLabelValueBytes - suffix.size();
  std::size_t cut = 0;
  for (std::size_t e : ends) {
    if (e > budget) break;
    cut = e;
  }
  valid.resize(cut);
  return valid + suffix;
}

BoundedShares BoundShares(const v1::TopEntities& top, int n) {
  n = std::clamp(n, 0, kMaxShareTop);
  BoundedShares out;
  out.total = top.total_downloads();
  std::set<std::string> taken = {std::string(kOtherEntity)};
  uint64_t exported = 0;
  for (const v1::EntityShare& e : top.top()) {
    if (static_cast<int>(out.entries.size()) >= n) break;
    std::string name = SanitizeLabelValue(e.entity());
    if (!taken.insert(name).second) continue;  // counted in the rest
    exported += e.downloads();
    out.entries.push_back(
        {.entity = std::move(name), .downloads = e.downloads(), .share = e.share()});
  }
  out.other_downloads = out.total >= exported ? out.total - exported : 0;
  out.other_share = out.total == 0
                        ? 0
                        : static_cast<double>(out.other_downloads) / static_cast<double>(out.total);
  return out;
}

std::vector<prometheus::MetricFamily> ToFamilies(const Snapshot& snapshot, int top_entities,
                                                 int share_top) {
  top_entities = std::clamp(top_entities, 0, kMaxTopEntities);
  std::vector<MetricFamily> out;

  MetricFamily up = Family("hubmetrics_up",
                           "1 when the exporter's last poll of hubmetricsd fully succeeded, "
                           "0 while the daemon cannot be reached or answers with errors.",
                           MetricType::Gauge);
  AddGauge(up, {}, snapshot.up ? 1 : 0);
  out.push_back(std::move(up));

  if (!snapshot.views.empty()) {
    MetricFamily hhi = Family("hubmetrics_hhi",
                              "Herfindahl-Hirschman index (sum of squared shares, 0..1) of the "
                              "unique downloads of a view and window.",
                              MetricType::Gauge);
    MetricFamily gini = Family(
        "hubmetrics_gini", "Gini coefficient (0..1) of the unique downloads of a view and window.",
        MetricType::Gauge);
    MetricFamily top_share = Family("hubmetrics_top_share",
                                    "Share of the unique downloads of a view and window that the "
                                    "k largest entities take.",
                                    MetricType::Gauge);
    MetricFamily entities = Family(
        "hubmetrics_entities", "Entities with at least one unique download in a view and window.",
        MetricType::Gauge);
    MetricFamily downloads =
        Family("hubmetrics_window_downloads", "Unique downloads credited in a view and window.",
               MetricType::Gauge);
    MetricFamily leaderboard =
        Family("hubmetrics_top_entity_share",
               "Share of the unique downloads of a view and window of each of its top entities "
               "(rank 1 = most downloads; ties share a rank).",
               MetricType::Gauge);
    for (const ViewResult& v : snapshot.views) {
      const auto labels = ViewLabelSet(v);
      const v1::Concentration& c = v.concentration;
      AddGauge(hhi, labels, c.hhi());
      AddGauge(gini, labels, c.gini());
      AddGauge(entities, labels, static_cast<double>(c.entities()));
      AddGauge(downloads, labels, static_cast<double>(c.total_downloads()));
      for (const v1::TopShare& t : c.top_shares()) {
        auto with_k = labels;
        with_k.push_back(L("k", absl::StrCat(t.k())));
        AddGauge(top_share, std::move(with_k), t.share());
      }
      if (!v.top.has_value()) continue;
      int exported = 0;
      for (const v1::EntityShare& e : v.top->top()) {
        if (exported++ >= top_entities) break;
        auto with_entity = labels;
        with_entity.push_back(L("entity", SanitizeLabelValue(e.entity())));
        with_entity.push_back(L("rank", absl::StrCat(e.rank())));
        AddGauge(leaderboard, std::move(with_entity), e.share());
      }
    }
    for (MetricFamily* f : {&hhi, &gini, &top_share, &entities, &downloads, &leaderboard}) {
      if (!f->metric.empty()) out.push_back(std::move(*f));
    }
  }

  if (!snapshot.shares.empty()) {
    MetricFamily share = Family(
        "hubmetrics_attribute_share",
        absl::StrCat("Share of the unique downloads of a view and window of each of its largest "
                     "entities (exporter --share_top), and of all the others as entity=\"",
                     AV(kOtherEntity), "\"."),
        MetricType::Gauge);
    MetricFamily share_downloads =
        Family("hubmetrics_attribute_downloads",
               absl::StrCat("Unique downloads of a view and window of each of its largest entities "
                            "(exporter --share_top), and of all the others as entity=\"",
                            AV(kOtherEntity), "\"; they add up to the view and window's total."),
               MetricType::Gauge);
    for (const ShareResult& r : snapshot.shares) {
      const auto labels = ShareLabelSet(r);
      const BoundedShares bounded = BoundShares(r.top, share_top);
      auto add = [&](std::string entity, uint64_t downloads, double value) {
        auto with_entity = labels;
        with_entity.push_back(L("entity", std::move(entity)));
        AddGauge(share_downloads, with_entity, static_cast<double>(downloads));
        AddGauge(share, std::move(with_entity), value);
      };
      for (const BoundedShares::Entry& e : bounded.entries) add(e.entity, e.downloads, e.share);
      // Always present, 0 when the top N is everything, so that a stacked panel
      // and sum() see the same series from poll to poll.
      add(std::string(kOtherEntity), bounded.other_downloads, bounded.other_share);
    }
    out.push_back(std::move(share));
    out.push_back(std::move(share_downloads));
  }

  if (!snapshot.changes.empty()) {
    MetricFamily delta =
        Family("hubmetrics_hhi_week_over_week_change",
               "HHI of the watermark's week minus HHI of the week before, per view (exact; "
               "hubctl change --from=week:PREVIOUS --to=week:CURRENT explains it).",
               MetricType::Gauge);
    MetricFamily parts = Family(
        "hubmetrics_hhi_change_contribution",
        "Contribution to the week-over-week HHI change (share_after^2 - share_before^2, summed): "
        "part=top_mover per top mover (exporter --change_top), and parts other_entrants, "
        "other_exits, rest; the parts of a view add up to hubmetrics_hhi_week_over_week_change.",
        MetricType::Gauge);
    for (const ChangeResult& r : snapshot.changes) {
      std::vector<ClientMetric::Label> labels = {
          L("level", r.view.LevelLabel()), L("filter", std::string(FilterName(r.view.filter))),
          L("attribution", std::string(AttributionName(r.view.attribution)))};
      // The two weeks name the hubctl command that explains the change (the
      // alert's annotation); they move once a week, so the series do too.
      auto with_weeks = labels;
      with_weeks.push_back(L("from_week", r.change.before().first_week()));
      with_weeks.push_back(L("to_week", r.change.after().first_week()));
      AddGauge(delta, std::move(with_weeks), r.change.delta_hhi());
      auto add = [&](std::string part, std::string entity, double value) {
        auto with = labels;
        with.push_back(L("part", std::move(part)));
        with.push_back(L("entity", std::move(entity)));
        AddGauge(parts, std::move(with), value);
      };
      // Distinct names after sanitizing; a clash (two names cut alike) goes to
      // the rest so that no label set appears twice and the parts still add up.
      std::vector<std::string> seen;
      double folded = 0;
      int exported = 0;
      for (const v1::EntityMove& m : r.change.top_movers()) {
        std::string name = SanitizeLabelValue(m.entity());
        if (exported >= kMaxChangeTop || std::find(seen.begin(), seen.end(), name) != seen.end() ||
            (!name.empty() && name.front() == '(')) {
          folded += m.contribution();
          continue;
        }
        ++exported;
        seen.push_back(name);
        add("top_mover", std::move(name), m.contribution());
      }
      add("other_entrants", "(other entrants)", r.change.other_entrants().contribution());
      add("other_exits", "(other exits)", r.change.other_exits().contribution());
      add("rest", "(rest)", r.change.rest().contribution() + folded);
    }
    out.push_back(std::move(delta));
    out.push_back(std::move(parts));
  }
  if (snapshot.hhi_change_alert_bound.has_value()) {
    MetricFamily bound =
        Family("hubmetrics_hhi_change_alert_bound",
               "The bound on |hubmetrics_hhi_week_over_week_change| beyond which the alert "
               "HubmetricsHhiMovedThisWeek fires (exporter --hhi_change_alert_bound).",
               MetricType::Gauge);
    AddGauge(bound, {}, *snapshot.hhi_change_alert_bound);
    out.push_back(std::move(bound));
  }

  if (snapshot.stats.has_value()) {
    const v1::IngestStats& s = *snapshot.stats;
    MetricFamily events = Family("hubmetrics_events_total",
                                 "Download events by outcome, as counted (and persisted) by "
                                 "hubmetricsd: unique, duplicate or rejected.",
                                 MetricType::Counter);
    AddCounter(events, {L("outcome", "unique")}, static_cast<double>(s.unique_downloads()));
    AddCounter(events, {L("outcome", "duplicate")}, static_cast<double>(s.duplicates()));
    AddCounter(events, {L("outcome", "rejected")}, static_cast<double>(s.rejected()));
    out.push_back(std::move(events));

    std::map<std::string, uint64_t> by_reason;
    for (std::string_view r : kRejectReasons) by_reason[std::string(r)] = 0;
    for (const v1::RejectCount& r : s.rejected_by_reason()) {
      by_reason[SanitizeLabelValue(r.reason())] += r.count();
    }
    MetricFamily rejected = Family("hubmetrics_rejected_total",
                                   "Rejected download events by reason (they also go to the DLQ).",
                                   MetricType::Counter);
    for (const auto& [reason, count] : by_reason) {
      AddCounter(rejected, {L("reason", reason)}, static_cast<double>(count));
    }
    out.push_back(std::move(rejected));

    MetricFamily lost = Family(
        "hubmetrics_events_lost_to_retention_total",
        "Events deleted from a Kafka partition (retention) before hubmetricsd read them: never "
        "counted. Any increase needs the operator.",
        MetricType::Counter);
    AddCounter(lost, {}, static_cast<double>(s.events_lost_to_retention()));
    out.push_back(std::move(lost));

    MetricFamily state = Family(
        "hubmetrics_state_condition",
        "1 for the state store's condition when it is not healthy (disk_full, io_error: ingest "
        "waits and retries; wal_corrupted: the state rolled back at start), else 0 for healthy.",
        MetricType::Gauge);
    for (std::string_view condition : {"disk_full", "io_error", "wal_corrupted"}) {
      AddGauge(state, {L("condition", std::string(condition))},
               s.state_condition() == condition ? 1 : 0);
    }
    AddGauge(state, {L("condition", "healthy")}, s.state_condition().empty() ? 1 : 0);
    out.push_back(std::move(state));

    MetricFamily lag = Family("hubmetrics_consumer_lag",
                              "Events in the sources not consumed yet (sum over partitions; 0 for "
                              "a file source read to its end).",
                              MetricType::Gauge);
    AddGauge(lag, {}, static_cast<double>(s.consumer_lag()));
    out.push_back(std::move(lag));
    if (s.partitions_size() > 0) {
      MetricFamily partition_lag =
          Family("hubmetrics_consumer_partition_lag",
                 "Events not consumed yet, per Kafka topic and partition.", MetricType::Gauge);
      for (const v1::PartitionLag& p : s.partitions()) {
        AddGauge(partition_lag,
                 {L("topic", SanitizeLabelValue(p.topic())),
                  L("partition", absl::StrCat(p.partition()))},
                 static_cast<double>(p.lag()));
      }
      out.push_back(std::move(partition_lag));
    }
    if (s.has_api()) {
      const v1::ApiStats& a = s.api();
      MetricFamily refused =
          Family("hubmetrics_api_refused_total",
                 "gRPC calls refused with RESOURCE_EXHAUSTED by a limit of the API: watch_streams "
                 "(hubmetricsd --max_watch_streams) or queued_calls (--max_queued_calls).",
                 MetricType::Counter);
      AddCounter(refused, {L("limit", "watch_streams")},
                 static_cast<double>(a.watch_streams_refused()));
      AddCounter(refused, {L("limit", "queued_calls")},
                 static_cast<double>(a.queued_calls_refused()));
      out.push_back(std::move(refused));
      MetricFamily in_use =
          Family("hubmetrics_api_in_use",
                 "What a limit of the API counts now: open WatchConcentration streams "
                 "(watch_streams), unary calls waiting for a query thread (queued_calls).",
                 MetricType::Gauge);
      AddGauge(in_use, {L("limit", "watch_streams")}, static_cast<double>(a.watch_streams()));
      AddGauge(in_use, {L("limit", "queued_calls")}, static_cast<double>(a.queued_calls()));
      out.push_back(std::move(in_use));
      MetricFamily limit = Family("hubmetrics_api_limit",
                                  "The API's limits: the most open WatchConcentration streams "
                                  "(watch_streams) and queued unary calls (queued_calls).",
                                  MetricType::Gauge);
      AddGauge(limit, {L("limit", "watch_streams")}, static_cast<double>(a.max_watch_streams()));
      AddGauge(limit, {L("limit", "queued_calls")}, static_cast<double>(a.max_queued_calls()));
      out.push_back(std::move(limit));
    }
    if (std::optional<absl::Time> wm = WatermarkOf(s)) {
      MetricFamily watermark = Family(
          "hubmetrics_watermark_timestamp_seconds",
          "Largest accepted event time, in seconds since the Unix epoch.", MetricType::Gauge);
      AddGauge(watermark, {}, absl::ToDoubleSeconds(*wm - absl::UnixEpoch()));
      out.push_back(std::move(watermark));
    }
  }
  return out;
}

}  // namespace hubmetrics::exporter
