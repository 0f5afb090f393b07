#include <sys/statvfs.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/base/log.h"
#include "lib/state/keys.h"
#include "lib/state/state_store.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/options_util.h"
#include "rocksdb/write_batch.h"

namespace hubmetrics {
namespace {

constexpr const char* kFormatVersion = "3";
const std::string kPartitionWatermarkPrefix = "watermark:";
const std::string kProgressPrefix = "progress:";
// "parts" came after format version 2 without a bump: create_missing_column_families
// adds it to older states (empty), and every name here is opened.
const std::string kCfNames[] = {
    rocksdb::kDefaultColumnFamilyName, "meta", "catalog", "daily", "dedup", "offsets", "parts"};
enum Cf { kDefault = 0, kMeta, kCatalog, kDaily, kDedup, kOffsets, kParts, kNumCfs };

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat(msg, " (is another hubmetricsd running on this --state_dir?)"));
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kSpaceLimit) {
    return absl::ResourceExhaustedError(absl::StrCat(msg, " (the state's disk is full)"));
  }
  if (s.IsIOError()) return absl::UnavailableError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

// rocksdb::Status to absl::Status early return (this file only).
#define RETURN_IF_ROCKS(expr, what)                     \
  do {                                                  \
    rocksdb::Status hm_rs_ = (expr);                    \
    if (!hm_rs_.ok()) return FromRocks(hm_rs_, (what)); \
  } while (false)

// RocksDB's own messages (warnings and errors) go to hubmetricsd's log, not
// to a LOG file in the state directory: an operator sees them where the
// daemon's other messages are (a corrupt WAL, a failed flush), and a full
// disk cannot break the logging itself (Debian's RocksDB, built with
// assertions, aborted the process when its LOG file had failed to write
// before).
class ForwardingLogger final : public rocksdb::Logger {
 public:
  explicit ForwardingLogger(rocksdb::InfoLogLevel level) : rocksdb::Logger(level) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[2048];
    // The format is RocksDB's own, passed through its printf-style interface.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat-nonliteral"
#endif
    std::vsnprintf(buf, sizeof buf, format, ap);
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      LogError("rocksdb: %s", buf);
    } else if (level >= rocksdb::InfoLogLevel::WARN_LEVEL) {
      LogWarning("rocksdb: %s", buf);
    } else {
      LogInfo("rocksdb: %s", buf);
    }
  }
};

class RocksDbStateStore final : public StateStore {
 public:
  RocksDbStateStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> cfs,
                    RocksDbStateOptions options, std::string directory, std::string recovery_loss)
      : db_(std::move(db)),
        cfs_(std::move(cfs)),
        options_(options),
        directory_(std::move(directory)),
        recovery_loss_(std::move(recovery_loss)) {}

  ~RocksDbStateStore() override {
    for (auto* cf : cfs_) db_->DestroyColumnFamilyHandle(cf);
    db_->Close();
  }

  absl::Status CheckFormat() {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta], "format_version", &v);
    if (s.IsNotFound()) {
      return FromRocks(db_->Put(WriteOptions(), cfs_[kMeta], "format_version", kFormatVersion),
                       "writing format_version");
    }
    RETURN_IF_ROCKS(s, "reading format_version");
    if (v == "1") return ConvertFromVersion1();
    if (v == "2") {
      // Version 3 reads version 2's daily keys as they are: nothing to rewrite.
      RETURN_IF_ROCKS(db_->Put(WriteOptions(), cfs_[kMeta], "format_version", kFormatVersion),
                      "writing format_version");
      LogInfo(
          "state in %s converted from format version 2 to 3 (daily counts of the days "
          "closed from now on are stored one record per day)",
          directory_);
      return absl::OkStatus();
    }
    if (v != kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state in ", directory_, " has format_version ", v, "; this hubmetricsd reads ",
          kFormatVersion, ". Use a matching hubmetricsd or a new --state_dir."));
    }
    return absl::OkStatus();
  }

  // Version 1 kept one dedup key per triple; version 2 packs them into
  // records (and version 3 reads its daily keys as version 2 does). One
  // WriteBatch: a crash leaves version 1 untouched.
  absl::Status ConvertFromVersion1() {
    rocksdb::WriteBatch batch;
    std::map<Day, std::map<std::string, std::vector<uint64_t>, std::less<>>> days;
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kDedup]));
    size_t keys = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      auto k = state_keys::ParseDedupKeyV1(key);
      if (!k) return absl::DataLossError("malformed version-1 dedup key");
      days[k->day][std::string(k->model_id)].push_back(k->user_hash);
      RETURN_IF_ROCKS(batch.Delete(cfs_[kDedup], it->key()), "batching dedup conversion");
      ++keys;
    }
    RETURN_IF_ROCKS(it->status(), "scanning version-1 dedup keys");
    uint64_t seq = 0;
    for (const auto& [day, models] : days) {
      std::string record;
      for (const auto& [model, hashes] : models) {
        state_keys::AppendDedupGroup(&record, model, hashes);
      }
      RETURN_IF_ROCKS(batch.Put(cfs_[kDedup], state_keys::DedupRecordKey(day, seq++), record),
                      "batching dedup conversion");
    }
    RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "dedup_seq", state_keys::EncodeFixed64(seq)),
                    "batching dedup conversion");
    // Version 2 reads daily records only for days before dedup_floor (the
    // others are counted from their triples). Version 1 kept every triple of
    // the days from its oldest remaining one on; before that, days were closed.
    std::optional<Day> floor;
    if (!days.empty()) {
      floor = days.begin()->first;
    } else {
      std::unique_ptr<rocksdb::Iterator> daily(db_->NewIterator(ro, cfs_[kDaily]));
      for (daily->SeekToFirst(); daily->Valid(); daily->Next()) {
        auto key =
            state_keys::ParseDailyKey(std::string_view(daily->key().data(), daily->key().size()));
        if (!key) return absl::DataLossError("malformed daily count record");
        floor = std::max(floor.value_or(key->second + 1), key->second + 1);
      }
      RETURN_IF_ROCKS(daily->status(), "scanning daily counts");
    }
    if (floor) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "dedup_floor",
                                state_keys::EncodeFixed64(static_cast<uint32_t>(*floor))),
                      "batching dedup conversion");
    }
    RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "format_version", kFormatVersion),
                    "batching dedup conversion");
    RETURN_IF_ROCKS(db_->Write(WriteOptions(), &batch),
                    absl::StrCat("converting state to format version ", kFormatVersion));
    LogInfo("state in %s converted from format version 1 to %s (%d dedup keys)", directory_,
            kFormatVersion, keys);
    return absl::OkStatus();
  }

  absl::StatusOr<StoredState> Load() override {
    StoredState out;
    rocksdb::ReadOptions ro;
    std::string v;
    rocksdb::Status s = db_->Get(ro, cfs_[kMeta], "dedup_seq", &v);
    if (s.ok()) {
      auto seq = state_keys::DecodeFixed64(v);
      if (!seq) return absl::DataLossError("stored dedup_seq is not 8 bytes");
      next_dedup_seq_ = *seq;
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading dedup_seq");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kMeta]));
      for (it->Seek(kPartitionWatermarkPrefix);
           it->Valid() && it->key().starts_with(kPartitionWatermarkPrefix); it->Next()) {
        int32_t partition = 0;
        auto w =
            state_keys::DecodeFixed64(std::string_view(it->value().data(), it->value().size()));
        if (!absl::SimpleAtoi(
                absl::string_view(it->key().data() + kPartitionWatermarkPrefix.size(),
                                  it->key().size() - kPartitionWatermarkPrefix.size()),
                &partition) ||
            !w) {
          return absl::DataLossError("malformed partition watermark record");
        }
        out.partition_watermarks_micros[partition] = static_cast<int64_t>(*w);
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning partition watermarks");
    }
    s = db_->Get(ro, cfs_[kMeta], "dedup_floor", &v);
    if (s.ok()) {
      auto floor = state_keys::DecodeFixed64(v);
      if (!floor) return absl::DataLossError("stored dedup_floor is not 8 bytes");
      out.dedup_floor = static_cast<Day>(static_cast<uint32_t>(*floor));
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading dedup_floor");
    }
    s = db_->Get(ro, cfs_[kMeta], "watermark", &v);
    if (s.ok()) {
      auto w = state_keys::DecodeFixed64(v);
      if (!w) return absl::DataLossError("stored watermark is not 8 bytes");
      out.watermark_micros = static_cast<int64_t>(*w);
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading watermark");
    }
    s = db_->Get(ro, cfs_[kMeta], "user_hash_key_fingerprint", &v);
    if (s.ok()) {
      auto f = state_keys::DecodeFixed64(v);
      if (!f) return absl::DataLossError("stored user_hash_key_fingerprint is not 8 bytes");
      out.user_hash_key_fingerprint = *f;
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading user_hash_key_fingerprint");
    }
    s = db_->Get(ro, cfs_[kMeta], "role", &v);
    if (s.ok()) {
      out.role = v;
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading role");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kMeta]));
      for (it->Seek(kProgressPrefix); it->Valid() && it->key().starts_with(kProgressPrefix);
           it->Next()) {
        int32_t partition = 0;
        v1::PartitionProgress progress;
        if (!absl::SimpleAtoi(absl::string_view(it->key().data() + kProgressPrefix.size(),
                                                it->key().size() - kProgressPrefix.size()),
                              &partition) ||
            !progress.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
            progress.partition() != partition) {
          return absl::DataLossError(
              absl::StrCat("malformed partition progress record ", it->key().ToString()));
        }
        out.partition_progress.push_back(std::move(progress));
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning partition progress");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kParts]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        auto key =
            state_keys::ParseUniquePartKey(std::string_view(it->key().data(), it->key().size()));
        auto count =
            state_keys::DecodeFixed64(std::string_view(it->value().data(), it->value().size()));
        if (!key || !count) return absl::DataLossError("malformed unique part record");
        out.unique_parts.push_back({std::move(key->model_id), key->day, key->partition, *count});
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning unique parts");
    }
    s = db_->Get(ro, cfs_[kMeta], "counters", &v);
    if (s.ok()) {
      if (!out.counters.ParseFromString(v))
        return absl::DataLossError("stored counters do not parse");
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading counters");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kCatalog]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        v1::ModelInfo m;
        if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
          return absl::DataLossError(
              absl::StrCat("catalog record ", it->key().ToString(), " does not parse"));
        }
        out.catalog.push_back(std::move(m));
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning catalog");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kDaily]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const std::string_view k(it->key().data(), it->key().size());
        const std::string_view value(it->value().data(), it->value().size());
        if (auto record = state_keys::ParseDailyRecordKey(k)) {
          const Day day = record->first;
          if (!state_keys::ForEachInDailyRecord(value, [&](std::string_view model, uint64_t n) {
                out.daily_counts.push_back({std::string(model), day, n});
              })) {
            return absl::DataLossError(absl::StrCat("malformed daily record of day ",
                                                    FormatRfc3339(StartOfDay(day)).substr(0, 10)));
          }
          continue;
        }
        auto key = state_keys::ParseDailyKey(k);
        auto count = state_keys::DecodeFixed64(value);
        if (!key || !count) return absl::DataLossError("malformed daily count record");
        out.daily_counts.push_back({std::move(key->first), key->second, *count});
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning daily counts");
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kOffsets]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        auto off =
            state_keys::DecodeFixed64(std::string_view(it->value().data(), it->value().size()));
        if (!off) return absl::DataLossError("malformed offset record");
        out.offsets[it->key().ToString()] = static_cast<int64_t>(*off);
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning offsets");
    }
    return out;
  }

  absl::Status ForEachDedupKey(Day from_day,
                               const std::function<void(const StoredDedupKey&)>& fn) override {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kDedup]));
    for (it->Seek(state_keys::DedupDayPrefix(from_day)); it->Valid(); it->Next()) {
      auto key =
          state_keys::ParseDedupRecordKey(std::string_view(it->key().data(), it->key().size()));
      if (!key) return absl::DataLossError("malformed dedup record key");
      const Day day = key->first;
      if (!state_keys::ForEachInDedupRecord(
              std::string_view(it->value().data(), it->value().size()),
              [&](std::string_view model_id, uint64_t h) {
                fn({day, h, model_id});
              })) {
        return absl::DataLossError("malformed dedup record");
      }
    }
    return FromRocks(it->status(), "scanning dedup records");
  }

  absl::Status Commit(const StateCommit& c) override {
    rocksdb::WriteBatch batch;
    uint64_t next_seq = next_dedup_seq_;
    if (c.drop_dedup_before) {
      RETURN_IF_ROCKS(batch.DeleteRange(cfs_[kDedup], state_keys::DedupDayPrefix(INT32_MIN),
                                        state_keys::DedupDayPrefix(*c.drop_dedup_before)),
                      "dropping old dedup days");
      RETURN_IF_ROCKS(
          batch.Put(cfs_[kMeta], "dedup_floor",
                    state_keys::EncodeFixed64(static_cast<uint32_t>(*c.drop_dedup_before))),
          "batching dedup_floor");
    }
    if (!c.dedup_groups.empty() || !c.dedup_records.empty()) {
      uint64_t seq = next_dedup_seq_;
      if (!c.dedup_groups.empty()) {
        // One record per day.
        std::map<Day, std::string> records;
        for (const StoredDedupGroup& g : c.dedup_groups) {
          state_keys::AppendDedupGroup(&records[g.day], g.model_id, g.user_hashes);
        }
        for (const auto& [day, record] : records) {
          RETURN_IF_ROCKS(batch.Put(cfs_[kDedup], state_keys::DedupRecordKey(day, seq++), record),
                          "batching dedup record");
        }
      }
      for (const auto& [day, record] : c.dedup_records) {
        RETURN_IF_ROCKS(batch.Put(cfs_[kDedup], state_keys::DedupRecordKey(day, seq++), record),
                        "batching dedup record");
      }
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "dedup_seq", state_keys::EncodeFixed64(seq)),
                      "batching dedup_seq");
      next_seq = seq;
    }
    if (!c.daily_counts.empty()) {
      // One record per day: a key and a memtable insert per (model, day)
      // took a quarter of a replay's apply thread.
      std::map<Day, std::string> records;
      for (const auto& d : c.daily_counts) {
        state_keys::AppendDailyCount(&records[d.day], d.model_id, d.count);
      }
      for (const auto& [day, record] : records) {
        RETURN_IF_ROCKS(
            batch.Put(cfs_[kDaily], state_keys::DailyRecordKey(day, next_seq++), record),
            "batching daily record");
      }
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "dedup_seq", state_keys::EncodeFixed64(next_seq)),
                      "batching dedup_seq");
    }
    if (!c.daily_records.empty()) {
      for (const auto& [day, record] : c.daily_records) {
        // A record that would not load would make the whole state unloadable.
        if (!state_keys::ForEachInDailyRecord(record, [](std::string_view, uint64_t) {})) {
          return absl::InvalidArgumentError("malformed daily record; nothing committed");
        }
        RETURN_IF_ROCKS(
            batch.Put(cfs_[kDaily], state_keys::DailyRecordKey(day, next_seq++), record),
            "batching daily record");
      }
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "dedup_seq", state_keys::EncodeFixed64(next_seq)),
                      "batching dedup_seq");
    }
    for (const auto& m : c.catalog_puts) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kCatalog], m.model_id(), m.SerializeAsString()),
                      "batching catalog");
    }
    for (const auto& id : c.catalog_deletes) {
      RETURN_IF_ROCKS(batch.Delete(cfs_[kCatalog], id), "batching catalog delete");
    }
    for (const auto& [source, offset] : c.offsets) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kOffsets], source,
                                state_keys::EncodeFixed64(static_cast<uint64_t>(offset))),
                      "batching offset");
    }
    if (c.watermark_micros) {
      RETURN_IF_ROCKS(
          batch.Put(cfs_[kMeta], "watermark",
                    state_keys::EncodeFixed64(static_cast<uint64_t>(*c.watermark_micros))),
          "batching watermark");
    }
    for (const auto& [partition, micros] : c.partition_watermarks_micros) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], absl::StrCat(kPartitionWatermarkPrefix, partition),
                                state_keys::EncodeFixed64(static_cast<uint64_t>(micros))),
                      "batching partition watermark");
    }
    if (c.counters) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "counters", c.counters->SerializeAsString()),
                      "batching counters");
    }
    if (c.user_hash_key_fingerprint) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "user_hash_key_fingerprint",
                                state_keys::EncodeFixed64(*c.user_hash_key_fingerprint)),
                      "batching user_hash_key_fingerprint");
    }
    for (const auto& u : c.unique_parts) {
      RETURN_IF_ROCKS(
          batch.Put(cfs_[kParts], state_keys::UniquePartKey(u.model_id, u.day, u.partition),
                    state_keys::EncodeFixed64(u.count)),
          "batching unique part");
    }
    for (const auto& p : c.partition_progress) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], absl::StrCat(kProgressPrefix, p.partition()),
                                p.SerializeAsString()),
                      "batching partition progress");
    }
    if (c.role) {
      RETURN_IF_ROCKS(batch.Put(cfs_[kMeta], "role", *c.role), "batching role");
    }
    RETURN_IF_ROCKS(db_->Write(WriteOptions(), &batch), "committing state");
    next_dedup_seq_ = next_seq;
    return absl::OkStatus();
  }

  absl::Status Recover() override { return FromRocks(db_->Resume(), "resuming writes"); }

  absl::StatusOr<uint64_t> FreeBytes() const override {
    struct statvfs st;
    if (::statvfs(directory_.c_str(), &st) != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot read free space of ", directory_, ": ", std::strerror(errno)));
    }
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

  std::string RecoveryLoss() const override { return recovery_loss_; }

  uint64_t MemoryBytes() const override {
    uint64_t memtables = 0;
    uint64_t cache = 0;
    db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
    // One cache serves every column family: asked once, not summed.
    db_->GetIntProperty(rocksdb::DB::Properties::kBlockCacheUsage, &cache);
    return memtables + cache;
  }

  uint64_t DiskBytes() const override {
    // RocksDB deletes obsolete files in the background: a file listed and
    // gone before its size is read counts nothing (file_size would return
    // -1), and a listing error ends the walk instead of throwing.
    uint64_t total = 0;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(directory_, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code gone;
      if (!it->is_regular_file(gone)) continue;
      const uintmax_t size = it->file_size(gone);
      if (!gone) total += size;
    }
    return total;
  }

 private:
  rocksdb::WriteOptions WriteOptions() const {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync_commits;
    return wo;
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  RocksDbStateOptions options_;
  std::string directory_;
  std::string recovery_loss_;
  uint64_t next_dedup_seq_ = 0;  // loaded by Load(); advanced by Commit()
};

}  // namespace

bool StateExists(const std::string& directory) {
  std::error_code ec;
  return std::filesystem::exists(directory + "/rocksdb/CURRENT", ec);
}

absl::StatusOr<std::unique_ptr<StateStore>> OpenRocksDbStateStore(
    const std::string& directory, const RocksDbStateOptions& options) {
  std::error_code ec;
  const bool created = std::filesystem::create_directories(directory, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create state directory ", directory, ": ", ec.message()));
  }
  namespace fs = std::filesystem;
  if (created) {
    fs::permissions(directory, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot make state directory ", directory, " private: ", ec.message()));
    }
  } else if (const fs::perms p = fs::status(directory, ec).permissions();
             !ec && (p & (fs::perms::group_all | fs::perms::others_all)) != fs::perms::none) {
    LogWarning(
        "state directory %s may be entered by other users; 'chmod 700 %s' keeps the "
        "state private",
        directory, directory);
  }
  // RocksDB logs an error when its directory is missing, even though it then creates it: made
  // here, a first start logs nothing alarming.
  fs::create_directory(directory + "/rocksdb", ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", directory, "/rocksdb: ", ec.message()));
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.info_log = std::make_shared<ForwardingLogger>(rocksdb::WARN_LEVEL);
  db_options.max_total_wal_size = options.max_wal_bytes;
  db_options.db_write_buffer_size = options.memtable_budget_bytes;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.compression = rocksdb::kNoCompression;
  for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
    if (t == rocksdb::kLZ4Compression) cf_options.compression = t;
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : kCfNames) descriptors.emplace_back(name, cf_options);
  // The daily counts are written in bulk (a count for every model of a day
  // leaving dedup) and read only by whole scans when the state loads: a
  // vector memtable appends where a skip list searches (the search took a
  // tenth of the apply thread at 50 million events), and sorts once, on flush
  // or scan. It takes no concurrent memtable writes; Commit() has one writer.
  descriptors[kDaily].options.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  db_options.allow_concurrent_memtable_write = false;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  // A record torn at the end of the write-ahead log is what a machine crash
  // leaves: it was never acknowledged, so dropping it loses nothing. A corrupt
  // record before the end is damage: committed state after it is lost. Then
  // the state is opened at its last intact commit (point in time), and said
  // loudly: the sources re-read from the offsets stored with that commit,
  // which a Kafka topic can serve only while they are within its retention.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, directory + "/rocksdb", descriptors, &handles, &raw);
  std::string recovery_loss;
  if (s.IsCorruption()) {
    recovery_loss = absl::StrCat(
        "the state's write-ahead log in ", directory, " is corrupt (", s.ToString(),
        "); the state was rolled back to its last intact commit, and the sources re-read "
        "from there: events no longer in their retention are lost");
    LogError("%s", recovery_loss);
    db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    handles.clear();
    s = rocksdb::DB::Open(db_options, directory + "/rocksdb", descriptors, &handles, &raw);
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening RocksDB state in ", directory));
  auto store = std::make_unique<RocksDbStateStore>(
      std::unique_ptr<rocksdb::DB>(raw), std::move(handles), options, directory, recovery_loss);
  if (absl::Status st = store->CheckFormat(); !st.ok()) return st;
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace hubmetrics
