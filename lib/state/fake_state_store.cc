#include "lib/state/keys.h"
#include "lib/state/state_store.h"

namespace hubmetrics {

absl::StatusOr<StoredState> FakeStateStore::Load() {
  StoredState out;
  out.watermark_micros = watermark_;
  out.partition_watermarks_micros = partition_watermarks_;
  out.dedup_floor = dedup_floor_;
  out.counters = counters_;
  for (const auto& [id, m] : catalog_) out.catalog.push_back(m);
  for (const auto& [key, count] : daily_)
    out.daily_counts.push_back({key.first, key.second, count});
  out.offsets = offsets_;
  out.user_hash_key_fingerprint = user_hash_key_fingerprint_;
  for (const auto& [key, count] : parts_) {
    out.unique_parts.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), count});
  }
  for (const auto& [p, progress] : progress_) out.partition_progress.push_back(progress);
  out.role = role_;
  return out;
}

absl::Status FakeStateStore::ForEachDedupKey(Day from_day,
                                             const std::function<void(const StoredDedupKey&)>& fn) {
  for (auto it = dedup_.lower_bound({from_day, 0, ""}); it != dedup_.end(); ++it) {
    fn({std::get<0>(it->first), std::get<1>(it->first), std::get<2>(it->first)});
  }
  return absl::OkStatus();
}

absl::Status FakeStateStore::Commit(const StateCommit& c) {
  if (fail_commits_ > 0) {
    --fail_commits_;
    return fail_status_;
  }
  for (const auto& [day, record] : c.dedup_records) {
    if (!state_keys::ForEachInDedupRecord(record, [](std::string_view, uint64_t) {})) {
      return absl::InvalidArgumentError("malformed dedup record");
    }
  }
  for (const auto& [day, record] : c.daily_records) {
    if (!state_keys::ForEachInDailyRecord(record, [](std::string_view, uint64_t) {})) {
      return absl::InvalidArgumentError("malformed daily record");
    }
  }
  ++commits_;
  if (c.drop_dedup_before) {
    dedup_.erase(dedup_.begin(), dedup_.lower_bound({*c.drop_dedup_before, 0, ""}));
    dedup_floor_ = c.drop_dedup_before;
  }
  for (const auto& g : c.dedup_groups) {
    for (uint64_t h : g.user_hashes) dedup_[{g.day, h, g.model_id}] = true;
  }
  for (const auto& [day, record] : c.dedup_records) {
    state_keys::ForEachInDedupRecord(record, [&, day = day](std::string_view model_id, uint64_t h) {
      dedup_[{day, h, std::string(model_id)}] = true;
    });
  }
  for (const auto& d : c.daily_counts) daily_[{d.model_id, d.day}] = d.count;
  for (const auto& [day, record] : c.daily_records) {
    // Counts of a (model, day) in several records add up, as the RocksDB store loads them.
    state_keys::ForEachInDailyRecord(record, [&, day = day](std::string_view model_id, uint64_t n) {
      daily_[{std::string(model_id), day}] += n;
    });
  }
  for (const auto& m : c.catalog_puts) catalog_[m.model_id()] = m;
  for (const auto& id : c.catalog_deletes) catalog_.erase(id);
  for (const auto& [source, offset] : c.offsets) offsets_[source] = offset;
  if (c.watermark_micros) watermark_ = c.watermark_micros;
  for (const auto& [p, w] : c.partition_watermarks_micros) partition_watermarks_[p] = w;
  if (c.counters) counters_ = *c.counters;
  if (c.user_hash_key_fingerprint) user_hash_key_fingerprint_ = c.user_hash_key_fingerprint;
  for (const auto& u : c.unique_parts) parts_[{u.model_id, u.day, u.partition}] = u.count;
  for (const auto& p : c.partition_progress) progress_[p.partition()] = p;
  if (c.role) role_ = c.role;
  return absl::OkStatus();
}

}  // namespace hubmetrics
