#include "lib/query/explain_change.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace hubmetrics {
namespace {

using u128 = unsigned __int128;

// An unsigned 256-bit integer: just enough to compare products of two 128-bit
// numbers and their differences exactly.
struct U256 {
  u128 hi = 0;
  u128 lo = 0;
  friend bool operator<(const U256& a, const U256& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  }
  friend bool operator==(const U256& a, const U256& b) = default;
};

U256 Mul(u128 a, u128 b) {
  const u128 a0 = static_cast<uint64_t>(a), a1 = a >> 64;
  const u128 b0 = static_cast<uint64_t>(b), b1 = b >> 64;
  const u128 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  // Below 3·2^64: no overflow.
  const u128 mid = (p00 >> 64) + static_cast<uint64_t>(p01) + static_cast<uint64_t>(p10);
  return U256{p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64),
              (mid << 64) | static_cast<uint64_t>(p00)};
}

// a − b for a >= b.
U256 Sub(const U256& a, const U256& b) {
  return U256{a.hi - b.hi - (a.lo < b.lo ? 1 : 0), a.lo - b.lo};
}

u128 Square(uint64_t x) { return static_cast<u128>(x) * x; }

// A square of a total as the denominator of shares; 1 for an empty window,
// whose entities all have 0 downloads (so every share there is 0).
u128 Denominator(uint64_t total) { return total == 0 ? 1 : Square(total); }

// (to_sq / to_den) − (from_sq / from_den), rounded once each side: long double
// keeps 64 bits of mantissa, so the double result is within an ulp.
double Difference(u128 to_sq, u128 to_den, u128 from_sq, u128 from_den) {
  const long double to = static_cast<long double>(to_sq) / static_cast<long double>(to_den);
  const long double from = static_cast<long double>(from_sq) / static_cast<long double>(from_den);
  return static_cast<double>(to - from);
}

// Sums of squared counts of a set of entities in both windows.
struct Squares {
  u128 from = 0;
  u128 to = 0;
};

struct Candidate {
  size_t index;    // into the union of entities
  U256 magnitude;  // |t²·D_from − f²·D_to|
};

}  // namespace

ChangeExplanation ExplainChange(const RankedCounts& from, const RankedCounts& to, uint32_t k) {
  ChangeExplanation out;
  out.from_total = from.total;
  out.to_total = to.total;
  const u128 d_from = Denominator(from.total);
  const u128 d_to = Denominator(to.total);

  // The union of both windows' entities with their counts. The counts come in
  // no particular order, so ranks are found, for the top movers only, in
  // each window's counts sorted.
  struct Both {
    const std::string* entity;
    uint64_t from_downloads = 0;
    uint64_t to_downloads = 0;
  };
  std::vector<Both> all;
  all.reserve(std::max(from.entities.size(), to.entities.size()));
  absl::flat_hash_map<std::string_view, size_t> index;
  index.reserve(from.entities.size());
  for (const auto& [name, n] : from.entities) {
    index.emplace(*name, all.size());
    all.push_back(Both{.entity = name, .from_downloads = n, .to_downloads = 0});
  }
  for (const auto& [name, n] : to.entities) {
    auto [it, inserted] = index.emplace(*name, all.size());
    if (inserted) {
      all.push_back(Both{.entity = name, .from_downloads = 0, .to_downloads = n});
    } else {
      all[it->second].to_downloads = n;
    }
  }
  auto sorted_counts = [](const RankedCounts& window) {
    std::vector<uint64_t> counts;
    counts.reserve(window.entities.size());
    for (const auto& [name, n] : window.entities) counts.push_back(n);
    std::sort(counts.begin(), counts.end());
    return counts;
  };
  // 1 + the entities with strictly more downloads; 0 without downloads.
  auto rank = [](const std::vector<uint64_t>& ascending, uint64_t n) -> uint64_t {
    if (n == 0) return 0;
    return 1 + static_cast<uint64_t>(ascending.end() -
                                     std::upper_bound(ascending.begin(), ascending.end(), n));
  };

  // Exact order of |contribution|: all share the denominator D_from·D_to.
  std::vector<Candidate> candidates;
  candidates.reserve(all.size());
  Squares total;
  for (size_t i = 0; i < all.size(); ++i) {
    const u128 f2 = Square(all[i].from_downloads), t2 = Square(all[i].to_downloads);
    total.from += f2;
    total.to += t2;
    const U256 plus = Mul(t2, d_from), minus = Mul(f2, d_to);
    candidates.push_back({i, minus < plus ? Sub(plus, minus) : Sub(minus, plus)});
  }
  out.delta_hhi = Difference(total.to, d_to, total.from, d_from);
  auto larger = [&](const Candidate& a, const Candidate& b) {
    if (!(a.magnitude == b.magnitude)) return b.magnitude < a.magnitude;
    return *all[a.index].entity < *all[b.index].entity;
  };
  const size_t n_top = std::min<size_t>(k, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<ptrdiff_t>(n_top),
                    candidates.end(), larger);
  std::vector<bool> in_top(all.size(), false);
  if (n_top > 0) {
    const std::vector<uint64_t> from_counts = sorted_counts(from), to_counts = sorted_counts(to);
    for (size_t i = 0; i < n_top; ++i) {
      const Both& b = all[candidates[i].index];
      in_top[candidates[i].index] = true;
      EntityChange e;
      e.entity = *b.entity;
      e.from_downloads = b.from_downloads;
      e.from_rank = rank(from_counts, b.from_downloads);
      e.to_downloads = b.to_downloads;
      e.to_rank = rank(to_counts, b.to_downloads);
      e.contribution = Difference(Square(e.to_downloads), d_to, Square(e.from_downloads), d_from);
      out.top.push_back(std::move(e));
    }
  }

  Squares entrants, exits, other_entrants, other_exits, rest;
  auto add = [](ChangeGroup* g, Squares* sq, const Both& e) {
    ++g->entities;
    g->from_downloads += e.from_downloads;
    g->to_downloads += e.to_downloads;
    sq->from += Square(e.from_downloads);
    sq->to += Square(e.to_downloads);
  };
  for (size_t i = 0; i < all.size(); ++i) {
    const Both& e = all[i];
    const bool entrant = e.from_downloads == 0, exit = e.to_downloads == 0;
    if (entrant) add(&out.entrants, &entrants, e);
    if (exit) add(&out.exits, &exits, e);
    if (in_top[i]) continue;
    if (entrant) {
      add(&out.other_entrants, &other_entrants, e);
    } else if (exit) {
      add(&out.other_exits, &other_exits, e);
    } else {
      add(&out.rest, &rest, e);
    }
  }
  for (auto [g, sq] : {std::pair{&out.entrants, &entrants}, std::pair{&out.exits, &exits},
                       std::pair{&out.other_entrants, &other_entrants},
                       std::pair{&out.other_exits, &other_exits}, std::pair{&out.rest, &rest}}) {
    g->contribution = Difference(sq->to, d_to, sq->from, d_from);
  }
  return out;
}

}  // namespace hubmetrics
