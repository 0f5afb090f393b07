// Unique-download counts per model and day, and everything derived from them:
// per-week counts, live windows with exact incremental concentration
// measures, and the answers to view x window queries.
//
// Every answer is a pure function of (the daily counts, the current catalog,
// the watermark's week), exactly as docs/DEFINITIONS.md defines it. Live
// windows ("all" and trailing:N for N in AggregateOptions) keep one
// ExactDistribution per live view (View::Liveable), updated per count change
// in O(log n); Concentration, Top and Entity answer those (nullopt for any
// other view or window). Every other view x window is computed on request
// from the per-model counts exposed here (weeks(), model_totals()) by
// lib/query.
// Catalog changes re-credit past counts: call RemoveModels(affected) before
// changing the catalog and AddModels(affected) after, with the same set
// (Catalog::AffectedBy).
//
// Thread safety: not thread-safe. The engine calls mutators from its ingest
// thread and queries from gRPC threads under one reader/writer lock.
#ifndef HUBMETRICS_LIB_AGGREGATE_AGGREGATES_H_
#define HUBMETRICS_LIB_AGGREGATE_AGGREGATES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "lib/aggregate/lane_worker.h"
#include "lib/catalog/catalog.h"
#include "lib/concentration/distribution.h"
#include "lib/time/time.h"
#include "lib/views/views.h"

namespace hubmetrics {

struct AggregateOptions {
  // Trailing windows kept live (updated incrementally per event). Queries for
  // these N and for "all" read exact state directly; other windows cost one
  // pass over the per-week counts they cover. More live windows: faster
  // queries, more memory and more work per event.
  std::vector<int> live_trailing_weeks = {1, 4, 13, 52};
  // Threads applying staged distribution updates (1 or 2). With 2, a second
  // thread updates half of the distributions while the caller updates the
  // other half: faster ingest when a core is free, one more thread.
  int apply_threads = 2;
  // Views kept live (View::Liveable ones only: model, developer and country
  // at sample all). Each costs an O(log n) update per changed entity and
  // batch in every live window, and memory per entity; a view not kept live
  // is computed on request from the per-model counts (lib/query), cached per
  // batch. Default: all kNumLiveViews.
  std::vector<View> live_views = AllLiveableViews();
};

// One model's unique downloads over some days: all of them, and those that
// count in the rolling_1y filter.
struct ModelWeekCounts {
  int64_t all = 0;
  int64_t rolling = 0;
};
// Per ISO week (key: its Monday), the counts of every model with downloads
// that week.
using WeekTable = absl::btree_map<Day, absl::flat_hash_map<ModelIdx, ModelWeekCounts>>;

// A change of one model's unique-download count on one day.
struct ModelDayDelta {
  ModelIdx model;
  Day day;
  int64_t delta;
};

struct RankedEntity {
  std::string entity;
  uint64_t downloads = 0;
  uint64_t rank = 0;  // 1 + entities with strictly more downloads; 0 if none
};

struct Leaderboard {
  uint64_t total = 0;
  uint64_t entities = 0;
  // By downloads descending, then entity name ascending (byte order).
  std::vector<RankedEntity> top;
};

struct EntityStanding {
  uint64_t total = 0;
  uint64_t entities = 0;
  RankedEntity entity;  // downloads 0, rank 0 when absent from the window
};

// The measures of one live window, for every view kept live (by LiveIndex;
// empty for a view not kept live).
struct LiveWindowValues {
  int weeks = 0;                                     // 0: all time, else trailing:weeks
  std::optional<std::pair<IsoWeek, IsoWeek>> range;  // trailing only; empty before a watermark
  std::array<std::optional<ConcentrationValues>, kNumLiveViews> by_view;
};

class Aggregates {
 public:
  // `registry` and `catalog` are not owned and must outlive this object.
  Aggregates(AggregateOptions options, const ModelRegistry* registry, const Catalog* catalog);

  // Adds `deltas` to the daily counts (a count may not go below zero) and to
  // every live distribution. Same as Stage(deltas) then ApplyStaged(SIZE_MAX).
  void Apply(std::span<const ModelDayDelta> deltas);

  // Apply in steps, so that a caller holding a lock for readers can let
  // them in between steps: Stage() (called once or more per batch, with
  // parts of it) updates the daily and weekly counts at once and queues the
  // live distributions' updates, merged per (window, view, entity) — one
  // O(log n) update per entity and batch, however many of its downloads the
  // batch holds. ApplyStaged() applies up to `max_updates` of them and
  // returns true when none are left. Until then, live-window answers lack
  // part of the staged deltas (each is still exact for a subset of them).
  // Any other mutator applies what is left first.
  void Stage(std::span<const ModelDayDelta> deltas);
  bool ApplyStaged(size_t max_updates);
  // Moves trailing windows to end at `week`. Weeks only move forward; an
  // earlier week is ignored. Same as StageWatermarkWeek(week) then
  // ApplyStaged(SIZE_MAX).
  void SetWatermarkWeek(IsoWeek week);
  // Moves trailing windows to end at `week` (watermark_week() and the
  // windows' ranges at once) and stages the change of their distributions:
  // the counts of the weeks leaving and entering each window join the staged
  // changes, merged with them per (window, model) and per entity, and are
  // applied by ApplyStaged() (until it returns true) like any other.
  void StageWatermarkWeek(IsoWeek week);
  std::optional<IsoWeek> watermark_week() const { return watermark_week_; }

  // The re-credit protocol around a catalog change; see the file comment.
  void RemoveModels(std::span<const ModelIdx> models);
  void AddModels(std::span<const ModelIdx> models);

  uint64_t DailyCount(ModelIdx model, Day day) const;
  // Unique downloads over all models and days.
  uint64_t TotalUniqueDownloads() const;

  // Whether view x window is kept live (and the three queries below answer it).
  bool IsLive(View view, const Window& window) const {
    return LiveDistribution(view, window) != nullptr;
  }
  // The answers of a live view x window; nullopt when !IsLive(view, window).
  std::optional<ConcentrationValues> Concentration(View view, const Window& window,
                                                   std::span<const uint32_t> ks) const;
  std::optional<Leaderboard> Top(View view, const Window& window, uint32_t k) const;
  // Concentration() of every live window and view at once, for a snapshot
  // that queries read without the engine's lock. Excludes staged updates not
  // yet applied (call it when ApplyStaged() has returned true).
  std::vector<LiveWindowValues> LiveValues(std::span<const uint32_t> ks) const;
  std::optional<EntityStanding> Entity(View view, const Window& window,
                                       std::string_view entity) const;

  // --- Reads for on-demand views (staged updates included). ---
  const WeekTable& weeks() const { return by_week_; }
  // All-time counts by ModelIdx (models past the end have none).
  std::span<const ModelWeekCounts> model_totals() const { return totals_; }
  // The model credited for a download of `m` (which has counts): m itself,
  // or its attribution root.
  ModelIdx Credited(ModelIdx m, Attribution a) const {
    return a == Attribution::kDirect ? m : credit_[m].entity[kCreditSlotRoot];
  }
  // Grows whenever any count, credit or the watermark's week changes.
  uint64_t version() const { return version_; }
  // Grows whenever the level model / filter all counts of the week starting
  // `monday` change (what the head sample is decided on).
  uint64_t WeekVersion(Day monday) const {
    auto it = week_version_.find(monday);
    return it == week_version_.end() ? 0 : it->second;
  }
  // Grows whenever models' credits or created days are redone (catalog
  // changes): that moves past weeks' credited and rolling_1y counts without
  // moving their WeekVersion.
  uint64_t credit_version() const { return credit_version_; }

 private:
  using WeekCounts = ModelWeekCounts;
  // Where one model's downloads are credited: entity per (level, attribution).
  static constexpr int kCreditSlots = 6;
  // The recursive model slot: the attribution root.
  static constexpr int kCreditSlotRoot = 1;
  struct Credit {
    bool valid = false;
    std::array<EntityId, kCreditSlots> entity{};  // [level * 2 + attribution]
    std::optional<Day> created_day;
  };
  struct LiveWindow {
    int weeks = 0;                                     // 0: all time
    std::optional<std::pair<IsoWeek, IsoWeek>> range;  // trailing only; empty before a watermark
    std::array<ExactDistribution, kNumLiveViews> dists;
    bool Covers(Day monday) const {
      return weeks == 0 ||
             (range && monday >= range->first.monday() && monday <= range->second.monday());
    }
  };
  const Credit& EnsureCredit(ModelIdx m);
  // daily_'s count of (m, day), created at 0 if absent; valid until the next call.
  uint64_t& DailySlot(ModelIdx m, Day day);
  void Contribute(LiveWindow& w, const Credit& c, int64_t all, int64_t rolling);
  void ApplyAllStaged() { ApplyStaged(SIZE_MAX); }
  // Expands pending_ into the lanes: per distribution, the batch's change of
  // each entity it touches, merged (one update per entity and batch).
  void SealLanes();
  // Adds (all, rolling) to live window `w`'s staged change of model `m`.
  void StagePending(size_t w, ModelIdx m, int64_t all, int64_t rolling);
  // Stages `sign` times the counts of the week starting `monday` into live window `w`.
  void StageWeek(size_t w, Day monday, int sign);
  // Per-week (all, rolling) counts of one model, from its daily counts.
  std::vector<std::pair<Day, WeekCounts>> WeeksOf(ModelIdx m, std::optional<Day> created_day) const;

  const LiveWindow* LiveFor(const Window& window) const;
  const ExactDistribution* LiveDistribution(View view, const Window& window) const;
  const std::string& EntityName(Level level, EntityId e) const;

  AggregateOptions options_;
  const ModelRegistry* registry_;
  const Catalog* catalog_;
  ModelRegistry developers_;  // interner of developer names (entity ids of that level)
  ModelRegistry countries_;
  std::vector<Credit> credit_;  // by ModelIdx
  // Per model (by ModelIdx), its days with counts, ascending: a model's days
  // arrive nearly in order, so updates land at or near the end (one
  // btree keyed by (model, day) cost a cache-missing descent each).
  std::vector<std::vector<std::pair<Day, uint64_t>>> daily_;
  absl::btree_map<Day, absl::flat_hash_map<ModelIdx, WeekCounts>> by_week_;  // key: Monday
  std::vector<LiveWindow> live_;                                             // live_[0] is "all"
  std::array<bool, kNumLiveViews> kept_live_{};  // by LiveIndex: options_.live_views
  std::optional<IsoWeek> watermark_week_;
  uint64_t total_unique_ = 0;
  std::vector<ModelWeekCounts> totals_;  // by ModelIdx
  uint64_t version_ = 0;
  uint64_t credit_version_ = 0;
  absl::flat_hash_map<Day, uint64_t> week_version_;
  // The staged changes not yet in the live distributions. Stage() merges them
  // per live window and model (dense by ModelIdx); SealLanes() expands them
  // per view into one update per (distribution, entity) in two lanes that
  // touch disjoint distributions.
  struct PendingWindow {
    std::vector<WeekCounts> by_model;  // by ModelIdx; zero when not pending
    std::vector<ModelIdx> touched;     // models given a change since the last seal (may repeat)
  };
  std::vector<PendingWindow> pending_;  // parallel to live_
  bool any_pending_ = false;
  struct Update {
    uint32_t dist;  // window * kNumLiveViews + view
    EntityId entity;
    int64_t delta;
  };
  struct Lane {
    std::vector<Update> updates;
    size_t applied = 0;
    size_t left() const { return updates.size() - applied; }
    void Apply(std::vector<LiveWindow>& live, size_t n);
  };
  std::array<Lane, 2> lanes_;
  // SealLanes' per-entity sums of one window, per (level, attribution) slot;
  // all zero between uses.
  std::array<std::vector<WeekCounts>, kCreditSlots> scratch_;
  std::array<std::vector<EntityId>, kCreditSlots> scratch_touched_;
  std::unique_ptr<LaneWorker> worker_;  // created on first use, with apply_threads 2
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_AGGREGATE_AGGREGATES_H_
