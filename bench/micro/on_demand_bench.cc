// On-demand views at Hub scale: 1,000,000 models with downloads over 5 years
// (260 ISO weeks), a catalog record for each, and no view kept live — so every
// answer below is computed on request from the per-model counts, as
// QueryService does for any view x window that is not live. Each iteration
// first applies one more download (untimed), as the next batch would, so the
// cached answer is gone and the timed call computes the view afresh.
//
// Shape: model r (by popularity) has downloads in max(1, 260 / (1 + r / 2000))
// weeks, about 4.5M (model, week) counts in all; developers are 100,000
// namespaces; attributes drawn per model.
//
// Run and report: see bench/micro/on_demand_report.py (docs/BENCHMARKS.md,
// "On-demand views at Hub scale").
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/aggregate/aggregates.h"
#include "lib/catalog/catalog.h"
#include "lib/query/on_demand_views.h"
#include "lib/views/views.h"

namespace hubmetrics {
namespace {

constexpr int kModels = 1'000'000;
constexpr int kWeeks = 260;

struct Hub {
  ModelRegistry registry;
  Catalog catalog{&registry};
  std::unique_ptr<Aggregates> aggregates;
  std::unique_ptr<OnDemandViews> views;
  IsoWeek last = *IsoWeek::Parse("2025-W48");
  int64_t bumps = 0;

  Hub() {
    static const char* kOrgs[] = {"company", "university", "non_profit", "community", "user", ""};
    static const char* kLicenses[] = {"apache-2.0", "mit", "other", "llama3.1", "cc-by-4.0", ""};
    static const char* kTags[] = {
        "sentence-similarity",          "fill-mask", "text-generation", "image-classification",
        "automatic-speech-recognition", ""};
    static const char* kCountries[] = {"US", "CN", "FR", "DE", "GB", "KR", "JP", ""};
    std::mt19937_64 rng(5);
    AggregateOptions options;
    options.live_trailing_weeks = {};
    options.live_views = {};
    aggregates = std::make_unique<Aggregates>(options, &registry, &catalog);
    for (int r = 0; r < kModels; ++r) {
      v1::ModelInfo info;
      info.set_model_id(absl::StrCat("ns", r % 100000, "/model-", r));
      info.set_country(kCountries[rng() % 8]);
      info.set_org_type(kOrgs[rng() % 6]);
      info.set_license(kLicenses[rng() % 6]);
      info.set_pipeline_tag(kTags[rng() % 6]);
      info.set_parameters(static_cast<int64_t>(1) << (24 + rng() % 14));
      if (r % 5 == 1) info.set_base_model(absl::StrCat("ns", (r - 1) % 100000, "/model-", r - 1));
      catalog.Put(info);
    }
    aggregates->SetWatermarkWeek(last);
    std::vector<ModelDayDelta> deltas;
    for (int r = 0; r < kModels; ++r) {
      const ModelIdx m = static_cast<ModelIdx>(r);  // interned in order above
      const int weeks = std::max(1, kWeeks / (1 + r / 2000));
      const int64_t per_week = std::max<int64_t>(1, 100000 / (r + 1));
      for (int w = 0; w < weeks; ++w) {
        const Day day = last.Plus(-w).monday() + static_cast<Day>(rng() % 7);
        deltas.push_back({m, day, per_week + static_cast<int64_t>(rng() % 3)});
      }
      if (deltas.size() > 1'000'000) {
        aggregates->Apply(deltas);
        deltas.clear();
      }
    }
    aggregates->Apply(deltas);
    views = std::make_unique<OnDemandViews>(aggregates.get(), &catalog, &registry);
  }

  // One more download, as the next batch: the cached answers are stale.
  void NextBatch() {
    const ModelDayDelta d{static_cast<ModelIdx>(bumps++ % kModels), last.monday(), 1};
    aggregates->Apply({&d, 1});
  }
};

Hub& TheHub() {
  static Hub* hub = new Hub();
  return *hub;
}

void BM_OnDemand(benchmark::State& state, const char* view_key, const char* window_text) {
  Hub& hub = TheHub();
  const View view = *ParseViewKey(view_key);
  const Window window = *ParseWindow(window_text);
  const std::vector<uint32_t>& ks = DefaultTopK();
  size_t entities = 0;
  for (auto _ : state) {
    state.PauseTiming();
    hub.NextBatch();
    state.ResumeTiming();
    std::shared_ptr<const RankedCounts> counts = hub.views->Counts(view, window);
    ConcentrationValues values = counts->Measures(ks);
    benchmark::DoNotOptimize(values);
    entities = counts->entities.size();
  }
  state.counters["entities"] = static_cast<double>(entities);
}

BENCHMARK_CAPTURE(BM_OnDemand, model_all, "model/all/direct", "all")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, developer_all_recursive, "developer/all/recursive", "all")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, size_all, "size", "all")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, country_org_type_all, "country+org_type", "all")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, model_all_head, "model/all/direct/head", "all")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, developer_range_52w, "developer", "range:2024-W49..2025-W48")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnDemand, license_week_current_population, "license/all/direct/population",
                  "week:current")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace hubmetrics

BENCHMARK_MAIN();
