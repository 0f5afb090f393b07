#include "lib/aggregate/aggregates.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "lib/base/log.h"

namespace hubmetrics {
namespace {

int CreditSlot(Level level, Attribution attribution) {
  return static_cast<int>(level) * 2 + static_cast<int>(attribution);
}

}  // namespace

Aggregates::Aggregates(AggregateOptions options, const ModelRegistry* registry,
                       const Catalog* catalog)
    : options_(std::move(options)), registry_(registry), catalog_(catalog) {
  std::sort(options_.live_trailing_weeks.begin(), options_.live_trailing_weeks.end());
  options_.live_trailing_weeks.erase(
      std::unique(options_.live_trailing_weeks.begin(), options_.live_trailing_weeks.end()),
      options_.live_trailing_weeks.end());
  for (const View& v : options_.live_views) {
    if (v.Liveable()) kept_live_[v.LiveIndex()] = true;
  }
  live_.resize(1 + options_.live_trailing_weeks.size());
  pending_.resize(live_.size());
  for (size_t i = 0; i < options_.live_trailing_weeks.size(); ++i) {
    live_[i + 1].weeks = options_.live_trailing_weeks[i];
  }
}

const Aggregates::Credit& Aggregates::EnsureCredit(ModelIdx m) {
  if (credit_.size() <= m) credit_.resize(static_cast<size_t>(m) + 1);
  Credit& c = credit_[m];
  if (c.valid) return c;
  const ModelIdx root = catalog_->Root(m);
  for (Attribution a : {Attribution::kDirect, Attribution::kRecursive}) {
    const ModelIdx credited = a == Attribution::kDirect ? m : root;
    c.entity[CreditSlot(Level::kModel, a)] = credited;
    c.entity[CreditSlot(Level::kDeveloper, a)] = developers_.Intern(catalog_->Developer(credited));
    c.entity[CreditSlot(Level::kCountry, a)] = countries_.Intern(catalog_->Country(credited));
  }
  c.created_day = catalog_->CreatedDay(m);
  c.valid = true;
  return c;
}

void Aggregates::Contribute(LiveWindow& w, const Credit& c, int64_t all, int64_t rolling) {
  for (Level level : {Level::kModel, Level::kDeveloper, Level::kCountry}) {
    for (Attribution a : {Attribution::kDirect, Attribution::kRecursive}) {
      const EntityId e = c.entity[CreditSlot(level, a)];
      if (all != 0)
        w.dists[View{.level = level,
                     .second = std::nullopt,
                     .filter = Filter::kAll,
                     .attribution = a,
                     .sample = Sample::kAll}
                    .LiveIndex()]
            .Add(e, all);
      if (rolling != 0)
        w.dists[View{.level = level,
                     .second = std::nullopt,
                     .filter = Filter::kRolling1y,
                     .attribution = a,
                     .sample = Sample::kAll}
                    .LiveIndex()]
            .Add(e, rolling);
    }
  }
}

void Aggregates::StagePending(size_t w, ModelIdx m, int64_t all, int64_t rolling) {
  PendingWindow& p = pending_[w];
  if (p.by_model.size() <= m) {
    p.by_model.resize(std::max<size_t>(size_t{m} + 1, p.by_model.size() * 3 / 2));
  }
  WeekCounts& pc = p.by_model[m];
  if (pc.all == 0 && pc.rolling == 0) p.touched.push_back(m);
  pc.all += all;
  pc.rolling += rolling;
  any_pending_ = true;
}

void Aggregates::StageWeek(size_t w, Day monday, int sign) {
  auto it = by_week_.find(monday);
  if (it == by_week_.end()) return;
  for (const auto& [m, wc] : it->second) StagePending(w, m, sign * wc.all, sign * wc.rolling);
}

void Aggregates::Apply(std::span<const ModelDayDelta> deltas) {
  Stage(deltas);
  ApplyAllStaged();
}

void Aggregates::Stage(std::span<const ModelDayDelta> deltas) {
  // Updates sealed into lanes belong to an earlier batch: finish them first.
  if (lanes_[0].left() > 0 || lanes_[1].left() > 0) ApplyAllStaged();
  ++version_;
  std::optional<Day> versioned_monday;  // the week whose version this call moved last
  for (const ModelDayDelta& d : deltas) {
    if (d.delta == 0) continue;
    const Credit& c = EnsureCredit(d.model);
    uint64_t& daily = DailySlot(d.model, d.day);
    if (d.delta < 0 && static_cast<uint64_t>(-d.delta) > daily) {
      LogError("aggregate: count of model %d on day %d would go below zero", d.model, d.day);
      std::abort();
    }
    daily = static_cast<uint64_t>(static_cast<int64_t>(daily) + d.delta);
    total_unique_ = static_cast<uint64_t>(static_cast<int64_t>(total_unique_) + d.delta);
    const int64_t rolling = InRollingYear(c.created_day, d.day) ? d.delta : 0;
    const Day monday = IsoWeek::Containing(d.day).monday();
    WeekCounts& wc = by_week_[monday][d.model];
    wc.all += d.delta;
    wc.rolling += rolling;
    if (totals_.size() <= d.model) {
      totals_.resize(std::max<size_t>(size_t{d.model} + 1, totals_.size() * 3 / 2));
    }
    totals_[d.model].all += d.delta;
    totals_[d.model].rolling += rolling;
    if (versioned_monday != monday) {
      week_version_[monday] = version_;
      versioned_monday = monday;
    }
    for (size_t w = 0; w < live_.size(); ++w) {
      if (live_[w].Covers(monday)) StagePending(w, d.model, d.delta, rolling);
    }
  }
}

void Aggregates::SealLanes() {
  for (Lane& lane : lanes_) {
    lane.updates.clear();
    lane.applied = 0;
  }
  auto emit = [this](size_t w, Level level, Attribution a, EntityId e, const WeekCounts& wc) {
    for (Filter f : {Filter::kAll, Filter::kRolling1y}) {
      const int64_t delta = f == Filter::kAll ? wc.all : wc.rolling;
      if (delta == 0) continue;
      const int view = View{.level = level,
                            .second = std::nullopt,
                            .filter = f,
                            .attribution = a,
                            .sample = Sample::kAll}
                           .LiveIndex();
      if (!kept_live_[view]) continue;
      lanes_[(w + static_cast<size_t>(view)) & 1].updates.push_back(
          {static_cast<uint32_t>(w * kNumLiveViews + static_cast<size_t>(view)), e, delta});
    }
  };
  for (size_t w = 0; w < pending_.size(); ++w) {
    PendingWindow& p = pending_[w];
    if (p.touched.empty()) continue;
    // One pass over the touched models, summing each one's change into the
    // entity it credits under every (level, attribution): the model's counts
    // and credit are read once, not once per slot.
    for (ModelIdx m : p.touched) {
      const WeekCounts wc = std::exchange(p.by_model[m], WeekCounts{});
      if (wc.all == 0 && wc.rolling == 0) continue;  // netted out, or a repeat already taken
      const Credit& c = credit_[m];
      for (int slot = 0; slot < kCreditSlots; ++slot) {
        const EntityId e = c.entity[slot];
        std::vector<WeekCounts>& sums = scratch_[slot];
        if (sums.size() <= e) sums.resize(std::max<size_t>(size_t{e} + 1, sums.size() * 3 / 2));
        WeekCounts& sum = sums[e];
        if (sum.all == 0 && sum.rolling == 0) scratch_touched_[slot].push_back(e);
        sum.all += wc.all;
        sum.rolling += wc.rolling;
      }
    }
    p.touched.clear();
    for (Level level : {Level::kModel, Level::kDeveloper, Level::kCountry}) {
      for (Attribution a : {Attribution::kDirect, Attribution::kRecursive}) {
        const int slot = CreditSlot(level, a);
        for (EntityId e : scratch_touched_[slot]) {
          emit(w, level, a, e, scratch_[slot][e]);
          scratch_[slot][e] = WeekCounts{};
        }
        scratch_touched_[slot].clear();
      }
    }
  }
  any_pending_ = false;
}

void Aggregates::Lane::Apply(std::vector<LiveWindow>& live, size_t n) {
  const size_t end = applied + std::min(n, left());
  for (; applied < end; ++applied) {
    const Update& u = updates[applied];
    live[u.dist / kNumLiveViews].dists[u.dist % kNumLiveViews].Add(u.entity, u.delta);
  }
}

bool Aggregates::ApplyStaged(size_t max_updates) {
  if (lanes_[0].left() == 0 && lanes_[1].left() == 0 && any_pending_) SealLanes();
  Lane& mine = lanes_[0];
  Lane& other = lanes_[1];
  if (options_.apply_threads >= 2 && mine.left() > 0 && other.left() > 0 && max_updates >= 2) {
    if (!worker_) worker_ = std::make_unique<LaneWorker>("hm-lane");
    const size_t half = max_updates / 2;
    worker_->Start([this, &other, half] { other.Apply(live_, half); });
    mine.Apply(live_, half);
    worker_->Wait();
  } else {
    size_t budget = max_updates;
    for (Lane& lane : lanes_) {
      const size_t n = std::min(budget, lane.left());
      lane.Apply(live_, n);
      budget -= n;
    }
  }
  return mine.left() == 0 && other.left() == 0;
}

void Aggregates::SetWatermarkWeek(IsoWeek week) {
  StageWatermarkWeek(week);
  ApplyAllStaged();
}

void Aggregates::StageWatermarkWeek(IsoWeek week) {
  if (watermark_week_ && week <= *watermark_week_) return;
  ++version_;
  watermark_week_ = week;
  for (size_t i = 0; i < live_.size(); ++i) {
    LiveWindow& w = live_[i];
    if (w.weeks == 0) continue;
    const std::pair<IsoWeek, IsoWeek> next = {week.Plus(-(w.weeks - 1)), week};
    auto in = [](const std::optional<std::pair<IsoWeek, IsoWeek>>& r, Day monday) {
      return r && monday >= r->first.monday() && monday <= r->second.monday();
    };
    // The weeks leaving and entering the window, staged per model like any
    // other change: a model in both nets out before it reaches the
    // distributions, and the rest is merged per entity (SealLanes). Only
    // weeks with counts matter.
    if (w.range) {
      for (auto it = by_week_.lower_bound(w.range->first.monday());
           it != by_week_.end() && it->first <= w.range->second.monday(); ++it) {
        if (!in(next, it->first)) StageWeek(i, it->first, -1);
      }
    }
    for (auto it = by_week_.lower_bound(next.first.monday());
         it != by_week_.end() && it->first <= next.second.monday(); ++it) {
      if (!in(w.range, it->first)) StageWeek(i, it->first, +1);
    }
    w.range = next;
  }
}

std::vector<std::pair<Day, Aggregates::WeekCounts>> Aggregates::WeeksOf(
    ModelIdx m, std::optional<Day> created_day) const {
  std::vector<std::pair<Day, WeekCounts>> out;
  if (m >= daily_.size()) return out;
  for (const auto& [day, count] : daily_[m]) {
    const Day monday = IsoWeek::Containing(day).monday();
    if (out.empty() || out.back().first != monday) out.push_back({monday, WeekCounts{}});
    const int64_t n = static_cast<int64_t>(count);
    out.back().second.all += n;
    if (InRollingYear(created_day, day)) out.back().second.rolling += n;
  }
  return out;
}

void Aggregates::RemoveModels(std::span<const ModelIdx> models) {
  ApplyAllStaged();
  ++version_;
  ++credit_version_;
  for (ModelIdx m : models) {
    if (m >= credit_.size() || !credit_[m].valid) continue;
    const Credit& c = credit_[m];
    for (const auto& [monday, unused] : WeeksOf(m, c.created_day)) {
      const WeekCounts wc = by_week_[monday][m];
      for (LiveWindow& w : live_) {
        if (w.Covers(monday)) Contribute(w, c, -wc.all, -wc.rolling);
      }
    }
    credit_[m].valid = false;
  }
}

void Aggregates::AddModels(std::span<const ModelIdx> models) {
  ApplyAllStaged();
  ++version_;
  ++credit_version_;
  for (ModelIdx m : models) {
    if (m < credit_.size()) credit_[m].valid = false;
    const Credit& c = EnsureCredit(m);
    for (const auto& [monday, fresh] : WeeksOf(m, c.created_day)) {
      WeekCounts& wc = by_week_[monday][m];
      // created_at may have changed
      totals_[m].rolling += fresh.rolling - wc.rolling;
      wc.rolling = fresh.rolling;
      for (LiveWindow& w : live_) {
        if (w.Covers(monday)) Contribute(w, c, wc.all, wc.rolling);
      }
    }
  }
}

namespace {

// The first of `days` (ascending) at or after `day`.
auto DayAtOrAfter(auto& days, Day day) {
  return std::lower_bound(days.begin(), days.end(), day,
                          [](const auto& entry, Day d) { return entry.first < d; });
}

}  // namespace

uint64_t& Aggregates::DailySlot(ModelIdx m, Day day) {
  if (daily_.size() <= m) daily_.resize(std::max<size_t>(size_t{m} + 1, daily_.size() * 3 / 2));
  std::vector<std::pair<Day, uint64_t>>& days = daily_[m];
  if (days.empty() || days.back().first < day) return days.emplace_back(day, 0).second;
  if (days.back().first == day) return days.back().second;
  auto it = DayAtOrAfter(days, day);
  if (it->first != day) it = days.insert(it, {day, 0});
  return it->second;
}

uint64_t Aggregates::DailyCount(ModelIdx model, Day day) const {
  if (model >= daily_.size()) return 0;
  const std::vector<std::pair<Day, uint64_t>>& days = daily_[model];
  auto it = DayAtOrAfter(days, day);
  return it == days.end() || it->first != day ? 0 : it->second;
}

uint64_t Aggregates::TotalUniqueDownloads() const { return total_unique_; }

const Aggregates::LiveWindow* Aggregates::LiveFor(const Window& window) const {
  const std::optional<int> weeks = window.TrailingWeeks(watermark_week_);
  if (!weeks) return nullptr;
  for (const LiveWindow& w : live_) {
    if (w.weeks == *weeks) return &w;
  }
  return nullptr;
}

const ExactDistribution* Aggregates::LiveDistribution(View view, const Window& window) const {
  if (!view.Liveable() || !kept_live_[view.LiveIndex()]) return nullptr;
  const LiveWindow* w = LiveFor(window);
  return w == nullptr ? nullptr : &w->dists[view.LiveIndex()];
}

const std::string& Aggregates::EntityName(Level level, EntityId e) const {
  switch (level) {
    case Level::kModel:
      return registry_->Name(e);
    case Level::kDeveloper:
      return developers_.Name(e);
    case Level::kCountry:
      return countries_.Name(e);
    default:
      break;
  }
  return registry_->Name(e);
}

std::optional<ConcentrationValues> Aggregates::Concentration(View view, const Window& window,
                                                             std::span<const uint32_t> ks) const {
  const ExactDistribution* live = LiveDistribution(view, window);
  if (live == nullptr) return std::nullopt;
  return live->Values(ks);
}

std::vector<LiveWindowValues> Aggregates::LiveValues(std::span<const uint32_t> ks) const {
  std::vector<LiveWindowValues> out(live_.size());
  for (size_t w = 0; w < live_.size(); ++w) {
    out[w].weeks = live_[w].weeks;
    out[w].range = live_[w].range;
    for (int v = 0; v < kNumLiveViews; ++v) {
      if (kept_live_[v]) out[w].by_view[v] = live_[w].dists[v].Values(ks);
    }
  }
  return out;
}

std::optional<Leaderboard> Aggregates::Top(View view, const Window& window, uint32_t k) const {
  const ExactDistribution* live = LiveDistribution(view, window);
  if (live == nullptr) return std::nullopt;
  Leaderboard out;
  std::vector<std::pair<uint64_t, EntityId>> all;
  all.reserve(live->entities());
  live->ForEachCount([&](EntityId e, uint64_t n) {
    if (n == 0) return;
    all.push_back({n, e});
    out.total += n;
  });
  out.entities = all.size();
  auto before = [&](const std::pair<uint64_t, EntityId>& a,
                    const std::pair<uint64_t, EntityId>& b) {
    if (a.first != b.first) return a.first > b.first;
    return EntityName(view.level, a.second) < EntityName(view.level, b.second);
  };
  const size_t n = std::min<size_t>(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), before);
  for (size_t i = 0; i < n; ++i) {
    RankedEntity r;
    r.entity = EntityName(view.level, all[i].second);
    r.downloads = all[i].first;
    r.rank = (i > 0 && all[i].first == all[i - 1].first) ? out.top.back().rank : i + 1;
    out.top.push_back(std::move(r));
  }
  return out;
}

std::optional<EntityStanding> Aggregates::Entity(View view, const Window& window,
                                                 std::string_view entity) const {
  const ExactDistribution* live = LiveDistribution(view, window);
  if (live == nullptr) return std::nullopt;
  EntityStanding out;
  out.entity.entity = std::string(entity);
  std::optional<EntityId> id;
  switch (view.level) {
    case Level::kModel:
      id = registry_->Find(entity);
      break;
    case Level::kDeveloper:
      id = developers_.Find(entity);
      break;
    case Level::kCountry:
      id = countries_.Find(entity);
      break;
    default:
      break;
  }
  out.total = live->total();
  out.entities = live->entities();
  if (id) {
    out.entity.downloads = live->Count(*id);
    if (out.entity.downloads > 0) out.entity.rank = 1 + live->CountAbove(out.entity.downloads);
  }
  return out;
}

}  // namespace hubmetrics
