#include "lib/query/on_demand_views.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

// Answers kept per batch, at most: a bound on the cache's memory whatever
// the clients ask.
constexpr size_t kMaxCachedAnswers = 1024;
// Measures kept per cached answer, one per ks list: the default ks and a few
// others that clients ask.
constexpr size_t kMaxMeasuresPerAnswer = 4;

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
  if (n == 0) return out;
  // The k-th largest count, then every entity at or above it: the ones above
  // are all in the first k, the ones equal compete by name for the rest.
  std::vector<std::pair<const std::string*, uint64_t>> order = entities;
  auto by_count = [](const auto& a, const auto& b) { return a.second > b.second; };
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n - 1), order.end(),
                   by_count);
  const uint64_t kth = order[n - 1].second;
  auto end =
      std::partition(order.begin(), order.end(), [kth](const auto& e) { return e.second >= kth; });
  std::sort(order.begin(), end, [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return *a.first < *b.first;
  });
  for (size_t i = 0; i < n; ++i) {
    RankedEntity r;
    r.entity = *order[i].first;
    r.downloads = order[i].second;
    r.rank = (i > 0 && order[i].second == order[i - 1].second) ? out.top.back().rank : i + 1;
    out.top.push_back(std::move(r));
  }
  return out;
}

EntityStanding RankedCounts::Find(std::string_view entity) const {
  EntityStanding out;
  out.total = total;
  out.entities = entities.size();
  out.entity.entity = std::string(entity);
  for (const auto& [name, n] : entities) {
    if (*name == entity) {
      out.entity.downloads = n;
      break;
    }
  }
  if (out.entity.downloads > 0) {
    // Entities with strictly more downloads come first.
    out.entity.rank = 1;
    for (const auto& [name, n] : entities) out.entity.rank += n > out.entity.downloads ? 1 : 0;
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
  if (credit_version_ != aggregates_->credit_version()) {
    credit_version_ = aggregates_->credit_version();
    answers_.clear();
  }
  if (answers_.size() >= kMaxCachedAnswers) answers_.clear();
}

bool OnDemandViews::StillHolds(const CachedAnswer& answer) const {
  if (answer.counts_version == aggregates_->version()) return true;
  if (!answer.weeks) return false;
  for (IsoWeek w = answer.weeks->first; w <= answer.weeks->second; w = w.Plus(1)) {
    if (aggregates_->WeekVersion(w.monday()) > answer.counts_version) return false;
  }
  return true;
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
    // Downloads descending, ties by model id ascending. Counts decide all but
    // the 200th place's ties: select by count, then order only that tie by id.
    if (week.size() > kHeadModelsPerWeek) {
      auto by_count = [](const auto& a, const auto& b) { return a.first > b.first; };
      std::nth_element(week.begin(), week.begin() + (kHeadModelsPerWeek - 1), week.end(), by_count);
      const int64_t last = week[kHeadModelsPerWeek - 1].first;
      auto end = std::partition(week.begin(), week.end(),
                                [last](const auto& e) { return e.first >= last; });
      week.erase(end, week.end());
      std::sort(week.begin(), week.end(), [this](const auto& a, const auto& b) {
        if (a.first != b.first) return a.first > b.first;
        return registry_->Name(a.second) < registry_->Name(b.second);
      });
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

std::shared_ptr<RankedCounts> OnDemandViews::Name(const View& view, const KeyCounts& counts,
                                                  std::vector<EntityKey>* keys) const {
  auto out = std::make_shared<RankedCounts>();
  out->entities.reserve(counts.size());
  for (const auto& [key, n] : counts) {
    if (keys != nullptr) keys->push_back(key);
    const std::string* name;
    if (view.level == Level::kModel) {
      name = &registry_->Name(static_cast<ModelIdx>(key));  // stable for the registry's life
    } else {
      name = &out->owned_names.emplace_back(NameOf(view, key));
    }
    out->entities.emplace_back(name, n);
    out->total += n;
  }
  return out;
}

OnDemandViews::AnswerKey OnDemandViews::KeyOfAnswer(const View& view, const Window& window) const {
  AnswerKey out;
  out.weeks = window.Range(aggregates_->watermark_week());
  // A window resolved to its weeks: trailing:4 and its range share nothing,
  // but the key stays right as the watermark moves.
  out.key = absl::StrCat(
      view.Key(), " ", window.Label(), " ",
      out.weeks ? absl::StrCat(out.weeks->first.Label(), "..", out.weeks->second.Label()) : "");
  return out;
}

OnDemandViews::CachedAnswer* OnDemandViews::FindHolding(const std::string& key) const {
  auto it = answers_.find(key);
  if (it == answers_.end() || !StillHolds(it->second)) return nullptr;
  it->second.counts_version = aggregates_->version();
  return &it->second;
}

OnDemandViews::CachedAnswer& OnDemandViews::Answer(const View& view, const Window& window) const {
  AnswerKey key = KeyOfAnswer(view, window);
  Refresh();
  if (CachedAnswer* cached = FindHolding(key.key)) return *cached;
  KeyCounts counts;
  const bool empty = !key.weeks && window.kind != Window::Kind::kAll;  // no watermark yet
  if (!empty) {
    if (view.sample == Sample::kHead) UpdateHead();
    ForEachModel(view, key.weeks, [&](ModelIdx m, uint64_t n) {
      counts[KeyOf(view, aggregates_->Credited(m, view.attribution))] += n;
    });
  }
  CachedAnswer& cached = answers_[key.key];
  cached.counts = Name(view, counts);
  cached.counts_version = aggregates_->version();
  cached.measures.clear();
  // Population and head membership move with any week's counts.
  cached.weeks = view.sample == Sample::kAll ? key.weeks : std::nullopt;
  return cached;
}

std::shared_ptr<const RankedCounts> OnDemandViews::Counts(const View& view,
                                                          const Window& window) const {
  absl::MutexLock lock(&mu_);
  return Answer(view, window).counts;
}

namespace {

const ConcentrationValues* FindMeasures(
    const std::vector<std::pair<std::vector<uint32_t>, ConcentrationValues>>& measures,
    std::span<const uint32_t> ks) {
  for (const auto& [cached_ks, values] : measures) {
    if (std::equal(cached_ks.begin(), cached_ks.end(), ks.begin(), ks.end())) return &values;
  }
  return nullptr;
}

}  // namespace

ConcentrationValues OnDemandViews::Measures(const View& view, const Window& window,
                                            std::span<const uint32_t> ks) const {
  absl::MutexLock lock(&mu_);
  CachedAnswer& answer = Answer(view, window);
  if (const ConcentrationValues* values = FindMeasures(answer.measures, ks)) return *values;
  if (answer.measures.size() >= kMaxMeasuresPerAnswer)
    answer.measures.erase(answer.measures.begin());
  answer.measures.emplace_back(std::vector<uint32_t>(ks.begin(), ks.end()),
                               answer.counts->Measures(ks));
  return answer.measures.back().second;
}

std::optional<ConcentrationValues> OnDemandViews::CachedMeasures(
    const View& view, const Window& window, std::span<const uint32_t> ks) const {
  if (!mu_.TryLock()) return std::nullopt;  // another reader is computing
  std::optional<ConcentrationValues> out;
  // Refresh() would drop the cache: a changed catalog or credit means nothing cached holds.
  if (catalog_version_ == catalog_->version() && credit_version_ == aggregates_->credit_version()) {
    if (const CachedAnswer* answer = FindHolding(KeyOfAnswer(view, window).key)) {
      if (const ConcentrationValues* values = FindMeasures(answer->measures, ks)) out = *values;
    }
  }
  mu_.Unlock();
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
  std::vector<EntityKey> keys;  // parallel to named->entities
  std::shared_ptr<const RankedCounts> named = Name(view, range, &keys);
  Leaderboard board = named->Top(k);
  out.entities = board.entities;
  out.total = board.total;
  out.top = std::move(board.top);
  absl::flat_hash_map<std::string_view, size_t> shown_at;  // top entity -> its position
  for (size_t i = 0; i < out.top.size(); ++i) shown_at.emplace(out.top[i].entity, i);
  std::vector<EntityKey> shown_keys(out.top.size());
  for (size_t e = 0; e < named->entities.size(); ++e) {
    auto it = shown_at.find(*named->entities[e].first);
    if (it != shown_at.end()) shown_keys[it->second] = keys[e];
  }
  for (size_t w = 0; w < n_weeks; ++w) {
    out.weeks[w].downloads.resize(out.top.size());
    for (size_t i = 0; i < out.top.size(); ++i) {
      auto it = by_week[w].find(shown_keys[i]);
      out.weeks[w].downloads[i] = it == by_week[w].end() ? 0 : it->second;
    }
  }
  return out;
}

}  // namespace hubmetrics
