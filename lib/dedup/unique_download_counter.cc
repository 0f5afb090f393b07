#include "lib/dedup/unique_download_counter.h"

#include <algorithm>

namespace hubmetrics {

UniqueDownloadCounter::Set& UniqueDownloadCounter::SetOf(Day day) {
  auto [it, created] = days_.try_emplace(day);
  if (created) {
    // A day's set grows to about the size of the days before it: reserving
    // that once skips the rehashes of growing from empty, each a pass over
    // every slot with the cache misses of a set that no longer fits.
    size_t largest = 0;
    for (const auto& [d, set] : days_) largest = std::max(largest, set.size());
    it->second.reserve(largest);
  }
  return it->second;
}

bool UniqueDownloadCounter::Insert(Day day, ModelIdx model, uint64_t user_hash) {
  const bool inserted = SetOf(day).insert(Key{user_hash, model}).second;
  size_ += inserted ? 1 : 0;
  return inserted;
}

void UniqueDownloadCounter::InsertBatch(std::span<const Triple> triples,
                                        std::vector<uint8_t>* fresh) {
  // How many triples ahead the prefetch runs: enough to cover a cache miss
  // (~100 ns) with the inserts between, few enough to stay in L1.
  constexpr size_t kAhead = 16;
  fresh->resize(triples.size());
  // The set of the day last looked up, for the prefetch and the insert cursor
  // each (std::map nodes do not move).
  struct DaySet {
    Day day = 0;
    Set* set = nullptr;
  };
  auto set_of = [this](DaySet& c, Day day) -> Set& {
    if (c.set == nullptr || c.day != day) c = DaySet{day, &SetOf(day)};
    return *c.set;
  };
  DaySet ahead, at;
  const size_t n = triples.size();
  for (size_t i = 0; i < std::min(kAhead, n); ++i) {
    set_of(ahead, triples[i].day).prefetch(Key{triples[i].user_hash, triples[i].model});
  }
  size_t added = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      const Triple& t = triples[i + kAhead];
      set_of(ahead, t.day).prefetch(Key{t.user_hash, t.model});
    }
    const Triple& t = triples[i];
    const bool inserted = set_of(at, t.day).insert(Key{t.user_hash, t.model}).second;
    (*fresh)[i] = inserted ? 1 : 0;
    added += inserted ? 1 : 0;
  }
  size_ += added;
}

bool UniqueDownloadCounter::Contains(Day day, ModelIdx model, uint64_t user_hash) const {
  auto it = days_.find(day);
  return it != days_.end() && it->second.contains(Key{user_hash, model});
}

std::vector<std::pair<Day, ModelIdx>> UniqueDownloadCounter::ModelDaysBefore(Day day) const {
  std::vector<std::pair<Day, ModelIdx>> out;
  for (auto it = days_.begin(); it != days_.end() && it->first < day; ++it) {
    absl::flat_hash_set<ModelIdx> models;
    for (const Key& k : it->second) {
      if (models.insert(k.model).second) out.emplace_back(it->first, k.model);
    }
  }
  return out;
}

void UniqueDownloadCounter::DropDaysBefore(Day day) {
  for (auto it = days_.begin(); it != days_.end() && it->first < day;) {
    size_ -= it->second.size();
    it = days_.erase(it);
  }
}

}  // namespace hubmetrics
