#include "lib/query/explain_change.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

// A window's entities as OnDemandViews gives them: in no particular order
// (shuffled here, so that no answer may depend on an order).
RankedCounts Ranked(const std::map<std::string, uint64_t>& counts) {
  RankedCounts out;
  for (const auto& [name, n] : counts) {
    if (n == 0) continue;
    out.owned_names.push_back(name);
    out.entities.emplace_back(&out.owned_names.back(), n);
    out.total += n;
  }
  std::mt19937_64 rng(counts.size());
  std::shuffle(out.entities.begin(), out.entities.end(), rng);
  return out;
}

uint64_t RankOf(const std::map<std::string, uint64_t>& counts, const std::string& name) {
  auto it = counts.find(name);
  if (it == counts.end() || it->second == 0) return 0;
  uint64_t rank = 1;
  for (const auto& [other, n] : counts) rank += n > it->second ? 1 : 0;
  return rank;
}

long double Hhi(const std::map<std::string, uint64_t>& counts) {
  long double total = 0, sum = 0;
  for (const auto& [name, n] : counts) total += static_cast<long double>(n);
  if (total == 0) return 0;
  for (const auto& [name, n] : counts) {
    const long double s = static_cast<long double>(n) / total;
    sum += s * s;
  }
  return sum;
}

// The brute force: every entity's exact contribution numerator over the common
// denominator X_from²·X_to² (small counts: it fits in 128 bits), sorted.
struct Brute {
  struct Row {
    std::string entity;
    __int128 numerator;
  };
  std::vector<Row> rows;
  long double denominator;
};

Brute BruteForce(const std::map<std::string, uint64_t>& from,
                 const std::map<std::string, uint64_t>& to) {
  __int128 xf = 0, xt = 0;
  for (const auto& [name, n] : from) xf += n;
  for (const auto& [name, n] : to) xt += n;
  const __int128 df = xf == 0 ? 1 : xf * xf, dt = xt == 0 ? 1 : xt * xt;
  std::map<std::string, std::pair<__int128, __int128>> both;
  for (const auto& [name, n] : from) {
    if (n > 0) both[name].first = n;
  }
  for (const auto& [name, n] : to) {
    if (n > 0) both[name].second = n;
  }
  Brute out;
  out.denominator = static_cast<long double>(df) * static_cast<long double>(dt);
  for (const auto& [name, fn] : both) {
    out.rows.push_back({name, fn.second * fn.second * df - fn.first * fn.first * dt});
  }
  auto abs = [](__int128 v) { return v < 0 ? -v : v; };
  std::sort(out.rows.begin(), out.rows.end(), [&](const Brute::Row& a, const Brute::Row& b) {
    return abs(a.numerator) != abs(b.numerator) ? abs(a.numerator) > abs(b.numerator)
                                                : a.entity < b.entity;
  });
  return out;
}

double PartsSum(const ChangeExplanation& x) {
  double sum = x.other_entrants.contribution + x.other_exits.contribution + x.rest.contribution;
  for (const EntityChange& e : x.top) sum += e.contribution;
  return sum;
}

void CheckAgainstBruteForce(const std::map<std::string, uint64_t>& from,
                            const std::map<std::string, uint64_t>& to, uint32_t k) {
  const ChangeExplanation x = ExplainChange(Ranked(from), Ranked(to), k);
  const Brute brute = BruteForce(from, to);
  const long double delta = Hhi(to) - Hhi(from);
  EXPECT_NEAR(x.delta_hhi, static_cast<double>(delta), 1e-15);
  EXPECT_NEAR(PartsSum(x), x.delta_hhi, 1e-12);
  ASSERT_EQ(x.top.size(), std::min<size_t>(k, brute.rows.size()));
  uint64_t entrants = 0, exits = 0, top_entrants = 0, top_exits = 0;
  for (const auto& [name, n] : to) {
    if (n > 0 && !(from.contains(name) && from.at(name) > 0)) ++entrants;
  }
  for (const auto& [name, n] : from) {
    if (n > 0 && !(to.contains(name) && to.at(name) > 0)) ++exits;
  }
  for (size_t i = 0; i < x.top.size(); ++i) {
    const EntityChange& e = x.top[i];
    SCOPED_TRACE(absl::StrCat("top mover ", i, ": ", e.entity));
    EXPECT_EQ(e.entity, brute.rows[i].entity);
    EXPECT_NEAR(
        e.contribution,
        static_cast<double>(static_cast<long double>(brute.rows[i].numerator) / brute.denominator),
        1e-15);
    EXPECT_EQ(e.from_downloads, from.contains(e.entity) ? from.at(e.entity) : 0);
    EXPECT_EQ(e.to_downloads, to.contains(e.entity) ? to.at(e.entity) : 0);
    EXPECT_EQ(e.from_rank, RankOf(from, e.entity));
    EXPECT_EQ(e.to_rank, RankOf(to, e.entity));
    top_entrants += e.from_downloads == 0 ? 1 : 0;
    top_exits += e.to_downloads == 0 ? 1 : 0;
  }
  EXPECT_EQ(x.entrants.entities, entrants);
  EXPECT_EQ(x.exits.entities, exits);
  EXPECT_EQ(x.other_entrants.entities, entrants - top_entrants);
  EXPECT_EQ(x.other_exits.entities, exits - top_exits);
  EXPECT_EQ(x.top.size() + x.other_entrants.entities + x.other_exits.entities + x.rest.entities,
            brute.rows.size());
  // The groups' downloads add up to the totals.
  uint64_t from_sum =
      x.other_entrants.from_downloads + x.other_exits.from_downloads + x.rest.from_downloads;
  uint64_t to_sum =
      x.other_entrants.to_downloads + x.other_exits.to_downloads + x.rest.to_downloads;
  for (const EntityChange& e : x.top) {
    from_sum += e.from_downloads;
    to_sum += e.to_downloads;
  }
  EXPECT_EQ(from_sum, x.from_total);
  EXPECT_EQ(to_sum, x.to_total);
  EXPECT_EQ(x.entrants.from_downloads, 0u);
  EXPECT_EQ(x.exits.to_downloads, 0u);
}

TEST(ExplainChangeTest, HandComputed) {
  // from: a 3, b 1 (X 4, HHI 10/16); to: a 2, c 2 (X 4, HHI 8/16).
  const std::map<std::string, uint64_t> from = {{"a", 3}, {"b", 1}};
  const std::map<std::string, uint64_t> to = {{"a", 2}, {"c", 2}};
  const ChangeExplanation x = ExplainChange(Ranked(from), Ranked(to), 1);
  EXPECT_DOUBLE_EQ(x.delta_hhi, -2.0 / 16);
  ASSERT_EQ(x.top.size(), 1u);
  EXPECT_EQ(x.top[0].entity, "a");  // (4 − 9) / 16
  EXPECT_DOUBLE_EQ(x.top[0].contribution, -5.0 / 16);
  EXPECT_EQ(x.top[0].from_rank, 1u);
  EXPECT_EQ(x.top[0].to_rank, 1u);  // tied with c
  EXPECT_EQ(x.other_entrants.entities, 1u);
  EXPECT_DOUBLE_EQ(x.other_entrants.contribution, 4.0 / 16);
  EXPECT_EQ(x.other_exits.entities, 1u);
  EXPECT_DOUBLE_EQ(x.other_exits.contribution, -1.0 / 16);
  EXPECT_EQ(x.rest.entities, 0u);
  EXPECT_DOUBLE_EQ(x.rest.contribution, 0);
}

TEST(ExplainChangeTest, EmptyWindows) {
  const std::map<std::string, uint64_t> none;
  const std::map<std::string, uint64_t> some = {{"a", 5}, {"b", 5}};
  ChangeExplanation x = ExplainChange(Ranked(none), Ranked(some), 10);
  EXPECT_DOUBLE_EQ(x.delta_hhi, 0.5);
  EXPECT_EQ(x.entrants.entities, 2u);
  EXPECT_DOUBLE_EQ(x.entrants.contribution, 0.5);
  ASSERT_EQ(x.top.size(), 2u);
  EXPECT_EQ(x.top[0].entity, "a");  // a tie: entity ascending
  x = ExplainChange(Ranked(some), Ranked(none), 0);
  EXPECT_DOUBLE_EQ(x.delta_hhi, -0.5);
  EXPECT_EQ(x.other_exits.entities, 2u);
  EXPECT_DOUBLE_EQ(x.other_exits.contribution, -0.5);
  x = ExplainChange(Ranked(none), Ranked(none), 10);
  EXPECT_EQ(x.delta_hhi, 0);
  EXPECT_TRUE(x.top.empty());
}

// Property: random count changes (entities appear, vanish, grow, shrink);
// the parts sum to ΔHHI and everything matches the brute force.
TEST(ExplainChangeTest, RandomChangesMatchBruteForce) {
  std::mt19937_64 rng(19);
  for (int round = 0; round < 300; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    const int n = std::uniform_int_distribution<int>(0, 60)(rng);
    // Small counts make exact ties of |contribution| common.
    const uint64_t max_count = round % 3 == 0 ? 5 : (round % 3 == 1 ? 1000 : 1'000'000);
    std::uniform_int_distribution<uint64_t> count(0, max_count);
    std::map<std::string, uint64_t> from, to;
    for (int i = 0; i < n; ++i) {
      const std::string name = absl::StrCat("e", std::uniform_int_distribution<int>(0, 80)(rng));
      const int what = std::uniform_int_distribution<int>(0, 3)(rng);
      if (what != 0) from[name] = count(rng);
      if (what != 1) to[name] = what == 3 && from.contains(name) ? from[name] : count(rng);
    }
    const uint32_t k = std::uniform_int_distribution<uint32_t>(0, 12)(rng);
    CheckAgainstBruteForce(from, to, k);
  }
}

// Large counts: the squares need 128 bits and the comparisons 256.
TEST(ExplainChangeTest, LargeCountsStillSum) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> count(0, uint64_t{1} << 40);
  for (int round = 0; round < 50; ++round) {
    std::map<std::string, uint64_t> from, to;
    for (int i = 0; i < 200; ++i) {
      from[absl::StrCat("e", i)] = count(rng);
      to[absl::StrCat("e", i + 50)] = count(rng);
    }
    const ChangeExplanation x = ExplainChange(Ranked(from), Ranked(to), 10);
    EXPECT_NEAR(PartsSum(x), x.delta_hhi, 1e-12);
    EXPECT_NEAR(x.delta_hhi, static_cast<double>(Hhi(to) - Hhi(from)), 1e-15);
    for (size_t i = 1; i < x.top.size(); ++i) {
      EXPECT_GE(std::abs(x.top[i - 1].contribution), std::abs(x.top[i].contribution));
    }
  }
}

}  // namespace
}  // namespace hubmetrics
