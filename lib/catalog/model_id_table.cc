#include "lib/catalog/model_id_table.h"

#include <utility>

namespace hubmetrics {

ModelIdTable::ModelIdTable() : slots_(64) {}

std::optional<ModelIdx> ModelIdTable::FindLong(std::string_view id) const {
  auto it = long_ids_.find(absl::string_view(id.data(), id.size()));
  if (it == long_ids_.end()) return std::nullopt;
  return it->second;
}

void ModelIdTable::Insert(std::string_view id, ModelIdx m) {
  if (id.size() > kInlineBytes || id.empty()) {
    long_ids_.emplace(std::string(id), m);
    return;
  }
  if (2 * (inline_count_ + 1) > slots_.size()) Grow();
  const uint64_t h = Hash(id);
  Slot& s = EmptySlotFor(h);
  s.hash = h;
  s.index = m;
  s.len = static_cast<uint8_t>(id.size());
  std::memcpy(s.bytes, id.data(), id.size());
  ++inline_count_;
}

ModelIdTable::Slot& ModelIdTable::EmptySlotFor(uint64_t hash) {
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i].len != 0) i = (i + 1) & mask;
  return slots_[i];
}

void ModelIdTable::Grow() {
  std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(2 * slots_.size()));
  for (const Slot& s : old) {
    if (s.len != 0) EmptySlotFor(s.hash) = s;
  }
}

}  // namespace hubmetrics
