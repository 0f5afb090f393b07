// Micro benchmarks of the exact concentration structure: one count update
// (ExactDistribution::Add) and the batch recompute, at n = 10^3 .. 10^7
// entities with Zipf-like counts (rank r holds about C / r downloads), the
// shape of model download counts on the Hub. Updates hit entities with a
// log-uniform rank (Zipf with s = 1), 10% of them decrements as when a
// trailing window drops a week. Target: Add well under 1 µs at 10^7.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/concentration/distribution.h"

namespace hubmetrics {
namespace {

// Ids are dense, as the engine interns them (0 .. n-1), but in an order
// unrelated to popularity, so that popular entities are not adjacent: rank r
// of n maps to (r - 1) * 2654435761 mod n, a bijection for n = 10^k (the
// factor is coprime with 10).
EntityId IdOfRank(uint32_t rank, uint32_t n) {
  return static_cast<EntityId>((uint64_t{rank} - 1) * 2654435761u % n);
}

std::vector<uint64_t> ZipfCounts(uint32_t n) {
  const double c = 2e8 / std::log(static_cast<double>(n));
  std::vector<uint64_t> counts(n);
  for (uint32_t r = 1; r <= n; ++r) counts[r - 1] = 1 + static_cast<uint64_t>(c / r);
  return counts;
}

struct Update {
  EntityId entity;
  int64_t delta;
};

std::vector<Update> ZipfUpdates(uint32_t n, size_t how_many) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<Update> out(how_many);
  for (Update& u : out) {
    const auto rank = static_cast<uint32_t>(std::pow(static_cast<double>(n), unit(rng)));
    u.entity = IdOfRank(std::clamp<uint32_t>(rank, 1, n), n);
    u.delta = rng() % 10 == 0 ? -1 : 1;
  }
  return out;
}

void BM_Add(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  ExactDistribution dist;
  const std::vector<uint64_t> counts = ZipfCounts(n);
  for (uint32_t r = 1; r <= n; ++r) dist.Add(IdOfRank(r, n), static_cast<int64_t>(counts[r - 1]));
  const std::vector<Update> updates = ZipfUpdates(n, size_t{1} << 20);
  size_t i = 0;
  for (auto _ : state) {
    Update u = updates[i++ & (updates.size() - 1)];
    // A decrement of an entity already at zero would abort: make it an increment.
    if (u.delta < 0 && dist.Count(u.entity) == 0) u.delta = 1;
    dist.Add(u.entity, u.delta);
  }
  benchmark::DoNotOptimize(dist.pairwise_abs_diff());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Add)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kNanosecond);

// Reading the measures from the live structure: what a query costs.
void BM_Values(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  ExactDistribution dist;
  const std::vector<uint64_t> counts = ZipfCounts(n);
  for (uint32_t r = 1; r <= n; ++r) dist.Add(IdOfRank(r, n), static_cast<int64_t>(counts[r - 1]));
  const std::vector<uint32_t> ks = {1, 10, 100};
  for (auto _ : state) {
    ConcentrationValues v = dist.Values(ks);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_Values)->RangeMultiplier(10)->Range(1000, 10000000);

// The batch path (windows not kept live): copy, sort, sum. The copy is part
// of the measured cost, as RecomputeConcentration takes its input by value.
void BM_RecomputeConcentration(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  std::vector<uint64_t> counts = ZipfCounts(n);
  std::shuffle(counts.begin(), counts.end(), std::mt19937_64(7));
  const std::vector<uint32_t> ks = {1, 10, 100};
  for (auto _ : state) {
    ConcentrationValues v = RecomputeConcentration(counts, ks);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_RecomputeConcentration)
    ->RangeMultiplier(10)
    ->Range(1000, 10000000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hubmetrics

BENCHMARK_MAIN();
