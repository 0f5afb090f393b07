#include "lib/query/on_demand_views.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

// Brute force over the (model, day) counts: DEFINITIONS.md read literally.
struct Oracle {
  std::map<std::pair<ModelIdx, Day>, uint64_t> daily;

  // The models of a sample (every model with downloads for kAll).
  std::set<ModelIdx> Members(const ModelRegistry& reg, Sample s) const {
    std::map<ModelIdx, uint64_t> totals;
    std::map<Day, std::map<ModelIdx, uint64_t>> weeks;
    for (const auto& [key, n] : daily) {
      totals[key.first] += n;
      weeks[IsoWeek::Containing(key.second).monday()][key.first] += n;
    }
    std::set<ModelIdx> out;
    if (s != Sample::kHead) {
      for (const auto& [m, n] : totals) {
        if (s == Sample::kAll || n >= kPopulationMinDownloads) out.insert(m);
      }
      return out;
    }
    for (const auto& [monday, models] : weeks) {
      std::vector<std::pair<uint64_t, ModelIdx>> order;
      for (const auto& [m, n] : models) {
        if (n > 0) order.push_back({n, m});
      }
      std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : reg.Name(a.second) < reg.Name(b.second);
      });
      for (size_t i = 0; i < std::min(order.size(), kHeadModelsPerWeek); ++i) {
        out.insert(order[i].second);
      }
    }
    return out;
  }

  std::string Entity(const ModelRegistry& reg, const Catalog& cat, const View& v,
                     ModelIdx c) const {
    std::string e = v.level == Level::kModel ? reg.Name(c) : cat.Entity(v.level, c);
    if (v.second) e = absl::StrCat(e, "|", cat.Entity(*v.second, c));
    return e;
  }

  std::map<std::string, uint64_t> Counts(const ModelRegistry& reg, const Catalog& cat, View v,
                                         std::optional<std::pair<IsoWeek, IsoWeek>> range,
                                         bool all_time) const {
    std::map<std::string, uint64_t> out;
    const std::set<ModelIdx> members = Members(reg, v.sample);
    for (const auto& [key, n] : daily) {
      const auto [m, day] = key;
      if (n == 0) continue;
      if (!all_time) {
        if (!range) continue;
        if (day < range->first.monday() || day > range->second.sunday()) continue;
      }
      if (v.filter == Filter::kRolling1y) {
        auto created = cat.CreatedDay(m);
        if (!created || day < *created || day - *created > 365) continue;
      }
      if (!members.contains(m)) continue;
      const ModelIdx c = v.attribution == Attribution::kDirect ? m : cat.Root(m);
      out[Entity(reg, cat, v, c)] += n;
    }
    return out;
  }
};

View V(Level level, std::optional<Level> second = std::nullopt, Sample sample = Sample::kAll) {
  View v;
  v.level = level;
  v.second = second;
  v.sample = sample;
  return v;
}

std::vector<std::pair<std::string, uint64_t>> Sorted(const std::map<std::string, uint64_t>& m) {
  std::vector<std::pair<std::string, uint64_t>> out(m.begin(), m.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return out;
}

v1::ModelInfo Rec(std::mt19937_64& rng, int m, int n_models, Day base_day) {
  static const char* kOrgs[] = {"company", "University", "", "community"};
  static const char* kLicenses[] = {"apache-2.0", "MIT", "", "other"};
  static const char* kTags[] = {"fill-mask", "text-generation", "image-classification", "",
                                "graph-ml"};
  static const char* kRelations[] = {"finetune", "quantized", "", "adapter"};
  v1::ModelInfo info;
  info.set_model_id(absl::StrCat("ns", m % 7, "/m", m));
  if (rng() % 3 == 0) info.set_developer(absl::StrCat("dev", rng() % 5));
  if (rng() % 4 != 0) info.set_country(rng() % 2 ? "US" : "CN");
  if (rng() % 5 != 0) {
    info.mutable_created_at()->set_seconds(
        static_cast<int64_t>(base_day - 380 + static_cast<int>(rng() % 420)) * 86400 + 3600);
  }
  if (rng() % 2 == 0) info.set_base_model(absl::StrCat("ns", (m + 3) % 7, "/m", rng() % n_models));
  info.set_org_type(kOrgs[rng() % 4]);
  info.set_license(kLicenses[rng() % 4]);
  info.set_pipeline_tag(kTags[rng() % 5]);
  info.set_base_relation(kRelations[rng() % 4]);
  if (rng() % 4 != 0) info.set_parameters(static_cast<int64_t>(1) << (20 + rng() % 20));
  return info;
}

// Random downloads (enough for models to cross the population bound and to
// crowd a week's head), catalog changes that move models between attribute
// values, and watermark moves; after every few steps each view (every level,
// some pairs, every sample, filter and attribution) on every kind of window
// equals the brute force, twice (the second answer from the cache).
TEST(OnDemandViews, MatchesBruteForceForEveryLevelSampleAndWindow) {
  std::mt19937_64 rng(17);
  ModelRegistry registry;
  Catalog catalog(&registry);
  Aggregates agg(AggregateOptions{{1, 4}}, &registry, &catalog);
  OnDemandViews views(&agg, &catalog, &registry);
  Oracle oracle;
  const int n_models = 260;  // more than a week's head
  const Day base_day = IsoWeek::Parse("2025-W10")->monday();
  for (int m = 0; m < n_models; ++m) {
    if (rng() % 4 != 0) catalog.Put(Rec(rng, m, n_models, base_day));
  }
  auto model = [&](int m) { return registry.Intern(absl::StrCat("ns", m % 7, "/m", m)); };
  std::vector<View> views_to_check;
  for (const LevelRow& row : LevelTable()) views_to_check.push_back(V(row.level));
  for (auto [a, b] : std::vector<std::pair<Level, Level>>{{Level::kCountry, Level::kOrgType},
                                                          {Level::kSize, Level::kModality},
                                                          {Level::kDeveloper, Level::kLicense},
                                                          {Level::kDerivation, Level::kTask}}) {
    views_to_check.push_back(V(a, b));
  }
  Day day = base_day;
  const std::vector<uint32_t> ks = {1, 3, 10};
  for (int step = 0; step < 40; ++step) {
    std::vector<ModelDayDelta> deltas;
    for (int i = 0; i < 400; ++i) {
      // Skewed: low model numbers get most downloads.
      const int pick =
          static_cast<int>(rng() % n_models) % (1 + static_cast<int>(rng() % n_models));
      const ModelIdx m = model(pick);
      const Day d = day - static_cast<Day>(rng() % 4);
      deltas.push_back({m, d, 1 + static_cast<int64_t>(rng() % 3)});
      oracle.daily[{m, d}] += deltas.back().delta;
    }
    agg.Apply(deltas);
    if (rng() % 2 == 0) day += static_cast<Day>(rng() % 6);
    agg.SetWatermarkWeek(IsoWeek::Containing(day));
    if (rng() % 3 == 0) {  // catalog change with re-credit
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
    if (step % 8 != 7) continue;
    const IsoWeek wm = IsoWeek::Containing(day);
    std::vector<Window> windows = {
        *ParseWindow("all"), *ParseWindow("trailing:3"), *ParseWindow("week:current"),
        *ParseWindow(absl::StrCat("range:", wm.Plus(-4).Label(), "..", wm.Plus(-1).Label())),
        Window::Week(wm.Plus(-2))};
    for (View base : views_to_check) {
      for (Sample sample : kSamples) {
        for (Filter filter : kFilters) {
          for (Attribution a : kAttributions) {
            View v = base;
            v.sample = sample;
            v.filter = filter;
            v.attribution = a;
            // Every level at sample all; the rest on a rotating subset.
            if (sample != Sample::kAll && (rng() % 3) != 0) continue;
            for (const Window& w : windows) {
              const std::string where = absl::StrCat("step ", step, " ", v.Key(), " ", w.Label());
              const auto expected = Sorted(
                  oracle.Counts(registry, catalog, v, w.Range(wm), w.kind == Window::Kind::kAll));
              for (int twice = 0; twice < 2; ++twice) {
                std::shared_ptr<const RankedCounts> got = views.Counts(v, w);
                const Leaderboard board = got->Top(static_cast<uint32_t>(expected.size() + 1));
                std::vector<std::pair<std::string, uint64_t>> ordered;
                for (const RankedEntity& r : board.top) ordered.emplace_back(r.entity, r.downloads);
                ASSERT_EQ(ordered, expected) << where;
                ASSERT_EQ(board.entities, expected.size()) << where;
                uint64_t total = 0;
                for (const auto& [e, n] : expected) total += n;
                ASSERT_EQ(got->total, total) << where;
              }
            }
          }
        }
      }
    }
    // Shares over time for a few views.
    for (View v : {V(Level::kDeveloper), V(Level::kSize),
                   V(Level::kCountry, Level::kOrgType, Sample::kHead)}) {
      const IsoWeek first = wm.Plus(-5);
      ShareSeriesValues s = views.ShareSeries(v, first, wm, 3);
      const auto range =
          Sorted(oracle.Counts(registry, catalog, v, std::make_pair(first, wm), false));
      ASSERT_EQ(s.entities, range.size());
      ASSERT_EQ(s.top.size(), std::min<size_t>(3, range.size()));
      ASSERT_EQ(s.weeks.size(), 6u);
      for (size_t i = 0; i < s.top.size(); ++i) {
        EXPECT_EQ(s.top[i].entity, range[i].first);
        EXPECT_EQ(s.top[i].downloads, range[i].second);
      }
      for (size_t w = 0; w < s.weeks.size(); ++w) {
        const IsoWeek week = first.Plus(static_cast<int>(w));
        EXPECT_EQ(s.weeks[w].week, week);
        const auto one = oracle.Counts(registry, catalog, v, std::make_pair(week, week), false);
        uint64_t total = 0;
        for (const auto& [e, n] : one) total += n;
        EXPECT_EQ(s.weeks[w].total, total);
        for (size_t i = 0; i < s.top.size(); ++i) {
          auto it = one.find(s.top[i].entity);
          EXPECT_EQ(s.weeks[w].downloads[i], it == one.end() ? 0 : it->second);
        }
      }
    }
  }
}

// A past week's answer outlives batches that touch other weeks (the point:
// non-live windows stay cheap during live ingest); a batch touching one of
// its weeks, a sample other than all, or a re-credit redoes it.
// Three models of two developers (org: a, b; other: ft) with downloads in
// week 10 (a 3, b 2, ft 1), the watermark in week 11.
class OnDemandViewsOverTwoWeeks : public ::testing::Test {
 protected:
  OnDemandViewsOverTwoWeeks() {
    agg.Apply(std::vector<ModelDayDelta>{
        {a, w10.monday(), 3}, {b, w10.monday() + 1, 2}, {ft, w10.monday() + 2, 1}});
    agg.SetWatermarkWeek(w11);
  }

  ModelRegistry registry;
  Catalog catalog{&registry};
  Aggregates agg{AggregateOptions{{1}}, &registry, &catalog};
  OnDemandViews views{&agg, &catalog, &registry};
  const IsoWeek w10 = *IsoWeek::Parse("2025-W10");
  const IsoWeek w11 = w10.Plus(1);
  const ModelIdx a = registry.Intern("org/a");
  const ModelIdx b = registry.Intern("org/b");
  const ModelIdx ft = registry.Intern("other/ft");
};

TEST_F(OnDemandViewsOverTwoWeeks, AnswersOverUntouchedWeeksOutliveBatches) {
  agg.Apply(std::vector<ModelDayDelta>{{a, w11.monday(), 1}});
  const Window past = Window::Week(w10);
  const Window range = *ParseWindow("range:2025-W09..2025-W10");
  const Window current = *ParseWindow("week:current");
  const View developer = V(Level::kDeveloper);
  View head = developer;
  head.sample = Sample::kHead;
  View recursive = developer;
  recursive.attribution = Attribution::kRecursive;
  auto first = [&](const View& v, const Window& w) {
    return std::make_tuple(views.Counts(v, w), views.Counts(v, w));
  };
  auto [past1, past1_again] = first(developer, past);
  EXPECT_EQ(past1, past1_again);  // the same batch: the same answer
  EXPECT_EQ(past1->total, 6u);
  const auto range1 = views.Counts(developer, range);
  const auto current1 = views.Counts(developer, current);
  const auto head1 = views.Counts(head, past);
  const auto recursive1 = views.Counts(recursive, past);
  EXPECT_EQ(current1->total, 1u);

  // A batch of week 11 only.
  agg.Apply(std::vector<ModelDayDelta>{{b, w11.monday() + 3, 4}});
  EXPECT_EQ(views.Counts(developer, past), past1);
  EXPECT_EQ(views.Counts(developer, range), range1);
  EXPECT_EQ(views.Counts(recursive, past), recursive1);
  const auto current2 = views.Counts(developer, current);
  EXPECT_NE(current2, current1);
  EXPECT_EQ(current2->total, 5u);
  EXPECT_NE(views.Counts(head, past), head1);  // head membership may move with any week

  // A batch touching week 10.
  agg.Apply(std::vector<ModelDayDelta>{{b, w10.monday() + 6, 1}});
  const auto past2 = views.Counts(developer, past);
  EXPECT_NE(past2, past1);
  EXPECT_EQ(past2->total, 7u);
  EXPECT_NE(views.Counts(developer, range), range1);

  // A re-credit: other/ft becomes a fine-tune of org/a; no count moves.
  const auto recursive2 = views.Counts(recursive, past);
  std::vector<ModelIdx> affected = catalog.AffectedBy(ft);
  agg.RemoveModels(affected);
  v1::ModelInfo info;
  info.set_model_id("other/ft");
  info.set_base_model("org/a");
  catalog.Put(info);
  agg.AddModels(affected);
  const auto recursive3 = views.Counts(recursive, past);
  EXPECT_NE(recursive3, recursive2);
  EXPECT_EQ(recursive3->total, 7u);
  EXPECT_EQ(recursive3->entities.size(), 1u);  // every download is credited to org
}

// Measures are kept with the cached counts: CachedMeasures has them once
// Measures computed them, for that ks list only, until a batch touches one of
// the window's weeks.
TEST_F(OnDemandViewsOverTwoWeeks, MeasuresAreCachedWithTheirCounts) {
  const Window past = Window::Week(w10);
  const View developer = V(Level::kDeveloper);
  const uint32_t k1[] = {1};
  const uint32_t k2[] = {2};
  EXPECT_FALSE(views.CachedMeasures(developer, past, k1));  // never computed
  const ConcentrationValues first = views.Measures(developer, past, k1);
  // org: 3 + 2, other: 1.
  EXPECT_EQ(first.total, 6u);
  EXPECT_NEAR(first.hhi, (25.0 + 1) / 36, 1e-15);
  std::optional<ConcentrationValues> cached = views.CachedMeasures(developer, past, k1);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->total, 6u);
  EXPECT_EQ(cached->hhi, first.hhi);
  ASSERT_EQ(cached->top_shares.size(), 1u);
  EXPECT_NEAR(cached->top_shares[0].second, 5.0 / 6, 1e-15);
  EXPECT_FALSE(views.CachedMeasures(developer, past, k2));  // another ks list

  agg.Apply(std::vector<ModelDayDelta>{{b, w11.monday(), 4}});  // week 11 only
  EXPECT_TRUE(views.CachedMeasures(developer, past, k1));

  agg.Apply(std::vector<ModelDayDelta>{{ft, w10.monday() + 3, 2}});  // week 10
  EXPECT_FALSE(views.CachedMeasures(developer, past, k1));
  const ConcentrationValues second = views.Measures(developer, past, k1);
  EXPECT_EQ(second.total, 8u);
  EXPECT_NEAR(second.hhi, (25.0 + 9) / 64, 1e-15);
  ASSERT_TRUE(views.CachedMeasures(developer, past, k1));
  EXPECT_EQ(views.CachedMeasures(developer, past, k1)->total, 8u);
}

TEST(OnDemandViews, RanksAndMeasuresOfRankedCounts) {
  RankedCounts c;
  for (auto [name, n] : std::vector<std::pair<const char*, uint64_t>>{
           {"d", 1}, {"c", 3}, {"a", 5}, {"b", 3}}) {  // in no order
    c.entities.emplace_back(&c.owned_names.emplace_back(name), n);
  }
  c.total = 12;
  Leaderboard top = c.Top(3);
  ASSERT_EQ(top.top.size(), 3u);
  EXPECT_EQ(top.top[0].entity, "a");
  EXPECT_EQ(top.top[1].entity, "b");
  EXPECT_EQ(top.top[2].entity, "c");
  EXPECT_EQ(top.top[2].rank, 2u);
  ASSERT_EQ(c.Top(2).top.size(), 2u);
  EXPECT_EQ(c.Top(2).top[1].entity, "b");  // the tie at the boundary goes by name
  EXPECT_EQ(c.Top(10).top.size(), 4u);
  EXPECT_EQ(c.Find("c").entity.rank, 2u);
  EXPECT_EQ(c.Find("d").entity.rank, 4u);
  EXPECT_EQ(c.Find("z").entity.rank, 0u);
  EXPECT_EQ(c.Find("z").entities, 4u);
  const uint32_t ks[] = {1};
  ConcentrationValues v = c.Measures(ks);
  EXPECT_EQ(v.total, 12u);
  EXPECT_NEAR(v.hhi, (25.0 + 9 + 9 + 1) / 144, 1e-15);
}

}  // namespace
}  // namespace hubmetrics
