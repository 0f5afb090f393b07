// Key and value encodings of the RocksDB state (see state_store.h for the
// stored format). Exposed for the store and its tests only.
#ifndef HUBMETRICS_LIB_STATE_KEYS_H_
#define HUBMETRICS_LIB_STATE_KEYS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lib/state/state_store.h"

namespace hubmetrics::state_keys {

std::string EncodeFixed64(uint64_t v);  // little-endian
std::optional<uint64_t> DecodeFixed64(std::string_view s);

// Day as 4 big-endian bytes with the sign bit flipped (sorts numerically).
void AppendDay(std::string* out, Day day);
Day ReadDay(std::string_view four_bytes);

// Format version 2's daily key, one per (model, day); still read.
std::string DailyKey(std::string_view model_id, Day day);
std::optional<std::pair<std::string, Day>> ParseDailyKey(std::string_view key);

// Daily records (format version 3): 0x00 day(4) seq(8 big-endian), every
// count of one closed day that one commit stored.
std::string DailyRecordKey(Day day, uint64_t seq);
std::optional<std::pair<Day, uint64_t>> ParseDailyRecordKey(std::string_view key);
// Appends one model's count to a daily record value.
void AppendDailyCount(std::string* record, std::string_view model_id, uint64_t count);
// Calls fn(model_id, count) for every count of a daily record value; false if
// it is malformed (fn may have been called for a prefix).
bool ForEachInDailyRecord(std::string_view record,
                          const std::function<void(std::string_view, uint64_t)>& fn);

// CF "parts": model_id 0x00 day(4) partition(4 big-endian).
std::string UniquePartKey(std::string_view model_id, Day day, int32_t partition);
struct ParsedUniquePartKey {
  std::string model_id;
  Day day;
  int32_t partition;
};
std::optional<ParsedUniquePartKey> ParseUniquePartKey(std::string_view key);

// Dedup records (format version 2).
std::string DedupRecordKey(Day day, uint64_t seq);
// The smallest dedup key of `day` (for range deletes and scans).
std::string DedupDayPrefix(Day day);
std::optional<std::pair<Day, uint64_t>> ParseDedupRecordKey(std::string_view key);
// Appends one model's group to a record value.
void AppendDedupGroup(std::string* record, std::string_view model_id,
                      std::span<const uint64_t> user_hashes);
// Calls fn(model_id, user_hash) for every pair of a record value; false if it
// is malformed (fn may have been called for a prefix).
bool ForEachInDedupRecord(std::string_view record,
                          const std::function<void(std::string_view, uint64_t)>& fn);

// Format version 1's dedup key (one per triple), for the conversion only.
std::string DedupKeyV1(Day day, uint64_t user_hash, std::string_view model_id);
std::optional<StoredDedupKey> ParseDedupKeyV1(std::string_view key);

}  // namespace hubmetrics::state_keys

#endif  // HUBMETRICS_LIB_STATE_KEYS_H_
