#include "lib/query/on_demand_views.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

// Answers kept per batch, at most: a bound on the cache's memory whatever
// the clients ask.
constexpr size_t kMaxCachedAnswers = 1024;

}  // namespace

ConcentrationValues RankedCounts::Measures(std::span<const uint32_t> ks) const {
  std::vector<uint64_t> values;
  values.reserve(entities.size());
  for (const auto& [name, n] : entities) values.push_back(n);
  return RecomputeConcentration(std::move(values), ks);
}

Leaderboard RankedCounts::Top(uint32_t k) const {
  Leaderboard out;
  out.total = total;
  out.entities = entities.size();
  const size_t n = std::min<size_t>(k, entities.size());
  for (size_t i = 0; i < n; ++i) {
    RankedEntity r;
    r.entity = entities[i].first;
    r.downloads = entities[i].second;
    r.rank = (i > 0 && entities[i].second == entities[i - 1].second) ? out.top.back().rank : i + 1;
    out.top.push_back(std::move(r));
  }
  return out;
}

EntityStanding RankedCounts::Find(std::string_view entity) const {
  EntityStanding out;
  out.total = total;
  out.entities = entities.size();
  out.entity.entity = std::string(entity);
  for (size_t i = 0; i < entities.size(); ++i) {
    if (entities[i].first != entity) continue;
    out.entity.downloads = entities[i].second;
    // Entities with strictly more downloads come first.
    size_t first = i;
    while (first > 0 && entities[first - 1].second == entities[i].second) --first;
    out.entity.rank = first + 1;
    break;
  }
  return out;
}

OnDemandViews::OnDemandViews(const Aggregates* aggregates, const Catalog* catalog,
                             const ModelRegistry* registry)
    : aggregates_(aggregates), catalog_(catalog), registry_(registry) {}

void OnDemandViews::Refresh() const {
  if (catalog_version_ != catalog_->version()) {
    for (LevelValues& l : levels_) l = LevelValues{};
    catalog_version_ = catalog_->version();
    answers_.clear();
  }
  if (counts_version_ != aggregates_->version()) {
    counts_version_ = aggregates_->version();
    answers_.clear();
  }
  if (answers_.size() >= kMaxCachedAnswers) answers_.clear();
}

uint32_t OnDemandViews::ValueOf(Level level, ModelIdx credited) const {
  LevelValues& l = levels_[static_cast<int>(level)];
  if (l.by_model.size() <= credited) l.by_model.resize(registry_->size(), -1);
  int64_t& slot = l.by_model[credited];
  if (slot < 0) {
    std::string name = catalog_->Entity(level, credited);
    auto [it, inserted] = l.index.try_emplace(name, static_cast<uint32_t>(l.names.size()));
    if (inserted) l.names.push_back(std::move(name));
    slot = it->second;
  }
  return static_cast<uint32_t>(slot);
}

OnDemandViews::EntityKey OnDemandViews::KeyOf(const View& view, ModelIdx credited) const {
  if (view.level == Level::kModel) return credited;
  const EntityKey first = ValueOf(view.level, credited);
  if (!view.second) return first;
  return first << 32 | ValueOf(*view.second, credited);
}

std::string OnDemandViews::NameOf(const View& view, EntityKey key) const {
  if (view.level == Level::kModel) return registry_->Name(static_cast<ModelIdx>(key));
  if (!view.second) return levels_[static_cast<int>(view.level)].names[key];
  return absl::StrCat(levels_[static_cast<int>(view.level)].names[key >> 32], "|",
                      levels_[static_cast<int>(*view.second)].names[key & 0xffffffffu]);
}

void OnDemandViews::UpdateHead() const {
  if (head_counts_version_ == aggregates_->version()) return;
  head_counts_version_ = aggregates_->version();
  bool changed = false;
  std::vector<std::pair<int64_t, ModelIdx>> week;
  for (const auto& [monday, models] : aggregates_->weeks()) {
    const uint64_t version = aggregates_->WeekVersion(monday);
    auto it = head_weeks_.find(monday);
    if (it != head_weeks_.end() && it->second.first == version) continue;
    week.clear();
    for (const auto& [m, wc] : models) {
      if (wc.all > 0) week.push_back({wc.all, m});
    }
    // Downloads descending, ties by model id ascending.
    auto before = [this](const std::pair<int64_t, ModelIdx>& a,
                         const std::pair<int64_t, ModelIdx>& b) {
      if (a.first != b.first) return a.first > b.first;
      return registry_->Name(a.second) < registry_->Name(b.second);
    };
    if (week.size() > kHeadModelsPerWeek) {
      std::nth_element(week.begin(), week.begin() + kHeadModelsPerWeek, week.end(), before);
      week.resize(kHeadModelsPerWeek);
    }
    std::vector<ModelIdx> top;
    top.reserve(week.size());
    for (const auto& [n, m] : week) top.push_back(m);
    head_weeks_[monday] = {version, std::move(top)};
    changed = true;
  }
  if (!changed) return;
  head_.assign(registry_->size(), false);
  for (const auto& [monday, entry] : head_weeks_) {
    for (ModelIdx m : entry.second) head_[m] = true;
  }
}

bool OnDemandViews::InSample(Sample sample, ModelIdx m) const {
  switch (sample) {
    case Sample::kAll:
      return true;
    case Sample::kPopulation: {
      const std::span<const ModelWeekCounts> totals = aggregates_->model_totals();
      return m < totals.size() && totals[m].all >= static_cast<int64_t>(kPopulationMinDownloads);
    }
    case Sample::kHead:
      return m < head_.size() && head_[m];
  }
  return false;
}

template <typename Fn>
void OnDemandViews::ForEachModel(const View& view, std::optional<std::pair<IsoWeek, IsoWeek>> weeks,
                                 Fn fn) const {
  auto visit = [&](ModelIdx m, const ModelWeekCounts& c) {
    const int64_t n = view.filter == Filter::kAll ? c.all : c.rolling;
    if (n > 0 && InSample(view.sample, m)) fn(m, static_cast<uint64_t>(n));
  };
  if (!weeks) {
    const std::span<const ModelWeekCounts> totals = aggregates_->model_totals();
    for (size_t m = 0; m < totals.size(); ++m) visit(static_cast<ModelIdx>(m), totals[m]);
    return;
  }
  const WeekTable& table = aggregates_->weeks();
  for (auto it = table.lower_bound(weeks->first.monday());
       it != table.end() && it->first <= weeks->second.monday(); ++it) {
    for (const auto& [m, c] : it->second) visit(m, c);
  }
}

std::vector<OnDemandViews::Ranked> OnDemandViews::Rank(const View& view,
                                                       const KeyCounts& counts) const {
  std::vector<Ranked> ranked;
  ranked.reserve(counts.size());
  for (const auto& [key, n] : counts) ranked.push_back({n, NameOf(view, key), key});
  std::sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
    if (a.downloads != b.downloads) return a.downloads > b.downloads;
    return a.name < b.name;
  });
  return ranked;
}

std::shared_ptr<const RankedCounts> OnDemandViews::Counts(const View& view,
                                                          const Window& window) const {
  const std::optional<IsoWeek> watermark_week = aggregates_->watermark_week();
  const std::optional<std::pair<IsoWeek, IsoWeek>> weeks = window.Range(watermark_week);
  // A window resolved to its weeks: trailing:4 and its range share nothing,
  // but the key stays right as the watermark moves.
  const std::string key =
      absl::StrCat(view.Key(), " ", window.Label(), " ",
                   weeks ? absl::StrCat(weeks->first.Label(), "..", weeks->second.Label()) : "");
  absl::MutexLock lock(&mu_);
  Refresh();
  if (auto it = answers_.find(key); it != answers_.end()) return it->second;
  auto out = std::make_shared<RankedCounts>();
  const bool empty = !weeks && window.kind != Window::Kind::kAll;  // no watermark yet
  if (!empty) {
    if (view.sample == Sample::kHead) UpdateHead();
    KeyCounts counts;
    ForEachModel(view, weeks, [&](ModelIdx m, uint64_t n) {
      counts[KeyOf(view, aggregates_->Credited(m, view.attribution))] += n;
    });
    std::vector<Ranked> ranked = Rank(view, counts);
    out->entities.reserve(ranked.size());
    for (Ranked& r : ranked) {
      out->total += r.downloads;
      out->entities.emplace_back(std::move(r.name), r.downloads);
    }
  }
  answers_[key] = out;
  return out;
}

ShareSeriesValues OnDemandViews::ShareSeries(const View& view, IsoWeek first, IsoWeek last,
                                             uint32_t k) const {
  absl::MutexLock lock(&mu_);
  Refresh();
  if (view.sample == Sample::kHead) UpdateHead();
  ShareSeriesValues out;
  const size_t n_weeks = static_cast<size_t>(last.WeeksSince(first)) + 1;
  out.weeks.resize(n_weeks);
  for (size_t i = 0; i < n_weeks; ++i) out.weeks[i].week = first.Plus(static_cast<int>(i));
  KeyCounts range;
  std::vector<KeyCounts> by_week(n_weeks);
  const WeekTable& table = aggregates_->weeks();
  for (auto it = table.lower_bound(first.monday()); it != table.end() && it->first <= last.monday();
       ++it) {
    const size_t w = static_cast<size_t>(IsoWeek::FromMonday(it->first).WeeksSince(first));
    for (const auto& [m, c] : it->second) {
      const int64_t n = view.filter == Filter::kAll ? c.all : c.rolling;
      if (n <= 0 || !InSample(view.sample, m)) continue;
      const EntityKey key = KeyOf(view, aggregates_->Credited(m, view.attribution));
      range[key] += static_cast<uint64_t>(n);
      by_week[w][key] += static_cast<uint64_t>(n);
      out.weeks[w].total += static_cast<uint64_t>(n);
    }
  }
  const std::vector<Ranked> ranked = Rank(view, range);
  out.entities = ranked.size();
  for (const Ranked& r : ranked) out.total += r.downloads;
  const size_t shown = std::min<size_t>(k, ranked.size());
  for (size_t i = 0; i < shown; ++i) {
    RankedEntity r;
    r.entity = ranked[i].name;
    r.downloads = ranked[i].downloads;
    r.rank =
        (i > 0 && ranked[i].downloads == ranked[i - 1].downloads) ? out.top.back().rank : i + 1;
    out.top.push_back(std::move(r));
  }
  for (size_t w = 0; w < n_weeks; ++w) {
    out.weeks[w].downloads.resize(shown);
    for (size_t i = 0; i < shown; ++i) {
      auto it = by_week[w].find(ranked[i].key);
      out.weeks[w].downloads[i] = it == by_week[w].end() ? 0 : it->second;
    }
  }
  return out;
}

}  // namespace hubmetrics
