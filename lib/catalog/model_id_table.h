// ModelIdTable: model id -> ModelIdx for the ids an ingest thread has already
// interned, laid out for the lookup every event makes.
//
// Ids of up to kInlineBytes bytes (almost all Hub ids) are stored in the
// table's 64-byte slots next to their hash and index, so a lookup reads one
// cache line; longer ids go to a node map. A std::string-keyed hash map
// reads the slot and then the string's heap buffer: two cache misses per
// event for every model outside the cache, a quarter of the ingest thread.
//
// Thread safety: none; one thread owns a table.
#ifndef HUBMETRICS_LIB_CATALOG_MODEL_ID_TABLE_H_
#define HUBMETRICS_LIB_CATALOG_MODEL_ID_TABLE_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "lib/catalog/catalog.h"

namespace hubmetrics {

class ModelIdTable {
 public:
  // Ids longer than this are kept out of line.
  static constexpr size_t kInlineBytes = 51;

  ModelIdTable();

  // The index stored for `id`, or nullopt.
  std::optional<ModelIdx> Find(std::string_view id) const {
    if (id.size() > kInlineBytes || id.empty()) return FindLong(id);
    const uint64_t h = Hash(id);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.len == 0) return std::nullopt;
      if (s.hash == h && s.len == id.size() && std::memcmp(s.bytes, id.data(), id.size()) == 0) {
        return s.index;
      }
    }
  }

  // Stores id -> m. `id` must not be in the table.
  void Insert(std::string_view id, ModelIdx m);

  size_t size() const { return inline_count_ + long_ids_.size(); }

 private:
  struct alignas(64) Slot {
    uint64_t hash = 0;
    ModelIdx index = 0;
    uint8_t len = 0;  // 0: empty (model ids are never empty)
    char bytes[kInlineBytes];
  };
  static_assert(sizeof(Slot) == 64);

  static uint64_t Hash(std::string_view id) {
    return absl::Hash<absl::string_view>{}(absl::string_view(id.data(), id.size()));
  }
  std::optional<ModelIdx> FindLong(std::string_view id) const;
  // The first empty slot on the probe sequence of `hash`.
  Slot& EmptySlotFor(uint64_t hash);
  void Grow();

  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t inline_count_ = 0;
  absl::flat_hash_map<std::string, ModelIdx> long_ids_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_CATALOG_MODEL_ID_TABLE_H_
