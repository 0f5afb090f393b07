// The model catalog: who developed a model, where, when it was created and
// what it derives from — and the rules of docs/DEFINITIONS.md that turn those
// records into credit (developer, country, rolling filter, attribution root).
//
// Models are interned to dense ModelIdx by ModelRegistry; a model gets an
// index the first time it is named anywhere (an event, a record, a
// base_model), whether or not it has a catalog record. Indices live in memory
// only: stored state is keyed by model id (see lib/state).
//
// Thread safety: neither class is thread-safe; the engine serializes access.
#ifndef HUBMETRICS_LIB_CATALOG_CATALOG_H_
#define HUBMETRICS_LIB_CATALOG_CATALOG_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "lib/time/time.h"
#include "lib/views/views.h"
#include "proto/hubmetrics/v1/events.pb.h"

namespace hubmetrics {

using ModelIdx = uint32_t;

class ModelRegistry {
 public:
  // The index of `model_id`, assigning the next one if it is new.
  ModelIdx Intern(std::string_view model_id);
  std::optional<ModelIdx> Find(std::string_view model_id) const;
  // Valid for every index returned so far, for the registry's lifetime.
  const std::string& Name(ModelIdx m) const { return names_[m]; }
  size_t size() const { return names_.size(); }

 private:
  std::deque<std::string> names_;  // deque: references stay valid as it grows
  absl::flat_hash_map<std::string_view, ModelIdx> index_;
};

// Longest base_model chain followed for recursive attribution.
inline constexpr int kMaxAttributionDepth = 32;

class Catalog {
 public:
  // `registry` is not owned and must outlive the catalog.
  explicit Catalog(ModelRegistry* registry) : registry_(registry) {}

  // Replaces the record of info.model_id() (the caller validated it).
  void Put(const v1::ModelInfo& info);
  // Removes the record of `m`, if any (a tombstone).
  void Remove(ModelIdx m);
  const v1::ModelInfo* Find(ModelIdx m) const;
  size_t size() const { return records_count_; }

  // Every model whose credit may change when the record of `m` changes: `m`
  // itself and every model whose base_model chain passes through `m`, sorted.
  std::vector<ModelIdx> AffectedBy(ModelIdx m) const;

  // Recursive attribution: follow base_model from `m` until a model with no
  // base_model or no catalog record; that model is the root. On a cycle, or
  // when more than kMaxAttributionDepth links would be needed, `m` itself.
  ModelIdx Root(ModelIdx m) const;
  // The entity of `level` for a download credited to `m` (its row of
  // LevelTable() applied to m's record).
  std::string Entity(Level level, ModelIdx m) const;
  std::string Developer(ModelIdx m) const { return Entity(Level::kDeveloper, m); }
  std::string Country(ModelIdx m) const { return Entity(Level::kCountry, m); }
  // Grows with every Put and Remove: what was derived from the records
  // before may be stale once it has moved.
  uint64_t version() const { return version_; }
  // Day of created_at; nullopt when unknown (the model counts in no rolling_1y view).
  std::optional<Day> CreatedDay(ModelIdx m) const;

 private:
  struct Record {
    v1::ModelInfo info;
    std::optional<ModelIdx> base;
    std::optional<Day> created_day;
  };
  void Unlink(ModelIdx m);

  ModelRegistry* registry_;
  std::vector<std::optional<Record>> records_;  // by ModelIdx
  size_t records_count_ = 0;
  uint64_t version_ = 0;
  // base model -> models whose record names it as base_model.
  absl::flat_hash_map<ModelIdx, absl::flat_hash_set<ModelIdx>> children_;
};

// Whether a download of a model created on `created_day` (if known) on `day`
// counts in the rolling_1y filter: 0 <= day - created_day <= 365.
inline bool InRollingYear(std::optional<Day> created_day, Day day) {
  return created_day.has_value() && day >= *created_day && day - *created_day <= 365;
}

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_CATALOG_CATALOG_H_
