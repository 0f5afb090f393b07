// Any view x window computed on request, exactly, from the per-model counts
// that Aggregates keeps: the levels, pairs and samples that are not kept live,
// and the windows that are not (week:W before the watermark's week, other
// trailing:N, range:). Each answer is cached: one over named weeks
// (week:W, range:, trailing:N resolved) of sample all until a batch changes
// one of its weeks, so past weeks stay cached during live ingest; the others
// (all, population, head) until the next batch; all of them until the next
// catalog change. A dashboard asking the same views every few seconds pays at
// most once per batch.
//
// Cost: one pass over the models with downloads in the window's weeks (over
// every model with downloads for "all"), then a sort of the window's
// entities. The head sample also keeps each week's 200 largest models,
// recomputed only for the weeks whose counts changed.
//
// Thread safety: the reads may run concurrently while the caller holds the
// engine's lock for reading (so that Aggregates and the Catalog do not
// change); the cache has its own lock.
#ifndef HUBMETRICS_LIB_QUERY_ON_DEMAND_VIEWS_H_
#define HUBMETRICS_LIB_QUERY_ON_DEMAND_VIEWS_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "lib/aggregate/aggregates.h"
#include "lib/catalog/catalog.h"
#include "lib/concentration/distribution.h"
#include "lib/time/time.h"
#include "lib/views/views.h"

namespace hubmetrics {

// The entities of one view x window with at least one download, in no
// particular order: ordering a million model ids by name costs more than
// the answers need (the measures need the counts only; a leaderboard, the
// first k).
struct RankedCounts {
  uint64_t total = 0;
  // Names point into the model registry (its names never move or change) or
  // into owned_names.
  std::vector<std::pair<const std::string*, uint64_t>> entities;
  std::deque<std::string> owned_names;

  ConcentrationValues Measures(std::span<const uint32_t> ks) const;
  // The first k by downloads descending, then entity ascending (byte order),
  // with competition ranks.
  Leaderboard Top(uint32_t k) const;
  EntityStanding Find(std::string_view entity) const;
};

// Shares over time: the k entities largest over a range of weeks, and each
// one's downloads per week.
struct ShareSeriesValues {
  uint64_t total = 0;     // over the range
  uint64_t entities = 0;  // with downloads over the range
  std::vector<RankedEntity> top;
  struct Week {
    IsoWeek week = IsoWeek::FromMonday(0);
    uint64_t total = 0;
    std::vector<uint64_t> downloads;  // parallel to top
  };
  std::vector<Week> weeks;  // every week of the range, in order
};

class OnDemandViews {
 public:
  // None is owned; all must outlive this object.
  OnDemandViews(const Aggregates* aggregates, const Catalog* catalog,
                const ModelRegistry* registry);

  std::shared_ptr<const RankedCounts> Counts(const View& view, const Window& window) const;
  // Counts(view, window)->Measures(ks), kept with the cached counts (for a
  // few ks lists per answer): a repeated question costs a lookup, not a sort
  // of the window's entities.
  ConcentrationValues Measures(const View& view, const Window& window,
                               std::span<const uint32_t> ks) const;
  // Measures(view, window, ks) when it is cached and still holds, else
  // nullopt; never computes and never waits for another reader's
  // computation, so a caller that must not block (a gRPC thread) can try it.
  std::optional<ConcentrationValues> CachedMeasures(const View& view, const Window& window,
                                                    std::span<const uint32_t> ks) const;
  ShareSeriesValues ShareSeries(const View& view, IsoWeek first, IsoWeek last, uint32_t k) const;

 private:
  // An entity of a view: a ModelIdx (level model), a level's interned value,
  // or two of those (a pair: first << 32 | second).
  using EntityKey = uint64_t;
  using KeyCounts = absl::flat_hash_map<EntityKey, uint64_t>;
  struct LevelValues {
    std::vector<int64_t> by_model;  // credited ModelIdx -> value id; -1: not derived yet
    std::vector<std::string> names;
    absl::flat_hash_map<std::string, uint32_t> index;
  };

  // Drops what the counts or the catalog have moved since.
  void Refresh() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t ValueOf(Level level, ModelIdx credited) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  EntityKey KeyOf(const View& view, ModelIdx credited) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NameOf(const View& view, EntityKey key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a download of `m` is in the view's sample.
  bool InSample(Sample sample, ModelIdx m) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateHead() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls fn(m, n) for every model with n > 0 downloads in the view's filter
  // over the weeks [first, last], or all time without a range.
  template <typename Fn>
  void ForEachModel(const View& view, std::optional<std::pair<IsoWeek, IsoWeek>> weeks, Fn fn) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `counts` with their names; `keys`, when given, gets each entity's key
  // (parallel to the answer's entities).
  std::shared_ptr<RankedCounts> Name(const View& view, const KeyCounts& counts,
                                     std::vector<EntityKey>* keys = nullptr) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Aggregates* aggregates_;
  const Catalog* catalog_;
  const ModelRegistry* registry_;

  mutable absl::Mutex mu_;
  // An answer and the counts version it is known to hold at. One over a
  // range of weeks of sample all (`weeks` set) stays right while none of its
  // weeks changes: a past week's answer outlives the batches of the current
  // week. The others are redone once any count changes.
  struct CachedAnswer {
    std::shared_ptr<const RankedCounts> counts;
    uint64_t counts_version = 0;
    std::optional<std::pair<IsoWeek, IsoWeek>> weeks;
    // Measures of `counts` by ks list, the most recent last.
    std::vector<std::pair<std::vector<uint32_t>, ConcentrationValues>> measures;
  };
  bool StillHolds(const CachedAnswer& answer) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cache's key of view x window (the window resolved to its weeks
  // against the watermark) and those weeks.
  struct AnswerKey {
    std::string key;
    std::optional<std::pair<IsoWeek, IsoWeek>> weeks;
  };
  AnswerKey KeyOfAnswer(const View& view, const Window& window) const;
  // The cached answer of `key` when it still holds, else nullptr.
  CachedAnswer* FindHolding(const std::string& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cached answer of view x window, computed when missing or stale.
  CachedAnswer& Answer(const View& view, const Window& window) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The (catalog, credit) versions the caches below were made from.
  mutable uint64_t catalog_version_ ABSL_GUARDED_BY(mu_) = ~uint64_t{0};
  mutable uint64_t credit_version_ ABSL_GUARDED_BY(mu_) = ~uint64_t{0};
  // Answers by view key and window label (the window resolved to its weeks).
  mutable absl::flat_hash_map<std::string, CachedAnswer> answers_ ABSL_GUARDED_BY(mu_);
  mutable std::array<LevelValues, kNumLevels> levels_ ABSL_GUARDED_BY(mu_);
  // The head sample: per week (key: Monday) the week's version and its
  // kHeadModelsPerWeek largest models; their union by ModelIdx.
  mutable absl::flat_hash_map<Day, std::pair<uint64_t, std::vector<ModelIdx>>> head_weeks_
      ABSL_GUARDED_BY(mu_);
  mutable std::vector<bool> head_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t head_counts_version_ ABSL_GUARDED_BY(mu_) = ~uint64_t{0};
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_QUERY_ON_DEMAND_VIEWS_H_
