#include "lib/concentration/distribution.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace hubmetrics {
namespace {

// Misuse of the API by the caller (a count below zero, a total past 2^63) is a
// programming error: there is no sensible state to continue from.
[[noreturn]] void Die(const char* message) {
  std::fputs("hubmetrics/concentration: ", stderr);
  std::fputs(message, stderr);
  std::fputc('\n', stderr);
  std::abort();
}

constexpr uint64_t kMaxTotal = uint64_t{1} << 63;

// A number of entities and the sum of their counts. Passed to a CountTreap,
// the entities outside it whose counts are all below every key in it (those in
// the SmallCountIndex): the treap's distance sums include them.
struct CountSum {
  uint64_t cnt = 0;
  uint64_t sum = 0;
};

// How D changes when one entity moves: D - minus + plus.
struct DistChange {
  uint128 minus = 0;
  uint128 plus = 0;
};

// sum_j |v - x_j| over all entities = (v*c_lo - s_lo) + (s_all - s_lo) - v*(n_all - c_lo),
// where c_lo, s_lo are the number and sum of the counts strictly below v. An
// entity at v itself adds 0, so it may be counted or not; both brackets are
// non-negative.
uint128 DistanceSum(uint64_t v, uint64_t c_lo, uint64_t s_lo, uint64_t n_all, uint64_t s_all) {
  const uint128 lo = uint128{v} * c_lo - s_lo;
  const uint128 hi = uint128{s_all - s_lo} - uint128{v} * (n_all - c_lo);
  return lo + hi;
}

// Multiset of the counts at or above SmallCountIndex::kLimit, one node per distinct value, so its
// size is d (the number of distinct counts), which for download-like (Zipf) data is
// far below n. A treap in one contiguous array with 32-bit links: per Add,
// measured 3x faster than libstdc++'s pb_ds tree with the same aggregates at
// 10^3 entities and 1.4x at 10^7 (where the hash lookup's cache misses
// dominate), mostly because a count changing within a gap between keys (the head of a
// Zipf distribution: large, distinct counts moving by one) relabels its node
// in place instead of erasing and inserting one.
class CountTreap {
 public:
  CountTreap() { nodes_.emplace_back(); }  // nodes_[kNil]: empty aggregates

  uint64_t size() const { return nodes_[root_].cnt; }
  uint64_t sum() const { return nodes_[root_].sum; }

  // Adds one entity with count v > 0. Returns sum_j |v - x_j| over the
  // entities already present, `out` included.
  uint128 InsertOne(uint64_t v, CountSum out) {
    const Probe p = Find(v);
    const uint128 dist = Distance(v, p, out);
    if (p.node != kNil) {
      ++nodes_[p.node].mult;
      AddAlong(p, 1, v);
    } else {
      const uint32_t n = NewNode(v);
      root_ = Insert(root_, n);
    }
    return dist;
  }

  // Removes one entity with count v > 0. Returns sum_j |v - x_j| over the
  // other entities, `out` included.
  uint128 RemoveOne(uint64_t v, CountSum out) {
    const Probe p = Find(v);
    if (p.node == kNil) Die("value index out of step with the counts (bug)");
    const uint128 dist = Distance(v, p, out);
    RemoveAt(p, v);
    return dist;
  }

  // Moves one entity from count a > 0 to count b > 0, a != b, both kept here.
  DistChange MoveOne(uint64_t a, uint64_t b, CountSum out) {
    const Probe p = Find(a);
    if (p.node == kNil) Die("value index out of step with the counts (bug)");
    DistChange change;
    if (nodes_[p.node].mult == 1 && NoKeyBetween(p, a, b)) {
      // Every other entity is below min(a, b) or above max(a, b): each pair
      // with one below changes by (b - a), with one above by (a - b).
      const uint64_t below = out.cnt + p.count_below;
      const uint64_t above = size() - 1 - p.count_below;
      const uint64_t gap = b > a ? b - a : a - b;
      const uint128 magnitude = uint128{gap} * (below > above ? below - above : above - below);
      ((b > a) == (below > above) ? change.plus : change.minus) = magnitude;
      AddAlong(p, 0, b - a);  // modulo 2^64: the true sums stay in range
      nodes_[p.node].key = b;
      return change;
    }
    change.minus = Distance(a, p, out);
    RemoveAt(p, a);
    change.plus = InsertOne(b, out);
    return change;
  }

  // Number of entities with count <= x.
  uint64_t CountAtMost(uint64_t x) const {
    uint64_t below = 0;
    for (uint32_t t = root_; t != kNil;) {
      const Node& node = nodes_[t];
      if (x < node.key) {
        t = node.left;
        continue;
      }
      below += nodes_[node.left].cnt + node.mult;
      if (x == node.key) break;
      t = node.right;
    }
    return below;
  }

  // Sum of the k largest counts; k <= size().
  uint64_t TopKSum(uint64_t k) const {
    uint64_t taken = 0;
    for (uint32_t t = root_; k > 0 && t != kNil;) {
      const Node& node = nodes_[t];
      const Node& r = nodes_[node.right];
      if (k <= r.cnt) {
        t = node.right;
        continue;
      }
      taken += r.sum;
      k -= r.cnt;
      const uint64_t here = std::min(k, node.mult);
      taken += here * node.key;
      k -= here;
      t = node.left;
    }
    return taken;
  }

  void Clear() {
    nodes_.resize(1);
    free_.clear();
    root_ = kNil;
  }

 private:
  static constexpr uint32_t kNil = 0;

  struct Node {
    uint64_t key = 0;
    uint64_t mult = 0;  // entities with this count; > 0 while in the tree
    uint64_t cnt = 0;   // entities in the subtree
    uint64_t sum = 0;   // sum of their counts (fits: it is at most X)
    uint32_t left = kNil;
    uint32_t right = kNil;
    uint32_t prio = 0;
  };

  // One descent towards v: v's node (kNil if absent), the entities strictly
  // below v, the nearest ancestors above and below v, and the path taken, so
  // that aggregates along it are updated without a second descent (while
  // the tree is unchanged since).
  static constexpr int kMaxPath = 48;  // deeper (improbable for a treap): descend again
  struct Probe {
    uint32_t node = kNil;
    uint64_t count_below = 0;
    uint64_t sum_below = 0;
    uint32_t above_ancestor = kNil;
    uint32_t below_ancestor = kNil;
    int depth = 0;  // nodes visited; path holds the first kMaxPath of them
    std::array<uint32_t, kMaxPath> path;
  };

  Probe Find(uint64_t v) const {
    Probe p;
    for (uint32_t t = root_; t != kNil;) {
      if (p.depth < kMaxPath) p.path[p.depth] = t;
      ++p.depth;
      const Node& node = nodes_[t];
      if (v < node.key) {
        p.above_ancestor = t;
        t = node.left;
        continue;
      }
      p.count_below += nodes_[node.left].cnt;
      p.sum_below += nodes_[node.left].sum;
      if (v == node.key) {
        p.node = t;
        break;
      }
      p.count_below += node.mult;
      p.sum_below += node.mult * node.key;
      p.below_ancestor = t;
      t = node.right;
    }
    return p;
  }

  // Whether a's node (found by p) can take key b without breaking the search
  // order: no other key lies between a and b, b included.
  bool NoKeyBetween(const Probe& p, uint64_t a, uint64_t b) const {
    const Node& node = nodes_[p.node];
    if (b > a) {
      uint32_t next = p.above_ancestor;
      for (uint32_t t = node.right; t != kNil; t = nodes_[t].left) next = t;
      return next == kNil || nodes_[next].key > b;
    }
    uint32_t prev = p.below_ancestor;
    for (uint32_t t = node.left; t != kNil; t = nodes_[t].right) prev = t;
    return prev == kNil || nodes_[prev].key < b;
  }

  // sum_j |v - x_j| over this treap's entities and `out` (all below v).
  uint128 Distance(uint64_t v, const Probe& p, CountSum out) const {
    const Node& all = nodes_[root_];
    return DistanceSum(v, out.cnt + p.count_below, out.sum + p.sum_below, out.cnt + all.cnt,
                       out.sum + all.sum);
  }

  // Adds to the aggregates of every node from the root to v's node, which
  // must exist (deltas are modulo 2^64).
  void AddAlong(uint64_t v, uint64_t dcnt, uint64_t dsum) {
    for (uint32_t t = root_;;) {
      Node& node = nodes_[t];
      node.cnt += dcnt;
      node.sum += dsum;
      if (v == node.key) return;
      t = v < node.key ? node.left : node.right;
    }
  }

  // The same along the path p recorded (p.node must be v's node).
  void AddAlong(const Probe& p, uint64_t dcnt, uint64_t dsum) {
    if (p.depth > kMaxPath) return AddAlong(nodes_[p.node].key, dcnt, dsum);
    for (int i = 0; i < p.depth; ++i) {
      Node& node = nodes_[p.path[i]];
      node.cnt += dcnt;
      node.sum += dsum;
    }
  }

  // Removes one entity of count v, whose node p found.
  void RemoveAt(const Probe& p, uint64_t v) {
    if (nodes_[p.node].mult == 1) {
      root_ = Erase(root_, v);
    } else {
      --nodes_[p.node].mult;
      AddAlong(p, ~uint64_t{0}, uint64_t{0} - v);
    }
  }

  uint32_t NewNode(uint64_t v) {
    // splitmix64: the treap's shape only needs priorities independent of keys.
    seed_ += 0x9e3779b97f4a7c15;
    uint64_t z = seed_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    const Node node{
        .key = v, .mult = 1, .cnt = 1, .sum = v, .prio = static_cast<uint32_t>(z >> 32)};
    if (!free_.empty()) {
      const uint32_t t = free_.back();
      free_.pop_back();
      nodes_[t] = node;
      return t;
    }
    if (nodes_.size() > UINT32_MAX) Die("more than 2^32 distinct counts");
    nodes_.push_back(node);
    return static_cast<uint32_t>(nodes_.size() - 1);
  }

  void Pull(uint32_t t) {
    Node& node = nodes_[t];
    const Node& l = nodes_[node.left];
    const Node& r = nodes_[node.right];
    node.cnt = node.mult + l.cnt + r.cnt;
    node.sum = node.mult * node.key + l.sum + r.sum;
  }

  uint32_t RotateRight(uint32_t t) {
    const uint32_t l = nodes_[t].left;
    nodes_[t].left = nodes_[l].right;
    nodes_[l].right = t;
    Pull(t);
    Pull(l);
    return l;
  }

  uint32_t RotateLeft(uint32_t t) {
    const uint32_t r = nodes_[t].right;
    nodes_[t].right = nodes_[r].left;
    nodes_[r].left = t;
    Pull(t);
    Pull(r);
    return r;
  }

  // Inserts node n (a key not present) into subtree t; returns the new
  // subtree root. Recursion depth is the treap depth, O(log d) expected.
  uint32_t Insert(uint32_t t, uint32_t n) {
    if (t == kNil) return n;
    if (nodes_[n].key < nodes_[t].key) {
      nodes_[t].left = Insert(nodes_[t].left, n);
      if (nodes_[nodes_[t].left].prio > nodes_[t].prio) return RotateRight(t);
    } else {
      nodes_[t].right = Insert(nodes_[t].right, n);
      if (nodes_[nodes_[t].right].prio > nodes_[t].prio) return RotateLeft(t);
    }
    Pull(t);
    return t;
  }

  // Joins two treaps whose keys are all ordered a < b.
  uint32_t Merge(uint32_t a, uint32_t b) {
    if (a == kNil) return b;
    if (b == kNil) return a;
    if (nodes_[a].prio > nodes_[b].prio) {
      nodes_[a].right = Merge(nodes_[a].right, b);
      Pull(a);
      return a;
    }
    nodes_[b].left = Merge(a, nodes_[b].left);
    Pull(b);
    return b;
  }

  // Removes key v (present) from subtree t; returns the new subtree root.
  uint32_t Erase(uint32_t t, uint64_t v) {
    if (v < nodes_[t].key) {
      nodes_[t].left = Erase(nodes_[t].left, v);
    } else if (v > nodes_[t].key) {
      nodes_[t].right = Erase(nodes_[t].right, v);
    } else {
      const uint32_t joined = Merge(nodes_[t].left, nodes_[t].right);
      free_.push_back(t);
      return joined;
    }
    Pull(t);
    return t;
  }

  std::vector<Node> nodes_;
  std::vector<uint32_t> free_;
  uint32_t root_ = kNil;
  uint64_t seed_ = 0;
};

// Multiset of the counts in [1, kLimit): a Fenwick tree over the value, of
// (entities, sum of counts) per value. Most entities of a Zipf distribution
// have small counts, many sharing each value; for them a treap update was two
// descents of dependent loads (remove from the old value's node, insert at the
// new one), here it is a few short loops over one 64 KiB array: BM_Add went
// from 272 to 178 ns at 10^5 entities and from 419 to 274 ns at 10^7.
class SmallCountIndex {
 public:
  static constexpr uint64_t kLimit = ExactDistribution::kSmallCountLimit;

  uint64_t size() const { return cnt_; }
  uint64_t sum() const { return sum_; }
  CountSum totals() const { return CountSum{cnt_, sum_}; }

  // One entity more (+1) or less (-1) at count v, 0 < v < kLimit. A removal
  // must be of an entity present (the caller's counts say so).
  void Add(uint64_t v, int sign) {
    if (tree_.empty()) tree_.resize(kLimit);
    const uint64_t dc = sign > 0 ? 1 : ~uint64_t{0};  // modulo 2^64
    const uint64_t ds = sign > 0 ? v : uint64_t{0} - v;
    for (uint64_t i = v; i < kLimit; i += i & (~i + 1)) {
      tree_[i].cnt += dc;
      tree_[i].sum += ds;
    }
    cnt_ += dc;
    sum_ += ds;
  }

  // Number and sum of the counts <= x, x < kLimit.
  CountSum AtMost(uint64_t x) const {
    CountSum r;
    if (tree_.empty()) return r;
    for (uint64_t i = x; i > 0; i &= i - 1) {
      r.cnt += tree_[i].cnt;
      r.sum += tree_[i].sum;
    }
    return r;
  }

  // Sum of the j smallest counts, j <= size().
  uint64_t SmallestSum(uint64_t j) const {
    if (j == 0) return 0;
    // The largest pos with AtMost(pos).cnt <= j; the rest are at pos + 1.
    uint64_t pos = 0;
    CountSum below;
    for (uint64_t step = kLimit / 2; step > 0; step >>= 1) {
      const uint64_t next = pos + step;
      if (next < kLimit && below.cnt + tree_[next].cnt <= j) {
        pos = next;
        below.cnt += tree_[next].cnt;
        below.sum += tree_[next].sum;
      }
    }
    return below.sum + (j - below.cnt) * (pos + 1);
  }

  void Clear() {
    std::fill(tree_.begin(), tree_.end(), CountSum{});
    cnt_ = 0;
    sum_ = 0;
  }

 private:
  static_assert((kLimit & (kLimit - 1)) == 0, "kLimit must be a power of two");
  std::vector<CountSum> tree_;  // 1-based; empty until the first count
  uint64_t cnt_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace

// The counts below kSmallCountLimit in a SmallCountIndex, the others in a
// CountTreap; every distance sum spans both.
class ExactDistribution::ValueIndex {
 public:
  uint64_t size() const { return small_.size() + large_.size(); }

  // Adds one entity with count v > 0. Returns sum_j |v - x_j| over the
  // entities already present.
  uint128 InsertOne(uint64_t v) {
    if (v >= kSmallCountLimit) return large_.InsertOne(v, small_.totals());
    const uint128 dist = SmallDistance(v);
    small_.Add(v, +1);
    return dist;
  }

  // Removes one entity with count v > 0. Returns sum_j |v - x_j| over the
  // other entities.
  uint128 RemoveOne(uint64_t v) {
    if (v >= kSmallCountLimit) return large_.RemoveOne(v, small_.totals());
    const uint128 dist = SmallDistance(v);
    small_.Add(v, -1);
    return dist;
  }

  // Moves one entity from count a > 0 to count b > 0, a != b.
  DistChange MoveOne(uint64_t a, uint64_t b) {
    if (a >= kSmallCountLimit && b >= kSmallCountLimit) {
      return large_.MoveOne(a, b, small_.totals());
    }
    DistChange change;
    change.minus = RemoveOne(a);
    change.plus = InsertOne(b);
    return change;
  }

  // Number of entities with count <= x.
  uint64_t CountAtMost(uint64_t x) const {
    if (x < kSmallCountLimit) return small_.AtMost(x).cnt;
    return small_.size() + large_.CountAtMost(x);
  }

  // Sum of the k largest counts; k <= size().
  uint64_t TopKSum(uint64_t k) const {
    if (k <= large_.size()) return large_.TopKSum(k);
    const uint64_t from_small = k - large_.size();
    return large_.sum() + (small_.sum() - small_.SmallestSum(small_.size() - from_small));
  }

  void Clear() {
    small_.Clear();
    large_.Clear();
  }

 private:
  // sum_j |v - x_j| over every entity, for v < kSmallCountLimit (so every
  // count in large_ is above v).
  uint128 SmallDistance(uint64_t v) const {
    const CountSum lo = small_.AtMost(v - 1);
    return DistanceSum(v, lo.cnt, lo.sum, size(), small_.sum() + large_.sum());
  }

  SmallCountIndex small_;
  CountTreap large_;
};

ExactDistribution::ExactDistribution() : index_(std::make_unique<ValueIndex>()) {}
ExactDistribution::~ExactDistribution() = default;

// A moved-from distribution is empty and usable: its index is rebuilt on the
// next Add (moves must not allocate, to stay noexcept).
ExactDistribution::ExactDistribution(ExactDistribution&& other) noexcept
    : counts_(std::move(other.counts_)),
      index_(std::move(other.index_)),
      entities_(std::exchange(other.entities_, 0)),
      total_(std::exchange(other.total_, 0)),
      sum_sq_(std::exchange(other.sum_sq_, 0)),
      abs_diff_(std::exchange(other.abs_diff_, 0)) {
  other.counts_.clear();
}

ExactDistribution& ExactDistribution::operator=(ExactDistribution&& other) noexcept {
  if (this != &other) {
    counts_ = std::move(other.counts_);
    index_ = std::move(other.index_);
    entities_ = std::exchange(other.entities_, 0);
    total_ = std::exchange(other.total_, 0);
    sum_sq_ = std::exchange(other.sum_sq_, 0);
    abs_diff_ = std::exchange(other.abs_diff_, 0);
    other.counts_.clear();
  }
  return *this;
}

void ExactDistribution::Add(EntityId e, int64_t delta) {
  if (delta == 0) return;
  if (index_ == nullptr) index_ = std::make_unique<ValueIndex>();
  if (delta > 0) {
    const uint64_t up = static_cast<uint64_t>(delta);
    if (up >= kMaxTotal - total_) Die("total count would reach 2^63");
    if (e >= counts_.size()) {
      // Geometric growth: ids arrive roughly in order, one resize each would
      // be quadratic.
      counts_.resize(std::max<size_t>(size_t{e} + 1, counts_.size() * 3 / 2));
    }
    uint64_t& x = counts_[e];
    const uint64_t from = x;
    x = from + up;
    if (from == 0) ++entities_;
    Move(from, from + up);
    total_ += up;
    return;
  }
  const uint64_t down = uint64_t{0} - static_cast<uint64_t>(delta);
  if (e >= counts_.size() || counts_[e] < down) Die("count would go below zero");
  uint64_t& x = counts_[e];
  const uint64_t from = x;
  const uint64_t to = from - down;
  x = to;
  if (to == 0) --entities_;
  Move(from, to);
  total_ -= down;
}

void ExactDistribution::Move(uint64_t from, uint64_t to) {
  // D: the moving entity's pairs with every other entity j change from
  // |from - x_j| to |to - x_j|; pairs not involving it do not change.
  if (from != 0 && to != 0) {
    const DistChange change = index_->MoveOne(from, to);
    abs_diff_ = abs_diff_ - change.minus + change.plus;
  } else if (from != 0) {
    abs_diff_ -= index_->RemoveOne(from);
  } else {
    abs_diff_ += index_->InsertOne(to);
  }
  sum_sq_ = sum_sq_ - uint128{from} * from + uint128{to} * to;
}

uint64_t ExactDistribution::Count(EntityId e) const { return e < counts_.size() ? counts_[e] : 0; }

uint64_t ExactDistribution::TopKSum(uint64_t k) const {
  if (index_ == nullptr) return 0;
  if (k >= entities()) return total_;
  return index_->TopKSum(k);
}

uint64_t ExactDistribution::CountAbove(uint64_t x) const {
  if (index_ == nullptr) return 0;
  return entities() - index_->CountAtMost(x);
}

void ExactDistribution::Clear() {
  counts_.clear();
  entities_ = 0;
  if (index_ == nullptr) {
    index_ = std::make_unique<ValueIndex>();
  } else {
    index_->Clear();
  }
  total_ = 0;
  sum_sq_ = 0;
  abs_diff_ = 0;
}

namespace {

// Each of Q, X^2, D and n*X converts to double with one rounding (GCC's
// 128-bit conversion rounds to nearest), so each ratio is within a few ulps
// (~1e-15 relative) of the exact rational.
double Ratio(uint128 num, uint128 den) {
  return static_cast<double>(num) / static_cast<double>(den);
}

template <typename TopKFn>
ConcentrationValues MakeValues(uint64_t n, uint64_t total, uint128 sum_sq, uint128 abs_diff,
                               std::span<const uint32_t> ks, TopKFn top_k_sum) {
  ConcentrationValues v;
  v.total = total;
  v.entities = n;
  v.top_shares.reserve(ks.size());
  if (total == 0) {
    for (uint32_t k : ks) v.top_shares.emplace_back(k, 0.0);
    return v;
  }
  v.hhi = Ratio(sum_sq, uint128{total} * total);
  v.gini = n <= 1 ? 0.0 : Ratio(abs_diff, uint128{n} * total);
  for (uint32_t k : ks) {
    v.top_shares.emplace_back(k, Ratio(top_k_sum(k), total));
  }
  return v;
}

}  // namespace

ConcentrationValues ExactDistribution::Values(std::span<const uint32_t> ks) const {
  return MakeValues(entities(), total_, sum_sq_, abs_diff_, ks,
                    [this](uint64_t k) { return TopKSum(k); });
}

ConcentrationValues RecomputeConcentration(std::vector<uint64_t> counts,
                                           std::span<const uint32_t> ks) {
  std::erase(counts, uint64_t{0});
  std::sort(counts.begin(), counts.end());
  const uint64_t n = counts.size();
  uint128 total = 0;
  uint128 sum_sq = 0;
  uint128 abs_diff = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t x = counts[i];
    // Ascending order: x exceeds each of the i smaller counts, so its pairs
    // with them add i*x - (their sum); `total` is that sum here.
    abs_diff += uint128{x} * i - total;
    total += x;
    sum_sq += uint128{x} * x;
  }
  if (total >= kMaxTotal) Die("total count reaches 2^63");
  return MakeValues(n, static_cast<uint64_t>(total), sum_sq, abs_diff, ks, [&](uint64_t k) {
    if (k >= n) return static_cast<uint64_t>(total);
    uint64_t s = 0;
    for (uint64_t i = n - k; i < n; ++i) s += counts[i];
    return s;
  });
}

}  // namespace hubmetrics
