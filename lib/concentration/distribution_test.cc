#include "lib/concentration/distribution.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hubmetrics {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAreArray;

// The non-zero counts, as ForEachCount reports them.
std::vector<std::pair<const EntityId, uint64_t>> CountsOf(const ExactDistribution& d) {
  std::vector<std::pair<const EntityId, uint64_t>> out;
  d.ForEachCount([&](EntityId e, uint64_t x) { out.emplace_back(e, x); });
  return out;
}

std::string U128(uint128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v != 0) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return s;
}

// Independent oracle: the counts in a plain ordered map, every measure
// recomputed from scratch by the definitions of docs/DEFINITIONS.md.
struct Oracle {
  std::map<EntityId, uint64_t> counts;  // x > 0 only

  void Add(EntityId e, int64_t delta) {
    const int64_t now = static_cast<int64_t>(Get(e)) + delta;
    ASSERT_GE(now, 0);
    if (now == 0) {
      counts.erase(e);
    } else {
      counts[e] = static_cast<uint64_t>(now);
    }
  }
  uint64_t Get(EntityId e) const {
    auto it = counts.find(e);
    return it == counts.end() ? 0 : it->second;
  }
  std::vector<uint64_t> Values() const {
    std::vector<uint64_t> v;
    for (const auto& [e, x] : counts) v.push_back(x);
    return v;
  }
  uint64_t n() const { return counts.size(); }
  uint128 X() const {
    uint128 s = 0;
    for (const auto& [e, x] : counts) s += x;
    return s;
  }
  uint128 Q() const {
    uint128 s = 0;
    for (const auto& [e, x] : counts) s += uint128{x} * x;
    return s;
  }
  // O(n^2) over unordered pairs, exactly as defined.
  uint128 D() const {
    const std::vector<uint64_t> v = Values();
    uint128 s = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      for (size_t j = i + 1; j < v.size(); ++j) s += v[i] > v[j] ? v[i] - v[j] : v[j] - v[i];
    }
    return s;
  }
  uint64_t TopK(uint64_t k) const {
    std::vector<uint64_t> v = Values();
    std::sort(v.begin(), v.end(), std::greater<>());
    uint64_t s = 0;
    for (uint64_t i = 0; i < k && i < v.size(); ++i) s += v[i];
    return s;
  }
  uint64_t Above(uint64_t x) const {
    uint64_t c = 0;
    for (const auto& [e, y] : counts) c += y > x ? 1 : 0;
    return c;
  }
};

// Exact rationals evaluated in long double (64-bit mantissa): far closer to
// the true value than the 1e-12 the contract asks of the double results.
long double Frac(uint128 num, uint128 den) {
  return static_cast<long double>(num) / static_cast<long double>(den);
}

void ExpectClose(double got, long double want, const std::string& what) {
  if (want == 0) {
    EXPECT_EQ(got, 0.0) << what;
    return;
  }
  const long double rel = std::fabs((static_cast<long double>(got) - want) / want);
  EXPECT_LE(rel, 1e-12L) << what << ": got " << got << " want " << static_cast<double>(want);
}

// Values() (or the batch recompute) against the oracle's exact rationals.
void ExpectValuesMatch(const ConcentrationValues& v, const Oracle& o,
                       const std::vector<uint32_t>& ks) {
  const uint128 x = o.X();
  const uint64_t n = o.n();
  EXPECT_EQ(v.total, static_cast<uint64_t>(x));
  EXPECT_EQ(v.entities, n);
  ExpectClose(v.hhi, x == 0 ? 0.0L : Frac(o.Q(), x * x), "hhi");
  ExpectClose(v.gini, (x == 0 || n <= 1) ? 0.0L : Frac(o.D(), uint128{n} * x), "gini");
  ASSERT_EQ(v.top_shares.size(), ks.size());
  for (size_t i = 0; i < ks.size(); ++i) {
    EXPECT_EQ(v.top_shares[i].first, ks[i]);
    ExpectClose(v.top_shares[i].second, x == 0 ? 0.0L : Frac(o.TopK(ks[i]), x),
                "top " + std::to_string(ks[i]));
    if (n > 0 && ks[i] >= n) {
      EXPECT_EQ(v.top_shares[i].second, 1.0);
    }
  }
}

const std::vector<uint32_t> kKs = {1, 2, 3, 10, 100, 0, 1000000};

// Full comparison of every observable against the oracle.
void ExpectMatches(const ExactDistribution& d, const Oracle& o) {
  ASSERT_EQ(d.entities(), o.n());
  ASSERT_EQ(d.total(), static_cast<uint64_t>(o.X()));
  ASSERT_EQ(U128(d.sum_of_squares()), U128(o.Q()));
  ASSERT_EQ(U128(d.pairwise_abs_diff()), U128(o.D()));
  const uint64_t n = o.n();
  for (uint64_t k : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, n / 2, n - 1,
                     n, n + 1, uint64_t{1} << 40, ~uint64_t{0}}) {
    ASSERT_EQ(d.TopKSum(k), o.TopK(k)) << "k=" << k << " n=" << n;
  }
  std::vector<uint64_t> probes = {0, 1, 2, ~uint64_t{0}};
  const std::vector<uint64_t> vals = o.Values();
  for (size_t i = 0; i < vals.size(); i += 1 + vals.size() / 8) {
    probes.push_back(vals[i]);
    probes.push_back(vals[i] - 1);
    probes.push_back(vals[i] + 1);
  }
  for (uint64_t x : probes) ASSERT_EQ(d.CountAbove(x), o.Above(x)) << "x=" << x;
  ExpectValuesMatch(d.Values(kKs), o, kKs);
  ExpectValuesMatch(RecomputeConcentration(o.Values(), kKs), o, kKs);
}

TEST(ExactDistributionTest, EmptyIsAllZero) {
  ExactDistribution d;
  Oracle o;
  ExpectMatches(d, o);
  const ConcentrationValues v = d.Values(kKs);
  EXPECT_EQ(v.hhi, 0.0);
  EXPECT_EQ(v.gini, 0.0);
  for (const auto& [k, share] : v.top_shares) EXPECT_EQ(share, 0.0) << k;
  EXPECT_EQ(d.Count(7), 0u);
  EXPECT_TRUE(CountsOf(d).empty());
  d.Add(7, 0);  // no-op, does not create the entity
  EXPECT_EQ(d.entities(), 0u);
  EXPECT_TRUE(CountsOf(d).empty());
}

TEST(ExactDistributionTest, HandComputedSmallCase) {
  // Counts {1, 2, 3}: X=6, Q=14, D=1+2+1=4; HHI=14/36, Gini=4/(3*6), top1=3/6.
  ExactDistribution d;
  d.Add(10, 1);
  d.Add(20, 2);
  d.Add(30, 3);
  EXPECT_EQ(d.total(), 6u);
  EXPECT_EQ(d.entities(), 3u);
  EXPECT_EQ(U128(d.sum_of_squares()), "14");
  EXPECT_EQ(U128(d.pairwise_abs_diff()), "4");
  EXPECT_EQ(d.TopKSum(1), 3u);
  EXPECT_EQ(d.TopKSum(2), 5u);
  EXPECT_EQ(d.CountAbove(1), 2u);
  const std::vector<uint32_t> ks = {1, 3, 5};
  const ConcentrationValues v = d.Values(ks);
  EXPECT_DOUBLE_EQ(v.hhi, 14.0 / 36.0);
  EXPECT_DOUBLE_EQ(v.gini, 4.0 / 18.0);
  EXPECT_THAT(v.top_shares, ::testing::ElementsAre(Pair(1u, 0.5), Pair(3u, 1.0), Pair(5u, 1.0)));
  EXPECT_THAT(CountsOf(d),
              UnorderedElementsAreArray(
                  std::vector<std::pair<const EntityId, uint64_t>>{{10, 1}, {20, 2}, {30, 3}}));
}

TEST(ExactDistributionTest, SingleEntity) {
  ExactDistribution d;
  d.Add(42, 5);
  const ConcentrationValues v = d.Values(kKs);
  EXPECT_EQ(v.hhi, 1.0);
  EXPECT_EQ(v.gini, 0.0);
  EXPECT_EQ(U128(d.pairwise_abs_diff()), "0");
  for (const auto& [k, share] : v.top_shares) EXPECT_EQ(share, k == 0 ? 0.0 : 1.0) << k;
  d.Add(42, -5);
  EXPECT_EQ(d.entities(), 0u);
  EXPECT_EQ(d.total(), 0u);
  EXPECT_EQ(U128(d.sum_of_squares()), "0");
  EXPECT_TRUE(CountsOf(d).empty());
}

TEST(ExactDistributionTest, AllEqualCounts) {
  ExactDistribution d;
  Oracle o;
  for (EntityId e = 0; e < 500; ++e) {
    d.Add(e * 7919u, 13);
    o.Add(e * 7919u, 13);
  }
  ExpectMatches(d, o);
  EXPECT_EQ(U128(d.pairwise_abs_diff()), "0");
  EXPECT_EQ(d.Values(kKs).gini, 0.0);
  EXPECT_DOUBLE_EQ(d.Values(kKs).hhi, 1.0 / 500);
  EXPECT_EQ(d.TopKSum(10), 130u);
  EXPECT_EQ(d.CountAbove(12), 500u);
  EXPECT_EQ(d.CountAbove(13), 0u);
}

TEST(ExactDistributionTest, HugeCountsNeed128Bits) {
  std::mt19937_64 rng(7);
  ExactDistribution d;
  Oracle o;
  // Counts near 2^40: Q passes 2^64 (4096 * 2^80).
  for (EntityId e = 0; e < 4096; ++e) {
    const int64_t x = (int64_t{1} << 40) + static_cast<int64_t>(rng() % 1000000) - 500000;
    d.Add(e, x);
    o.Add(e, x);
  }
  ASSERT_GT(o.Q() >> 64, 0u);
  ExpectMatches(d, o);
  // Spread counts up to 2^50: D passes 2^64 too, X stays below 2^63.
  for (EntityId e = 0; e < 4096; ++e) {
    const int64_t delta = static_cast<int64_t>(rng() % (uint64_t{1} << 50));
    d.Add(e, delta);
    o.Add(e, delta);
  }
  ASSERT_GT(o.D() >> 64, 0u);
  ExpectMatches(d, o);
  // Moves down by large jumps, some to exactly zero.
  for (EntityId e = 0; e < 4096; e += 3) {
    const int64_t delta = -static_cast<int64_t>(o.Get(e) / (1 + e % 2));
    d.Add(e, delta);
    o.Add(e, delta);
  }
  ExpectMatches(d, o);
}

TEST(ExactDistributionTest, TotalJustBelowTwoToThe63) {
  ExactDistribution d;
  Oracle o;
  const int64_t big = (int64_t{1} << 62) - 1;
  for (auto [e, x] : std::vector<std::pair<EntityId, int64_t>>{{1, big}, {2, big}, {3, 1}}) {
    d.Add(e, x);
    o.Add(e, x);
  }
  EXPECT_EQ(d.total(), (uint64_t{1} << 63) - 1);
  ExpectMatches(d, o);
}

TEST(ExactDistributionDeathTest, GoingBelowZeroAborts) {
  ExactDistribution d;
  d.Add(1, 3);
  EXPECT_DEATH(d.Add(1, -4), "below zero");
  EXPECT_DEATH(d.Add(2, -1), "below zero");
}

TEST(ExactDistributionDeathTest, TotalAtTwoToThe63Aborts) {
  ExactDistribution d;
  d.Add(1, (int64_t{1} << 62));
  d.Add(2, (int64_t{1} << 62) - 1);
  EXPECT_DEATH(d.Add(3, 1), "2\\^63");
}

TEST(ExactDistributionTest, ClearEmptiesAndStaysUsable) {
  ExactDistribution d;
  for (EntityId e = 0; e < 100; ++e) d.Add(e, e + 1);
  d.Clear();
  Oracle o;
  ExpectMatches(d, o);
  EXPECT_EQ(d.Count(5), 0u);
  d.Add(5, 2);
  d.Add(6, 9);
  o.Add(5, 2);
  o.Add(6, 9);
  ExpectMatches(d, o);
}

TEST(ExactDistributionTest, MoveTransfersStateAndLeavesEmpty) {
  ExactDistribution a;
  Oracle o;
  for (EntityId e = 0; e < 50; ++e) {
    a.Add(e, 1 + e % 7);
    o.Add(e, 1 + e % 7);
  }
  ExactDistribution b(std::move(a));
  ExpectMatches(b, o);
  // The moved-from object is empty and fully usable.
  Oracle empty;
  ExpectMatches(a, empty);  // NOLINT(bugprone-use-after-move): documented state
  a.Add(3, 4);
  empty.Add(3, 4);
  ExpectMatches(a, empty);

  ExactDistribution c;
  c.Add(99, 1);
  c = std::move(b);
  ExpectMatches(c, o);
  EXPECT_EQ(c.Count(99), 0u);
  ExpectMatches(b, Oracle{});  // NOLINT(bugprone-use-after-move)
  b.Add(1, 1);
  EXPECT_EQ(b.entities(), 1u);
}

// One long random walk. `universe` entities (dense ids, as the contract asks,
// in shuffled order of popularity), checked against the oracle every
// `check_every` operations.
void RandomWalk(uint64_t seed, int universe, int ops, int check_every) {
  std::mt19937_64 rng(seed);
  std::vector<EntityId> ids(universe);
  for (int i = 0; i < universe; ++i) ids[i] = static_cast<EntityId>(i);
  std::shuffle(ids.begin(), ids.end(), rng);
  // Zipf-ish pick: log-uniform rank, so a few entities get most updates.
  auto pick = [&]() {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const int r = static_cast<int>(std::pow(static_cast<double>(universe), u)) - 1;
    return ids[std::clamp(r, 0, universe - 1)];
  };
  ExactDistribution d;
  Oracle o;
  for (int step = 1; step <= ops; ++step) {
    const EntityId e = pick();
    const int64_t cur = static_cast<int64_t>(o.Get(e));
    int64_t delta = 0;
    switch (rng() % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
        delta = 1;
        break;
      case 5:
      case 6:
      case 7:
        delta = cur > 0 ? -1 : 1;
        break;
      case 8:  // back to zero
        delta = -cur;
        break;
      case 9:  // large jump up
        delta = static_cast<int64_t>(rng() % 1000000);
        break;
      case 10:  // large jump down
        delta = -static_cast<int64_t>(rng() % (cur + 1));
        break;
      case 11:  // tie with another entity
        delta = static_cast<int64_t>(o.Get(pick())) - cur;
        break;
      case 12:  // small values, many ties among them
        delta = static_cast<int64_t>(rng() % 4) - cur;
        break;
      case 13:  // zero delta is a no-op
        delta = 0;
        break;
      default:
        delta = static_cast<int64_t>(rng() % 5) + 1;
        break;
    }
    d.Add(e, delta);
    o.Add(e, delta);
    ASSERT_EQ(d.Count(e), o.Get(e));
    ASSERT_EQ(d.entities(), o.n());
    if (step % check_every == 0) {
      ExpectMatches(d, o);
      if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) {
        FAIL() << "diverged at step " << step << " seed " << seed;
      }
    }
  }
  ExpectMatches(d, o);
  std::vector<std::pair<const EntityId, uint64_t>> want(o.counts.begin(), o.counts.end());
  EXPECT_THAT(CountsOf(d), UnorderedElementsAreArray(want));
}

TEST(ExactDistributionPropertyTest, SmallUniverseManySteps) {
  for (uint64_t seed : {1u, 2u, 3u}) RandomWalk(seed, 200, 150000, 64);
}

TEST(ExactDistributionPropertyTest, TinyUniverseHeavyTies) { RandomWalk(11, 12, 100000, 7); }

TEST(ExactDistributionPropertyTest, LargerUniverse) { RandomWalk(5, 3000, 200000, 10000); }

// Counts that hover around kSmallCountLimit, where an entity moves between the
// index by value and the tree of larger counts (and top-k spans both).
TEST(ExactDistributionPropertyTest, CountsCrossingTheSmallCountLimit) {
  constexpr int64_t kLimit = static_cast<int64_t>(ExactDistribution::kSmallCountLimit);
  std::mt19937_64 rng(23);
  ExactDistribution d;
  Oracle o;
  for (int step = 1; step <= 60000; ++step) {
    const auto e = static_cast<EntityId>(rng() % 40);
    const int64_t cur = static_cast<int64_t>(o.Get(e));
    int64_t delta;
    switch (rng() % 6) {
      case 0:  // jump to just below, at or above the limit
        delta = kLimit - 3 + static_cast<int64_t>(rng() % 7) - cur;
        break;
      case 1:  // small
        delta = static_cast<int64_t>(rng() % 5) - cur;
        break;
      case 2:  // far above
        delta = 3 * kLimit + static_cast<int64_t>(rng() % 9) - cur;
        break;
      default:  // a step of a few either way
        delta = std::max<int64_t>(-cur, static_cast<int64_t>(rng() % 7) - 3);
    }
    d.Add(e, delta);
    o.Add(e, delta);
    if (step % 97 == 0) {
      ExpectMatches(d, o);
      if (::testing::Test::HasFailure()) FAIL() << "diverged at step " << step;
    }
  }
  ExpectMatches(d, o);
}

TEST(RecomputeConcentrationTest, MatchesOracleOnRandomLists) {
  std::mt19937_64 rng(99);
  for (int round = 0; round < 200; ++round) {
    const int n = static_cast<int>(rng() % 300);
    std::vector<uint64_t> counts;
    Oracle o;
    for (int i = 0; i < n; ++i) {
      uint64_t x = 0;
      switch (rng() % 4) {
        case 0:
          x = 0;  // zeros are ignored
          break;
        case 1:
          x = 1 + rng() % 3;
          break;
        case 2:
          x = rng() % (uint64_t{1} << 44);
          break;
        default:
          x = rng() % 1000;
          break;
      }
      counts.push_back(x);
      o.Add(static_cast<EntityId>(i), static_cast<int64_t>(x));
    }
    ExpectValuesMatch(RecomputeConcentration(counts, kKs), o, kKs);
  }
  ExpectValuesMatch(RecomputeConcentration({}, kKs), Oracle{}, kKs);
  ExpectValuesMatch(RecomputeConcentration({0, 0}, kKs), Oracle{}, kKs);
}

}  // namespace
}  // namespace hubmetrics
