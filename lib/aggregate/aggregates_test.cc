#include "lib/aggregate/aggregates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

// Brute-force oracle: recompute a view x window from the raw daily counts and
// the catalog, straight from the definitions.
struct Oracle {
  std::map<std::pair<ModelIdx, Day>, uint64_t> daily;

  std::map<std::string, uint64_t> Counts(const ModelRegistry& reg, const Catalog& cat, View v,
                                         std::optional<std::pair<IsoWeek, IsoWeek>> range,
                                         bool all_time) const {
    std::map<std::string, uint64_t> out;
    for (const auto& [key, n] : daily) {
      const auto [m, day] = key;
      if (!all_time) {
        if (!range) continue;
        if (day < range->first.monday() || day > range->second.sunday()) continue;
      }
      if (v.filter == Filter::kRolling1y) {
        auto created = cat.CreatedDay(m);
        if (!created || day < *created || day - *created > 365) continue;
      }
      const ModelIdx c = v.attribution == Attribution::kDirect ? m : cat.Root(m);
      std::string e = v.level == Level::kModel       ? reg.Name(c)
                      : v.level == Level::kDeveloper ? cat.Developer(c)
                                                     : cat.Country(c);
      out[e] += n;
    }
    return out;
  }
};

void ExpectMatches(const ConcentrationValues& got, const std::map<std::string, uint64_t>& counts,
                   const std::vector<uint32_t>& ks, const std::string& where) {
  std::vector<uint64_t> xs;
  for (const auto& [e, n] : counts) xs.push_back(n);
  std::sort(xs.rbegin(), xs.rend());
  uint64_t total = 0;
  long double sq = 0, diff = 0;
  for (uint64_t x : xs) {
    total += x;
    sq += static_cast<long double>(x) * x;
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    for (size_t j = i + 1; j < xs.size(); ++j) diff += xs[i] - xs[j];
  }
  ASSERT_EQ(got.total, total) << where;
  ASSERT_EQ(got.entities, xs.size()) << where;
  const long double hhi = total ? sq / (static_cast<long double>(total) * total) : 0;
  const long double gini = xs.size() > 1 ? diff / (static_cast<long double>(xs.size()) * total) : 0;
  ASSERT_NEAR(got.hhi, static_cast<double>(hhi), 1e-12 * std::max<double>(1, hhi)) << where;
  ASSERT_NEAR(got.gini, static_cast<double>(gini), 1e-12) << where;
  ASSERT_EQ(got.top_shares.size(), ks.size());
  for (size_t i = 0; i < ks.size(); ++i) {
    uint64_t top = 0;
    for (size_t j = 0; j < std::min<size_t>(ks[i], xs.size()); ++j) top += xs[j];
    const double share = total ? static_cast<double>(top) / static_cast<double>(total) : 0;
    ASSERT_EQ(got.top_shares[i].first, ks[i]) << where;
    ASSERT_NEAR(got.top_shares[i].second, share, 1e-12) << where;
  }
}

v1::ModelInfo Rec(std::mt19937_64& rng, int m, int n_models, Day base_day) {
  v1::ModelInfo info;
  info.set_model_id(absl::StrCat("ns", m % 7, "/m", m));
  if (rng() % 3 == 0) info.set_developer(absl::StrCat("dev", rng() % 5));
  if (rng() % 4 != 0) info.set_country(rng() % 2 ? "US" : "CN");
  if (rng() % 5 != 0) {
    info.mutable_created_at()->set_seconds(
        static_cast<int64_t>(base_day - 380 + static_cast<int>(rng() % 420)) * 86400 + 3600);
  }
  if (rng() % 2 == 0) info.set_base_model(absl::StrCat("ns", (m + 3) % 7, "/m", rng() % n_models));
  return info;
}

// Random downloads, catalog changes (re-credits, cycles, removals) and
// watermark moves; after each step every view on every kind of window must
// equal the brute-force recompute.
TEST(Aggregates, MatchesBruteForceUnderRandomUpdatesAndRecredits) {
  std::mt19937_64 rng(11);
  ModelRegistry registry;
  Catalog catalog(&registry);
  Aggregates agg(AggregateOptions{{1, 2, 4}}, &registry, &catalog);
  Oracle oracle;
  const int n_models = 40;
  const Day base_day = IsoWeek::Parse("2025-W10")->monday();
  for (int m = 0; m < n_models; ++m) {
    if (rng() % 4 != 0) catalog.Put(Rec(rng, m, n_models, base_day));
  }
  auto model = [&](int m) { return registry.Intern(absl::StrCat("ns", m % 7, "/m", m)); };
  Day day = base_day;
  const std::vector<uint32_t> ks = {1, 3, 10};
  for (int step = 0; step < 120; ++step) {
    std::vector<ModelDayDelta> deltas;
    for (int i = 0; i < 30; ++i) {
      const ModelIdx m = model(static_cast<int>(rng() % n_models));
      const Day d = day - static_cast<Day>(rng() % 4);
      deltas.push_back({m, d, 1 + static_cast<int64_t>(rng() % 3)});
      oracle.daily[{m, d}] += deltas.back().delta;
    }
    agg.Apply(deltas);
    if (rng() % 3 == 0) day += static_cast<Day>(rng() % 5);
    agg.SetWatermarkWeek(IsoWeek::Containing(day));
    if (rng() % 4 == 0) {  // catalog change with re-credit
      const int m = static_cast<int>(rng() % n_models);
      auto affected = catalog.AffectedBy(model(m));
      agg.RemoveModels(affected);
      if (rng() % 5 == 0) {
        catalog.Remove(model(m));
      } else {
        catalog.Put(Rec(rng, m, n_models, base_day));
      }
      agg.AddModels(affected);
    }
    if (step % 10 != 9) continue;
    const IsoWeek wm = IsoWeek::Containing(day);
    std::vector<Window> windows = {*ParseWindow("all"),        *ParseWindow("trailing:1"),
                                   *ParseWindow("trailing:2"), *ParseWindow("trailing:3"),
                                   *ParseWindow("trailing:4"), *ParseWindow("trailing:100")};
    for (int back = 0; back < 5; ++back) {
      windows.push_back(*ParseWindow(absl::StrCat("week:", wm.Plus(-back).Label())));
    }
    for (int vi = 0; vi < kNumLiveViews; ++vi) {
      const View v = View::FromLiveIndex(vi);
      for (const Window& w : windows) {
        const std::string where = absl::StrCat("step ", step, " view ", vi, " ", w.Label());
        // Live: all, the trailing windows of the options and the watermark's
        // week; lib/query answers the others.
        const bool live = w.kind == Window::Kind::kAll ||
                          (w.kind == Window::Kind::kTrailing && w.weeks != 3 && w.weeks != 100) ||
                          (w.kind == Window::Kind::kWeek && w.week == wm);
        ASSERT_EQ(agg.IsLive(v, w), live) << where;
        if (!live) {
          EXPECT_FALSE(agg.Concentration(v, w, ks).has_value()) << where;
          EXPECT_FALSE(agg.Top(v, w, 5).has_value()) << where;
          continue;
        }
        auto counts =
            oracle.Counts(registry, catalog, v, w.Range(wm), w.kind == Window::Kind::kAll);
        ExpectMatches(*agg.Concentration(v, w, ks), counts, ks, where);
        // Leaderboard: order by downloads desc, name asc; competition ranks.
        std::vector<std::pair<uint64_t, std::string>> sorted;
        for (const auto& [e, n] : counts) sorted.push_back({n, e});
        std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
          return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        Leaderboard top = *agg.Top(v, w, 5);
        ASSERT_EQ(top.top.size(), std::min<size_t>(5, sorted.size())) << where;
        for (size_t i = 0; i < top.top.size(); ++i) {
          ASSERT_EQ(top.top[i].entity, sorted[i].second) << where;
          ASSERT_EQ(top.top[i].downloads, sorted[i].first) << where;
          uint64_t above = 0;
          for (const auto& s : sorted) above += s.first > sorted[i].first;
          ASSERT_EQ(top.top[i].rank, above + 1) << where;
        }
        if (!sorted.empty()) {
          const auto& pick = sorted[rng() % sorted.size()];
          EntityStanding st = *agg.Entity(v, w, pick.second);
          uint64_t above = 0;
          for (const auto& s : sorted) above += s.first > pick.first;
          ASSERT_EQ(st.entity.downloads, pick.first) << where;
          ASSERT_EQ(st.entity.rank, above + 1) << where;
        }
        EXPECT_EQ(agg.Entity(v, w, "no-such-entity")->entity.rank, 0u);
      }
    }
  }
}

// Staged changes of one model that net out and come back before the lanes are
// sealed count once, in every view (the model is on the touched list twice).
TEST(Aggregates, ChangesThatNetOutAndComeBackBeforeASealCountOnce) {
  ModelRegistry registry;
  Catalog catalog(&registry);
  Aggregates agg(AggregateOptions{{1}}, &registry, &catalog);
  const Day day = IsoWeek::Parse("2025-W10")->monday();
  const ModelIdx a = registry.Intern("ns/a");
  const ModelIdx b = registry.Intern("ns/b");
  agg.SetWatermarkWeek(IsoWeek::Containing(day));
  for (const ModelDayDelta& d : std::vector<ModelDayDelta>{
           {a, day, 2}, {b, day, 1}, {a, day, -2}, {a, day, 3}, {b, day, 4}}) {
    agg.Stage({&d, 1});
  }
  agg.ApplyStaged(SIZE_MAX);
  const std::vector<uint32_t> ks = {1};
  for (const char* window : {"all", "trailing:1"}) {
    for (int vi = 0; vi < kNumLiveViews; ++vi) {
      const View v = View::FromLiveIndex(vi);
      if (v.filter == Filter::kRolling1y) continue;  // no created_at: in no rolling view
      const ConcentrationValues got = *agg.Concentration(v, *ParseWindow(window), ks);
      EXPECT_EQ(got.total, 8u) << window << " view " << vi;
      if (v.level == Level::kModel) {
        EXPECT_EQ(agg.Entity(v, *ParseWindow(window), "ns/a")->entity.downloads, 3u);
      }
    }
  }
}

// The watermark's week moved with StageWatermarkWeek, staged together with
// the batch's counts and applied a few updates at a time (as the pipeline
// does), leaves every live view and window equal to the brute-force
// recompute, also when the week jumps past a whole trailing window.
TEST(Aggregates, AStagedWeekMoveAppliedInSlicesIsExact) {
  std::mt19937_64 rng(29);
  ModelRegistry registry;
  Catalog catalog(&registry);
  Aggregates agg(AggregateOptions{{1, 2, 5}}, &registry, &catalog);
  Oracle oracle;
  const int n_models = 30;
  const Day base_day = IsoWeek::Parse("2025-W10")->monday();
  for (int m = 0; m < n_models; ++m) {
    if (rng() % 4 != 0) catalog.Put(Rec(rng, m, n_models, base_day));
  }
  auto model = [&](int m) { return registry.Intern(absl::StrCat("ns", m % 7, "/m", m)); };
  Day day = base_day;
  const std::vector<uint32_t> ks = {1, 3};
  for (int step = 0; step < 80; ++step) {
    std::vector<ModelDayDelta> deltas;
    for (int i = 0; i < 25; ++i) {
      const ModelIdx m = model(static_cast<int>(rng() % n_models));
      const Day d = day - static_cast<Day>(rng() % 10);
      deltas.push_back({m, d, 1 + static_cast<int64_t>(rng() % 3)});
      oracle.daily[{m, d}] += deltas.back().delta;
    }
    for (size_t i = 0; i < deltas.size(); i += 6) {
      agg.Stage(std::span<const ModelDayDelta>(deltas).subspan(
          i, std::min<size_t>(6, deltas.size() - i)));
    }
    if (rng() % 2 == 0) day += static_cast<Day>(rng() % (step % 10 == 0 ? 60 : 9));
    agg.StageWatermarkWeek(IsoWeek::Containing(day));
    EXPECT_EQ(agg.watermark_week(), IsoWeek::Containing(day));
    while (!agg.ApplyStaged(7)) {
    }
    const IsoWeek wm = IsoWeek::Containing(day);
    for (const char* name : {"all", "trailing:1", "trailing:2", "trailing:5"}) {
      const Window w = *ParseWindow(name);
      for (int vi = 0; vi < kNumLiveViews; ++vi) {
        const View v = View::FromLiveIndex(vi);
        ExpectMatches(
            *agg.Concentration(v, w, ks),
            oracle.Counts(registry, catalog, v, w.Range(wm), w.kind == Window::Kind::kAll), ks,
            absl::StrCat("step ", step, " view ", vi, " ", name));
      }
    }
    if (HasFailure()) break;
  }
}

// Only the views of AggregateOptions::live_views are kept live: the others
// are not answered here (lib/query computes them), and the kept one is exact.
TEST(Aggregates, KeepsOnlyTheConfiguredViewsLive) {
  ModelRegistry registry;
  Catalog catalog(&registry);
  View developer;
  developer.level = Level::kDeveloper;
  AggregateOptions options{{4}};
  options.live_views = {developer};
  Aggregates agg(options, &registry, &catalog);
  const Day day = IsoWeek::Parse("2025-W10")->monday();
  agg.SetWatermarkWeek(IsoWeek::Containing(day));
  const std::vector<ModelDayDelta> deltas = {{registry.Intern("a/x"), day, 3},
                                             {registry.Intern("a/y"), day, 2},
                                             {registry.Intern("b/z"), day, 1}};
  agg.Apply(deltas);
  const std::vector<uint32_t> ks = {1};
  for (int vi = 0; vi < kNumLiveViews; ++vi) {
    const View v = View::FromLiveIndex(vi);
    for (const char* window : {"all", "trailing:4"}) {
      EXPECT_EQ(agg.IsLive(v, *ParseWindow(window)), v == developer) << vi << " " << window;
    }
  }
  const ConcentrationValues got = *agg.Concentration(developer, *ParseWindow("all"), ks);
  EXPECT_EQ(got.total, 6u);
  EXPECT_EQ(got.entities, 2u);
  EXPECT_NEAR(got.hhi, (25.0 + 1.0) / 36.0, 1e-15);
  const std::vector<LiveWindowValues> values = agg.LiveValues(ks);
  ASSERT_EQ(values.size(), 2u);
  for (const LiveWindowValues& w : values) {
    for (int vi = 0; vi < kNumLiveViews; ++vi) {
      EXPECT_EQ(w.by_view[vi].has_value(), vi == developer.LiveIndex());
    }
  }
}

}  // namespace
}  // namespace hubmetrics
