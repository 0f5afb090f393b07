#include "lib/dedup/unique_download_counter.h"

namespace hubmetrics {

bool UniqueDownloadCounter::Insert(Day day, ModelIdx model, uint64_t user_hash) {
  const bool inserted = days_[day].insert(Key{user_hash, model}).second;
  size_ += inserted ? 1 : 0;
  return inserted;
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
