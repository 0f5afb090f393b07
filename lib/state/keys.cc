#include "lib/state/keys.h"

namespace hubmetrics::state_keys {

std::string EncodeFixed64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::optional<uint64_t> DecodeFixed64(std::string_view s) {
  if (s.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

void AppendDay(std::string* out, Day day) { AppendSortableDay(out, day); }

Day ReadDay(std::string_view b) { return ReadSortableDay(b); }

static void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

static uint64_t ReadBigEndian64(std::string_view b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

std::string DailyKey(std::string_view model_id, Day day) {
  std::string k;
  k.reserve(model_id.size() + 5);
  k.append(model_id);
  k.push_back('\0');
  AppendDay(&k, day);
  return k;
}

std::optional<std::pair<std::string, Day>> ParseDailyKey(std::string_view key) {
  if (key.size() < 6 || key[key.size() - 5] != '\0') return std::nullopt;
  return std::make_pair(std::string(key.substr(0, key.size() - 5)),
                        ReadDay(key.substr(key.size() - 4)));
}

std::string UniquePartKey(std::string_view model_id, Day day, int32_t partition) {
  std::string k;
  k.reserve(model_id.size() + 9);
  k.append(model_id);
  k.push_back('\0');
  AppendDay(&k, day);
  const auto u = static_cast<uint32_t>(partition);
  for (int shift = 24; shift >= 0; shift -= 8) k.push_back(static_cast<char>((u >> shift) & 0xff));
  return k;
}

std::optional<ParsedUniquePartKey> ParseUniquePartKey(std::string_view key) {
  // A model id is never empty and holds no NUL (IsValidModelId).
  if (key.size() < 10 || key[key.size() - 9] != '\0') return std::nullopt;
  uint32_t u = 0;
  for (size_t i = key.size() - 4; i < key.size(); ++i) u = (u << 8) | static_cast<uint8_t>(key[i]);
  return ParsedUniquePartKey{std::string(key.substr(0, key.size() - 9)),
                             ReadDay(key.substr(key.size() - 8, 4)), static_cast<int32_t>(u)};
}

std::string DedupKeyV1(Day day, uint64_t user_hash, std::string_view model_id) {
  std::string k;
  k.reserve(12 + model_id.size());
  AppendDay(&k, day);
  AppendBigEndian64(&k, user_hash);
  k.append(model_id);
  return k;
}

std::string DedupDayPrefix(Day day) {
  std::string k;
  AppendDay(&k, day);
  return k;
}

std::optional<StoredDedupKey> ParseDedupKeyV1(std::string_view key) {
  if (key.size() < 13) return std::nullopt;
  return StoredDedupKey{ReadDay(key.substr(0, 4)), ReadBigEndian64(key.substr(4, 8)),
                        key.substr(12)};
}

std::string DedupRecordKey(Day day, uint64_t seq) {
  std::string k;
  k.reserve(12);
  AppendDay(&k, day);
  AppendBigEndian64(&k, seq);
  return k;
}

std::optional<std::pair<Day, uint64_t>> ParseDedupRecordKey(std::string_view key) {
  if (key.size() != 12) return std::nullopt;
  return std::make_pair(ReadDay(key.substr(0, 4)), ReadBigEndian64(key.substr(4, 8)));
}

namespace {

void AppendVarint32(std::string* out, uint32_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool ReadVarint32(std::string_view* in, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace

void AppendDedupGroup(std::string* record, std::string_view model_id,
                      std::span<const uint64_t> user_hashes) {
  AppendVarint32(record, static_cast<uint32_t>(model_id.size()));
  record->append(model_id);
  AppendVarint32(record, static_cast<uint32_t>(user_hashes.size()));
  const size_t at = record->size();
  record->resize(at + 8 * user_hashes.size());
  char* p = record->data() + at;
  for (uint64_t h : user_hashes) {
    for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(h >> (8 * i));
  }
}

bool ForEachInDedupRecord(std::string_view record,
                          const std::function<void(std::string_view, uint64_t)>& fn) {
  while (!record.empty()) {
    uint32_t len = 0;
    uint32_t n = 0;
    if (!ReadVarint32(&record, &len) || len == 0 || record.size() < len) return false;
    const std::string_view model_id = record.substr(0, len);
    record.remove_prefix(len);
    if (!ReadVarint32(&record, &n) || record.size() / 8 < n) return false;
    for (uint32_t j = 0; j < n; ++j) {
      uint64_t h = 0;
      for (int i = 0; i < 8; ++i) h |= uint64_t{static_cast<uint8_t>(record[i])} << (8 * i);
      record.remove_prefix(8);
      fn(model_id, h);
    }
  }
  return true;
}

std::string DailyRecordKey(Day day, uint64_t seq) {
  std::string k;
  k.reserve(13);
  // A model id never starts with NUL: these keys cannot be DailyKey's.
  k.push_back('\0');
  AppendDay(&k, day);
  AppendBigEndian64(&k, seq);
  return k;
}

std::optional<std::pair<Day, uint64_t>> ParseDailyRecordKey(std::string_view key) {
  if (key.size() != 13 || key[0] != '\0') return std::nullopt;
  return std::make_pair(ReadDay(key.substr(1, 4)), ReadBigEndian64(key.substr(5, 8)));
}

void AppendDailyCount(std::string* record, std::string_view model_id, uint64_t count) {
  AppendVarint32(record, static_cast<uint32_t>(model_id.size()));
  record->append(model_id);
  for (int i = 0; i < 8; ++i) record->push_back(static_cast<char>(count >> (8 * i)));
}

bool ForEachInDailyRecord(std::string_view record,
                          const std::function<void(std::string_view, uint64_t)>& fn) {
  while (!record.empty()) {
    uint32_t len = 0;
    if (!ReadVarint32(&record, &len) || len == 0 || record.size() < size_t{len} + 8) return false;
    const std::string_view model_id = record.substr(0, len);
    record.remove_prefix(len);
    uint64_t count = 0;
    for (int i = 0; i < 8; ++i) count |= uint64_t{static_cast<uint8_t>(record[i])} << (8 * i);
    record.remove_prefix(8);
    fn(model_id, count);
  }
  return true;
}

}  // namespace hubmetrics::state_keys
