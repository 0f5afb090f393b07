// Durable state of hubmetricsd: one RocksDB database with column families,
// behind a narrow interface so that unit tests can plug in a fake with
// failure switches (integration tests use the real one).
//
// Stored format (written down once; change it only with a format_version bump
// and a migration). Integers in keys are big-endian so that keys sort in
// numeric order; days are int32 with the sign bit flipped.
//   CF "meta"     "format_version" -> "3"
//                 "watermark"      -> int64 little-endian, microseconds since the epoch
//                 "watermark:" partition (decimal) -> the same, of one source partition
//                 "counters"       -> hubmetrics.v1.IngestStats (counter fields only)
//                 "dedup_seq"      -> uint64 little-endian, the next dedup or daily record
//                 number
//                 "dedup_floor"    -> day (int32 as uint64 little-endian): dedup days before it
//                 were dropped
//                 "user_hash_key_fingerprint" -> uint64 little-endian,
//                 UserHasher::KeyFingerprint() of the key the dedup records were hashed
//                 under (added without a version bump: absent in older states, which are
//                 bound to the key they are next opened with)
//                 "role"           -> "all" | "metrics": the PipelineRole the state was
//                 built by, written at its first start (added without a version bump:
//                 absent in older states, which are "all" when they hold any dedup or
//                 daily data and otherwise bound when next opened)
//                 "progress:" partition (decimal) -> hubmetrics.v1.PartitionProgress, the
//                 last progress record of that input partition read from the unique topic
//                 (metrics role only)
//   CF "catalog"  model_id         -> hubmetrics.v1.ModelInfo
//   CF "daily"    0x00 day(4) seq(8 big-endian)     -> daily record: the unique downloads of
//                 the models of one closed day, stored by one commit (the one that drops
//                 the day's dedup records); repeated { varint32 len, model_id, uint64
//                 little-endian count }; a (model, day)'s count is the sum over the
//                 day's records (in practice one commit closes a day)
//                 model_id 0x00 day(4)              -> uint64 little-endian unique downloads
//                 (version 2's key, one per (model, day); read, no longer written)
//                 Both hold days before dedup_floor only (closed days); an open day's
//                 count is the number of its dedup triples
//   CF "dedup"    day(4) seq(8 big-endian)          -> dedup record: the (model, user hash)
//                 pairs of that day first counted by one commit, grouped by model; repeated
//                 { varint32 len, model_id, varint32 n, n x uint64 little-endian user_hash }
//   CF "parts"    model_id 0x00 day(4) partition(4 big-endian) -> uint64 little-endian: the
//                 absolute unique downloads of (model, day) among one input partition's
//                 events, as last read from the unique topic (metrics role only; every day is
//                 kept: a metrics state closes no days). A (model, day)'s count is the sum
//                 over its partitions. Added without a version bump (RocksDB creates a
//                 missing column family on open; older states simply have it empty).
//   CF "offsets"  source key (e.g. "kafka:hub.downloads:3") -> int64 little-endian next offset;
//                 for "models_file:" + absolute path, the digest of the models file's content
//                 last applied (see file_source.h) instead of an offset
// Raw user ids are never stored: only their keyed hash appears, in dedup records.
//
// Format history: version 1 had one dedup key per unique download,
// day(4) user_hash(8) model_id -> "" (about 40 bytes of key and one memtable
// insert per unique download, the largest cost of ingest). Opening a version-1
// state converts it in one atomic write. Version 2 stored one daily key per
// (model, day) closed (a key and a memtable insert each: a quarter of a
// replay's apply thread); version 3 stores one record per day and still reads
// version 2's keys, so opening a version-2 state only rewrites
// format_version. A state of version 3 is refused by older hubmetricsd.
//
// Commit() applies one StateCommit atomically (one WriteBatch): a crash at any
// point leaves either all of it or none of it. This is what makes ingestion
// exactly-once in effect: the offsets a batch consumed are committed together
// with the counts it produced.
//
// Thread safety: Commit() and the Load functions must not run concurrently
// with each other (the pipeline makes its commits one at a time, on its
// apply thread or, after draining it, for a catalog change).
#ifndef HUBMETRICS_LIB_STATE_STATE_STORE_H_
#define HUBMETRICS_LIB_STATE_STATE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "proto/hubmetrics/v1/metrics.pb.h"
#include "proto/hubmetrics/v1/unique.pb.h"

namespace hubmetrics {

struct StoredDailyCount {
  std::string model_id;
  Day day;
  uint64_t count;
};

// One stored (day, user hash, model) triple, as ForEachDedupKey passes it;
// model_id is only valid during the call.
struct StoredDedupKey {
  Day day;
  uint64_t user_hash;
  std::string_view model_id;
};

// Unique downloads of one model on one day, new in a commit.
struct StoredDedupGroup {
  Day day;
  std::string model_id;
  std::vector<uint64_t> user_hashes;
};

// The absolute unique downloads of (model_id, day) among one input
// partition's events (metrics role; CF "parts").
struct StoredUniquePart {
  std::string model_id;
  Day day;
  int32_t partition;
  uint64_t count;

  friend bool operator==(const StoredUniquePart&, const StoredUniquePart&) = default;
};

// Everything one atomic commit writes.
struct StateCommit {
  std::vector<StoredDedupGroup> dedup_groups;
  // The same, already encoded by the caller: one day's dedup record in the
  // stored format (state_keys::AppendDedupGroup of its groups, keys.h), each
  // written as it is under a key of its own (after those of dedup_groups).
  std::vector<std::pair<Day, std::string>> dedup_records;
  // Absolute values (not deltas) of days being closed (see the format).
  std::vector<StoredDailyCount> daily_counts;
  // The same, already encoded by the caller: one closed day's daily record in
  // the stored format (state_keys::AppendDailyCount of its counts, keys.h),
  // written as it is under a key of its own. A day's counts come in one
  // record or in daily_counts, not both.
  std::vector<std::pair<Day, std::string>> daily_records;
  std::vector<v1::ModelInfo> catalog_puts;
  std::vector<std::string> catalog_deletes;
  // Source key -> next offset to read.
  std::vector<std::pair<std::string, int64_t>> offsets;
  std::optional<int64_t> watermark_micros;
  // Watermarks of source partitions (microseconds), changed ones only.
  std::vector<std::pair<int32_t, int64_t>> partition_watermarks_micros;
  std::optional<v1::IngestStats> counters;
  // Drop every dedup key of a day before this one (old days, past lateness).
  std::optional<Day> drop_dedup_before;
  // Binds the state to the user-hash key (written once, see the format).
  std::optional<uint64_t> user_hash_key_fingerprint;
  // Metrics role: absolute counts replacing the stored ones (not deltas).
  std::vector<StoredUniquePart> unique_parts;
  // Metrics role: each replaces its partition's stored progress.
  std::vector<v1::PartitionProgress> partition_progress;
  // Binds the state to a pipeline role, "all" or "metrics" (written once).
  std::optional<std::string> role;

  bool empty() const {
    return dedup_groups.empty() && dedup_records.empty() && daily_counts.empty() &&
           daily_records.empty() && catalog_puts.empty() && catalog_deletes.empty() &&
           offsets.empty() && !watermark_micros && partition_watermarks_micros.empty() &&
           !counters && !drop_dedup_before && !user_hash_key_fingerprint && unique_parts.empty() &&
           partition_progress.empty() && !role;
  }
};

// What Load() returns: everything but the dedup keys (see ForEachDedupKey).
struct StoredState {
  std::optional<int64_t> watermark_micros;
  absl::flat_hash_map<int32_t, int64_t> partition_watermarks_micros;
  // The last drop_dedup_before committed, if any.
  std::optional<Day> dedup_floor;
  v1::IngestStats counters;
  std::vector<v1::ModelInfo> catalog;
  std::vector<StoredDailyCount> daily_counts;
  absl::flat_hash_map<std::string, int64_t> offsets;
  std::optional<uint64_t> user_hash_key_fingerprint;
  // Metrics role: every stored part (in no particular order) and every
  // partition's progress.
  std::vector<StoredUniquePart> unique_parts;
  std::vector<v1::PartitionProgress> partition_progress;
  // Absent in states from before roles and in a state never opened yet.
  std::optional<std::string> role;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Call once, before any Commit().
  virtual absl::StatusOr<StoredState> Load() = 0;
  // Calls `fn` for every stored dedup triple with day >= from_day, in day order.
  virtual absl::Status ForEachDedupKey(Day from_day,
                                       const std::function<void(const StoredDedupKey&)>& fn) = 0;
  // Applies `commit` atomically. On error nothing of it was applied.
  // ResourceExhausted: the disk is full; Unavailable: an I/O error. After
  // either, Recover() and then the same Commit() may succeed (the caller's
  // memory is ahead of storage until one does). Any other error is final:
  // the caller must rebuild its memory from the store (hubmetricsd restarts).
  virtual absl::Status Commit(const StateCommit& commit) = 0;
  // After a failed Commit(), makes the store writable again if it can
  // (the error's cause, e.g. a full disk, must be gone); an error says why
  // not yet.
  virtual absl::Status Recover() = 0;
  // Bytes on disk (SST + WAL), for benchmarks and stats.
  virtual uint64_t DiskBytes() const = 0;
  // Bytes the store holds in memory (write buffers and read cache); 0 when it
  // does not know. Thread-safe.
  virtual uint64_t MemoryBytes() const { return 0; }
  // Bytes an unprivileged writer may still use on the state's file system.
  virtual absl::StatusOr<uint64_t> FreeBytes() const = 0;
  // Non-empty when opening the store found part of it damaged and gave it up
  // (a corrupt write-ahead log: the state rolled back to its last intact
  // commit): what was lost, for an operator. Sources then re-read from the
  // offsets stored with the rolled-back state.
  virtual std::string RecoveryLoss() const { return ""; }
};

struct RocksDbStateOptions {
  // fsync the WAL on every commit. Off: a process crash loses nothing (the WAL
  // is in the OS page cache); a machine crash may lose the last commits, but
  // always together with the offsets they consumed, so a replay restores them.
  bool sync_commits = false;
  // Block cache for reads (dedup and daily lookups at startup).
  size_t block_cache_bytes = 64 << 20;
  // Write-ahead log kept before the column families whose data is only in its
  // oldest file are flushed (RocksDB's max_total_wal_size). The small column
  // families (meta, offsets) change with every commit but would never fill a
  // memtable, so without a bound they keep every WAL file since the start
  // (up to 4x all write buffers, ~1.5 GB) on disk and in the replay on restart.
  // Lower: less disk and a faster restart, for more small flushes.
  uint64_t max_wal_bytes = 128 << 20;
  // Bound on the memory of all column families' write buffers together
  // (RocksDB's db_write_buffer_size, a WriteBufferManager): when reached, the
  // largest memtable is flushed. Without it each of the column families may
  // hold up to two 64 MiB memtables, and RSS rises and falls by hundreds of
  // megabytes with them. Lower: less memory, more and smaller flushes (more
  // compaction work); 0: no shared bound.
  size_t memtable_budget_bytes = 128 << 20;
};

// Opens (creating if needed, mode 0700) the database in `directory`.
// FailedPrecondition if it holds a newer format; Unavailable if another
// process holds its lock.
//
// State files are private to the service's user: a directory it creates is
// mode 0700 (an existing one is left as it is, with a warning when others may
// enter it).
absl::StatusOr<std::unique_ptr<StateStore>> OpenRocksDbStateStore(
    const std::string& directory, const RocksDbStateOptions& options);

// Whether `directory` holds a state (one OpenRocksDbStateStore created),
// without opening it.
bool StateExists(const std::string& directory);

// An in-memory StateStore for unit tests, with a failure switch.
class FakeStateStore final : public StateStore {
 public:
  absl::StatusOr<StoredState> Load() override;
  absl::Status ForEachDedupKey(Day from_day,
                               const std::function<void(const StoredDedupKey&)>& fn) override;
  absl::Status Commit(const StateCommit& commit) override;
  absl::Status Recover() override {
    ++recovers_;
    return absl::OkStatus();
  }
  uint64_t DiskBytes() const override { return 0; }
  absl::StatusOr<uint64_t> FreeBytes() const override {
    absl::MutexLock lock(&free_mu_);
    return free_bytes_;
  }

  // The next `n` commits fail with `status` and apply nothing.
  void FailNextCommits(int n, absl::Status status) {
    fail_commits_ = n;
    fail_status_ = std::move(status);
  }
  // What FreeBytes() answers from now on (any thread).
  void SetFreeBytes(uint64_t bytes) {
    absl::MutexLock lock(&free_mu_);
    free_bytes_ = bytes;
  }
  int recovers() const { return recovers_; }
  int commits() const { return commits_; }
  size_t dedup_keys() const { return dedup_.size(); }

 private:
  int fail_commits_ = 0;
  absl::Status fail_status_;
  int commits_ = 0;
  int recovers_ = 0;
  mutable absl::Mutex free_mu_;
  uint64_t free_bytes_ ABSL_GUARDED_BY(free_mu_) = uint64_t{1} << 40;
  std::optional<int64_t> watermark_;
  absl::flat_hash_map<int32_t, int64_t> partition_watermarks_;
  std::optional<Day> dedup_floor_;
  v1::IngestStats counters_;
  std::map<std::string, v1::ModelInfo> catalog_;
  std::map<std::pair<std::string, Day>, uint64_t> daily_;
  std::map<std::tuple<Day, uint64_t, std::string>, bool> dedup_;
  absl::flat_hash_map<std::string, int64_t> offsets_;
  std::optional<uint64_t> user_hash_key_fingerprint_;
  std::map<std::tuple<std::string, Day, int32_t>, uint64_t> parts_;
  std::map<int32_t, v1::PartitionProgress> progress_;
  std::optional<std::string> role_;
};

// Forwards to a StateStore it does not own (which must outlive it): lets a
// test "restart" an engine on the same FakeStateStore.
class UnownedStateStore final : public StateStore {
 public:
  explicit UnownedStateStore(StateStore* inner) : inner_(inner) {}
  absl::StatusOr<StoredState> Load() override { return inner_->Load(); }
  absl::Status ForEachDedupKey(Day from_day,
                               const std::function<void(const StoredDedupKey&)>& fn) override {
    return inner_->ForEachDedupKey(from_day, fn);
  }
  absl::Status Commit(const StateCommit& commit) override { return inner_->Commit(commit); }
  absl::Status Recover() override { return inner_->Recover(); }
  uint64_t DiskBytes() const override { return inner_->DiskBytes(); }
  uint64_t MemoryBytes() const override { return inner_->MemoryBytes(); }
  absl::StatusOr<uint64_t> FreeBytes() const override { return inner_->FreeBytes(); }
  std::string RecoveryLoss() const override { return inner_->RecoveryLoss(); }

 private:
  StateStore* inner_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_STATE_STATE_STORE_H_
