// The ΔHHI decomposition of one view between two windows (docs/DEFINITIONS.md,
// "ΔHHI decomposition"): HHI = Σᵢ sᵢ², so ΔHHI = Σᵢ (sᵢ,to² − sᵢ,from²) over
// every entity with downloads in either window, and each entity's term is its
// exact contribution to the change.
//
// Exactness: every contribution and every sum of contributions is computed
// from the integer counts as (Σ t²)/X_to² − (Σ f²)/X_from² with the sums of
// squares in 128-bit integers, then rounded once; the top movers are chosen by
// comparing |t²·X_from² − f²·X_to²| in 256-bit integers (the contributions'
// common denominator X_from²·X_to² is positive), so the order is exact, not
// that of rounded doubles. Counts must be below 2^63 and totals below 2^64
// (their squares fit in 128 bits).
//
// Pure function; no state, thread-safe.
#ifndef HUBMETRICS_LIB_QUERY_EXPLAIN_CHANGE_H_
#define HUBMETRICS_LIB_QUERY_EXPLAIN_CHANGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lib/query/on_demand_views.h"

namespace hubmetrics {

// One entity in both windows. Ranks are 1 + the entities of that window with
// strictly more downloads, 0 when the entity has none there.
struct EntityChange {
  std::string entity;
  uint64_t from_downloads = 0;
  uint64_t from_rank = 0;
  uint64_t to_downloads = 0;
  uint64_t to_rank = 0;
  double contribution = 0;  // s_to² − s_from²
};

// A set of entities: count, combined downloads, combined contribution.
struct ChangeGroup {
  uint64_t entities = 0;
  uint64_t from_downloads = 0;
  uint64_t to_downloads = 0;
  double contribution = 0;
};

struct ChangeExplanation {
  uint64_t from_total = 0;
  uint64_t to_total = 0;
  double delta_hhi = 0;  // exact, rounded once
  // By |contribution| descending, then entity ascending; at most k.
  std::vector<EntityChange> top;
  // Every entrant (downloads only in `to`) and exit (only in `from`),
  // top movers included.
  ChangeGroup entrants;
  ChangeGroup exits;
  // The partition's other parts: entrants, exits and entities with downloads
  // in both windows, each not among `top`. top + other_entrants + other_exits
  // + rest is every entity, each once, and their contributions sum to
  // delta_hhi.
  ChangeGroup other_entrants;
  ChangeGroup other_exits;
  ChangeGroup rest;
};

// Explains the change of HHI from `from` to `to` (the same view, two
// windows), with the k largest movers.
ChangeExplanation ExplainChange(const RankedCounts& from, const RankedCounts& to, uint32_t k);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_QUERY_EXPLAIN_CHANGE_H_
