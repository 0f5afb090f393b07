// Which (model, user, UTC day) triples have been counted: the in-memory side
// of deduplication. Durability is the engine's job (it writes each new triple
// to the state store in the same commit as the count it produced, and loads
// them back here on start).
//
// Only days that can still receive events are kept: the engine drops days
// older than the lateness horizon (events for them are rejected as too_late).
//
// Thread safety: not thread-safe; owned by the single ingest thread.
#ifndef HUBMETRICS_LIB_DEDUP_UNIQUE_DOWNLOAD_COUNTER_H_
#define HUBMETRICS_LIB_DEDUP_UNIQUE_DOWNLOAD_COUNTER_H_

#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "lib/catalog/catalog.h"
#include "lib/time/time.h"

namespace hubmetrics {

class UniqueDownloadCounter {
 public:
  // True if (day, model, user) was not seen before; records it either way.
  bool Insert(Day day, ModelIdx model, uint64_t user_hash);
  bool Contains(Day day, ModelIdx model, uint64_t user_hash) const;

  struct Triple {
    Day day;
    ModelIdx model;
    uint64_t user_hash;
  };
  // Insert() of every triple in order: (*fresh)[i] is 1 if triples[i] was not
  // seen before (nor earlier in `triples`), else 0; `fresh` is resized to
  // triples.size(). The same as Insert() one by one, but faster once the sets
  // outgrow the caches: the slots of later triples are prefetched while
  // earlier ones are inserted.
  void InsertBatch(std::span<const Triple> triples, std::vector<uint8_t>* fresh);
  // Forgets every day before `day`.
  void DropDaysBefore(Day day);
  // The distinct (day, model) pairs held for days before `day`, by day.
  std::vector<std::pair<Day, ModelIdx>> ModelDaysBefore(Day day) const;
  // Triples held, over all days.
  size_t size() const { return size_; }

 private:
  struct Key {
    uint64_t user_hash;
    ModelIdx model;
    friend bool operator==(const Key& a, const Key& b) {
      return a.user_hash == b.user_hash && a.model == b.model;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.user_hash, k.model);
    }
  };
  using Set = absl::flat_hash_set<Key>;
  // The set of `day`, created if needed.
  Set& SetOf(Day day);
  std::map<Day, Set> days_;
  size_t size_ = 0;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_DEDUP_UNIQUE_DOWNLOAD_COUNTER_H_
