// Exact, incrementally maintained concentration measures of a distribution of
// non-negative integer counts over entities.
//
// ExactDistribution holds one count x_e per entity e (entities are dense
// uint32 ids chosen by the caller) and keeps, exactly and in integers,
//   n  = |{e : x_e > 0}|,  X = sum x_e,  Q = sum x_e^2,  D = sum_{i<j} |x_i - x_j|
// plus an order-statistics index over the counts, so that every update
// (increment, decrement, an entity appearing or leaving) costs O(log d)
// expected (a randomized balanced tree over the distinct counts of at least
// kSmallCountLimit; d <= n is their number) or O(log kSmallCountLimit) (a
// Fenwick tree over the values below it, where most entities of download-like
// data are), and every measure is read from the exact state without a rescan:
//   HHI = Q / X^2,  Gini = D / (n X),  top-k share = (sum of k largest) / X.
// X, Q and D are 128-bit; they cannot overflow while X < 2^63.
//
// Memory: the counts are a dense array indexed by entity id (8 bytes per id
// up to the largest id ever added), which is what makes an update one array
// access instead of a hash lookup; callers keep ids dense (interned). Plus
// 16 bytes per value below kSmallCountLimit (64 KiB, once any count is below
// it) and about 48 bytes per distinct count above.
//
// Thread safety: none; callers serialize access (the aggregate component
// holds it under its own mutex).
#ifndef HUBMETRICS_LIB_CONCENTRATION_DISTRIBUTION_H_
#define HUBMETRICS_LIB_CONCENTRATION_DISTRIBUTION_H_

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace hubmetrics {

using EntityId = uint32_t;
using uint128 = unsigned __int128;

// Measures of one distribution, as doubles computed from the exact state.
struct ConcentrationValues {
  uint64_t total = 0;     // X
  uint64_t entities = 0;  // n
  double hhi = 0;         // 0 when X == 0
  double gini = 0;        // 0 when n <= 1
  // (k, share) in the order the ks were asked for; share 1 when k >= n > 0, 0 when X == 0.
  std::vector<std::pair<uint32_t, double>> top_shares;
};

class ExactDistribution {
 public:
  // Counts below this are indexed by value (see above); a power of two.
  static constexpr uint64_t kSmallCountLimit = 4096;

  ExactDistribution();
  ~ExactDistribution();
  // A moved-from distribution is empty and usable.
  ExactDistribution(ExactDistribution&&) noexcept;
  ExactDistribution& operator=(ExactDistribution&&) noexcept;
  ExactDistribution(const ExactDistribution&) = delete;
  ExactDistribution& operator=(const ExactDistribution&) = delete;

  // x_e += delta. A count may not go below zero: the caller's bookkeeping is
  // wrong if it would, and the call aborts (this is a programming error, not
  // an input error). So does an update that would bring X to 2^63 or more.
  // delta == 0 is a no-op.
  void Add(EntityId e, int64_t delta);

  // x_e, 0 for an entity never seen or back at zero.
  uint64_t Count(EntityId e) const;

  uint64_t total() const { return total_; }
  uint64_t entities() const { return entities_; }
  uint128 sum_of_squares() const { return sum_sq_; }
  // sum over unordered pairs of entities with x > 0 of |x_i - x_j|.
  uint128 pairwise_abs_diff() const { return abs_diff_; }

  // Sum of the k largest counts (all of X when k >= n).
  uint64_t TopKSum(uint64_t k) const;
  // Number of entities whose count is strictly greater than `x`.
  uint64_t CountAbove(uint64_t x) const;

  // Each ratio is within a few ulps of the exact rational (the conversions
  // from 128 bits round once each).
  ConcentrationValues Values(std::span<const uint32_t> ks) const;

  // Calls fn(entity, x) for every entity with x > 0, by ascending id. For
  // leaderboards: O(largest id).
  template <typename Fn>
  void ForEachCount(Fn fn) const {
    for (size_t e = 0; e < counts_.size(); ++e) {
      if (counts_[e] != 0) fn(static_cast<EntityId>(e), counts_[e]);
    }
  }

  void Clear();

 private:
  class ValueIndex;  // multiset of the counts: rank and sum below a value, sum of the k largest

  // Moves one entity's count from `from` to `to` (either may be 0 = absent).
  void Move(uint64_t from, uint64_t to);

  std::vector<uint64_t> counts_;  // by entity id; 0 = absent
  std::unique_ptr<ValueIndex> index_;
  uint64_t entities_ = 0;  // non-zero entries of counts_
  uint64_t total_ = 0;
  uint128 sum_sq_ = 0;
  uint128 abs_diff_ = 0;
};

// The same measures by a batch recompute from a plain list of counts (zeros
// ignored): sorts, then sums. O(n log n). The reference that the incremental
// structure is tested against, and what windows that are not kept live use.
ConcentrationValues RecomputeConcentration(std::vector<uint64_t> counts,
                                           std::span<const uint32_t> ks);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_CONCENTRATION_DISTRIBUTION_H_
