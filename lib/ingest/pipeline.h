// The engine of hubmetricsd (the write path): turns source records into
// exact state, and lets the read path read it.
//
// Ingest side (one thread at a time, the source's): a batch is decoded,
// validated and its user ids hashed on the caller's thread (decoding, model
// lookup and hashing of a batch of 4,096 records or more in two halves at
// once, one on a helper thread; validation, in order, after); then, on the
// pipeline's apply thread, it is deduplicated, the aggregates are updated and the
// resulting state is committed to the StateStore in ONE commit together with
// the source offsets the records came from — after the rejected records were
// handed to the DeadLetterSink and flushed. SubmitEvents() returns after the
// first part, so the next batch is decoded while this one is applied
// (pipelining uses both cores); IngestEvents() also waits for the commit. A
// crash at any point therefore neither loses nor double-counts anything: on
// restart the source resumes from the offsets stored with the state
// (StoredOffset), and a replayed event is a duplicate. ApplyCatalog() does the
// same for catalog records (after the submitted batches) and re-credits past
// counts.
//
// A commit that cannot be written for lack of disk space (or an I/O error)
// waits and is retried until it is written, so ingest pauses and resumes by
// itself, exactly; GetIngestStats says why meanwhile (state_condition). If a
// commit fails otherwise, or a dead-letter flush fails, the in-memory state is
// ahead of the stored state: the pipeline refuses further ingest
// (FailedPrecondition) and the process must restart, which rebuilds memory
// from the store. Queries keep working meanwhile.
//
// In the metrics role (PipelineRole::kMetrics) the ingest side is
// ApplyUniqueRecords() instead, on the calling thread: no events, no dedup
// and no closed days (the state keeps every (model, day, input partition)
// count read); catalog changes and queries work as in the default role.
//
// Read side (lib/query's QueryService): Read() runs a reader over the state
// under the engine's lock held for reading; Snapshot() gives the live
// windows' measures without the lock; GetIngestStats() the counters; any
// thread.
#ifndef HUBMETRICS_LIB_INGEST_PIPELINE_H_
#define HUBMETRICS_LIB_INGEST_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/aggregate/aggregates.h"
#include "lib/aggregate/lane_worker.h"
#include "lib/catalog/catalog.h"
#include "lib/catalog/model_id_table.h"
#include "lib/dedup/unique_download_counter.h"
#include "lib/events/events.h"
#include "lib/state/state_store.h"
#include "lib/time/time.h"
#include "lib/unique/unique_record.h"

namespace hubmetrics {

// What a pipeline is fed with (hubmetricsd --role).
enum class PipelineRole {
  // Raw events (and the catalog): dedup, aggregates and queries in one
  // process, state on the local disk. The default; no extra topic.
  kAll,
  // The unique topic's records (UniqueTopicRecord, written by dedup
  // instances) and the catalog: aggregates and queries; no events, no dedup.
  // A state is bound to its role at its first start (meta "role"): opening
  // it in the other role is refused.
  kMetrics,
};

struct PipelineOptions {
  PipelineRole role = PipelineRole::kAll;
  ValidatorOptions validator;
  AggregateOptions aggregates;
  // Live-distribution updates applied per hold of the writer lock (see
  // Aggregates::ApplyStaged). Smaller: queries wait less behind ingest; larger:
  // fewer lock hand-offs. At a few hundred ns per update, 2048 keeps a hold
  // well under a millisecond.
  size_t max_updates_per_lock = 2048;
  // The same for the (model, day) count changes staged per hold (each costs
  // up to 60 hash-map updates: 12 views x the live windows).
  size_t max_deltas_per_lock = 256;
  // Free space the state's disk keeps: below it, a commit waits (ingest
  // pauses; queries are answered; GetIngestStats says "disk_full") until
  // space is freed. RocksDB's flushes and compactions write beside the live
  // files, so a disk filled to the last byte fails them; the reserve leaves
  // them room. 0: no reserve (a full disk then surfaces as a failed write,
  // retried the same way).
  uint64_t min_free_disk_bytes = uint64_t{512} << 20;
  // How often a waiting commit looks at the free space again, and retries a
  // write that failed for lack of space or an I/O error.
  absl::Duration disk_retry_interval = absl::Seconds(1);
  // Event records (an NDJSON line without its newline, or a Kafka value) longer
  // than this many bytes are rejected too_large before they are decoded (see
  // kDefaultMaxEventBytes for the default's reasons). The file source reads an
  // over-long line without keeping more than this of it.
  uint64_t max_event_bytes = kDefaultMaxEventBytes;
};

// One record as a source read it. `value` is only valid during the call it
// is passed to.
struct SourceRecord {
  std::string_view value;
  // Where it came from, for dead letters and logs (topic or file, partition
  // or -1, offset or line number).
  std::string_view source;
  int32_t partition = -1;
  int64_t offset = -1;
  // The Kafka message key (empty: none or not Kafka), for the dead letter.
  std::string_view key = {};
  // The record's length in bytes when `value` holds only its first bytes (a
  // file line too long to keep whole: it is rejected too_large); -1: the
  // record is `value`.
  int64_t size = -1;
};

// Where rejected records go (a DLQ topic, or a log for files).
class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  // Called once per rejected record, in order, on the ingest thread. Must
  // copy what it keeps.
  virtual void Reject(const SourceRecord& record, const Rejection& rejection) = 0;
  // Returns once every record passed to Reject() before the call is durable;
  // an error stops the batch from committing. Called on the pipeline's apply
  // thread, possibly while the ingest thread calls Reject() for the next
  // batch: implementations must allow that.
  virtual absl::Status Flush() = 0;
};

// The position a source reached: the next offset to read for `source_key`.
struct SourceOffset {
  std::string source_key;
  int64_t next_offset;
};

// A catalog record: an upsert, or a tombstone (info empty) removing the model.
struct CatalogRecord {
  std::string model_id;
  std::optional<v1::ModelInfo> info;
};

class Pipeline final {
 public:
  // Loads the stored state and rebuilds memory from it. `clock` is not owned
  // and must outlive the pipeline.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Open(PipelineOptions options,
                                                        std::unique_ptr<StateStore> store,
                                                        const Clock* clock, UserHasher hasher);
  ~Pipeline();

  // --- Ingest side: one thread at a time. ---
  // Decodes, validates and hashes `records` on the calling thread (and a
  // helper, for a large batch: the calling thread waits for it), then
  // hands the batch to the apply thread (dedup, aggregates, commit) and returns: the records
  // may be freed at once, the batch is committed later. Waits first for the
  // previous batch's apply to end (one batch applies while the next is
  // prepared). An error of an earlier batch (a failed commit or dead-letter
  // flush) is returned here, by the next call, and by Drain().
  //
  // `release`, if set, is called on the apply thread once the batch is
  // applied (a refused batch's is destroyed uncalled on the calling thread):
  // a source whose records' buffers are costly to free frees them there, off
  // the thread that reads the next batch. Drain() returns after it has run.
  absl::Status SubmitEvents(std::span<const SourceRecord> records, EventFormat format,
                            std::span<const SourceOffset> offsets, DeadLetterSink* dead_letters,
                            absl::AnyInvocable<void()> release = nullptr);
  // Returns once every submitted batch is committed (or failed: its error).
  absl::Status Drain();
  // SubmitEvents() then Drain(): returns once the batch is committed.
  absl::Status IngestEvents(std::span<const SourceRecord> records, EventFormat format,
                            std::span<const SourceOffset> offsets, DeadLetterSink* dead_letters);
  // --- Metrics role only (FailedPrecondition otherwise; SubmitEvents and
  // IngestEvents are FailedPrecondition in the metrics role). ---
  // Applies records of the unique topic, in the order read, and commits them
  // with `offsets` (source keys of the unique topic's partitions) in one
  // commit; returns once committed. A count record replaces the stored count
  // of its (partition, day, model) — the aggregates change by the difference
  // — and a progress record replaces its partition's counters, which
  // GetIngestStats sums over partitions (and whose watermarks give the
  // watermark: the largest). Re-applying records already applied changes
  // nothing, so a replay after a crash is harmless. Models are interned on
  // first sight; the catalog attributes them as in the default role.
  // InvalidArgument, applying nothing, when a count record's model id is not
  // a valid one (IsValidModelId: dedup instances only count valid ones).
  absl::Status ApplyUniqueRecords(std::span<const UniqueTopicRecord> records,
                                  std::span<const SourceOffset> offsets);

  // Upserts must have passed ValidateModel. Records equal to the stored ones
  // change nothing (re-reading a models file is harmless).
  absl::Status ApplyCatalog(std::span<const CatalogRecord> records,
                            std::span<const SourceOffset> offsets);
  // A catalog record that could not be decoded; counted in catalog_rejected.
  void CountCatalogRejected();
  // `n` events a source lost before they were read (deleted by retention);
  // counted in events_lost_to_retention, stored with the next commit.
  void CountEventsLostToRetention(uint64_t n);
  // The source partitions the next events will come from (see
  // EventValidator::ExpectPartitions). Ingest thread.
  void ExpectPartitions(std::span<const int32_t> partitions);
  // Records longer than this are too_large (PipelineOptions::max_event_bytes).
  uint64_t max_event_bytes() const { return options_.max_event_bytes; }
  // The stored next offset of `source_key`, if any.
  std::optional<int64_t> StoredOffset(std::string_view source_key) const;
  // Ends every wait for disk space or for a failed write's retry: that
  // commit fails (Cancelled), is not written, and ingest stops; a restart
  // reads its records again. Call before stopping the sources, so that they
  // do not wait for a commit that may never come. Any thread.
  void Stop();

  // --- Source status, shown in GetIngestStats; any thread. ---
  void SetSourceExhausted(bool exhausted);
  // Empty when healthy; otherwise what is wrong, in words for an operator.
  void SetSourceCondition(std::string condition);
  void SetPartitionLags(std::vector<v1::PartitionLag> lags);

  // Bytes of state on disk.
  uint64_t StateDiskBytes() const { return store_->DiskBytes(); }

  // --- Read side: any thread. ---
  // The state a reader sees: consistent for the duration of Read()'s
  // callback (no batch is applied meanwhile), not to be kept past it.
  struct ReadState {
    const Aggregates& aggregates;
    const Catalog& catalog;
    const ModelRegistry& registry;
    std::optional<absl::Time> watermark;  // largest accepted event time
  };
  // Runs `reader` with the engine's lock held for reading: it may wait for the
  // batch being applied (for as long as applying it takes) and holds off the
  // next one while it runs.
  void Read(absl::FunctionRef<void(const ReadState&)> reader) const;
  // Runs `reader` as Read() does when the lock can be had at once (no batch
  // being applied, no writer waiting) and returns true; else returns false
  // without running it. For a caller that must not wait (a gRPC thread).
  bool TryRead(absl::FunctionRef<void(const ReadState&)> reader) const;
  // The live windows' measures with the default ks (DefaultTopK()), as of the
  // last batch (and catalog change): immutable once published, replaced whole
  // after every batch, so a reader copies one pointer and never waits behind
  // ingest.
  struct LiveSnapshot {
    std::optional<IsoWeek> watermark_week;
    std::optional<absl::Time> watermark;
    std::vector<LiveWindowValues> windows;
    // The live window that answers `window`, or nullptr (not live).
    const LiveWindowValues* Find(const Window& window) const;
  };
  std::shared_ptr<const LiveSnapshot> Snapshot() const;
  v1::IngestStats GetIngestStats() const;
  // A number that grows whenever any view may have changed.
  uint64_t StateVersion() const;
  // Blocks until StateVersion() > `seen` or `deadline` passes; returns the
  // current version either way.
  uint64_t WaitForStateVersionAbove(uint64_t seen, absl::Time deadline) const;

 private:
  Pipeline(PipelineOptions options, std::unique_ptr<StateStore> store, const Clock* clock,
           UserHasher hasher);
  struct PreparedBatch;
  struct DecodedRecord;
  struct DecodedPart;
  // A batch of at least twice this many records is decoded in two parts at once.
  static constexpr size_t kMinRecordsPerDecodePart = 2048;
  static constexpr size_t kHelperSharePercent = 60;
  absl::Status Load();
  // Load()'s check of the stored role against options_.role; what to bind.
  absl::Status CheckRole(const StoredState& state);
  // Load()'s rebuild of the metrics role's memory (parts, progress).
  void LoadMetricsRole(StoredState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Metrics role: counters_, rejected_by_reason_ and watermark_ (and the
  // aggregates' watermark week) from progress_, summed over partitions.
  void SetCountersFromProgress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The ingest thread's part of a batch, and the apply thread's.
  PreparedBatch Prepare(std::span<const SourceRecord> records, EventFormat format,
                        std::span<const SourceOffset> offsets, DeadLetterSink* dead_letters);
  // Prepare's first part for records [part->begin, part->end): decodes,
  // looks the model up in known_models_ and hashes the user id of each, into
  // out[i]. Reads only what no other thread writes meanwhile (known_models_
  // changes only after every part is done), so two parts run at once.
  void DecodePart(std::span<const SourceRecord> records, EventFormat format, DecodedRecord* out,
                  DecodedPart* part) const;
  absl::Status ApplyPrepared(PreparedBatch& batch);
  // Writes `commit`, waiting for disk space and retrying a write that failed
  // for lack of it or an I/O error; any other failure breaks ingest.
  absl::Status CommitOrBreak(const StateCommit& commit);
  // Appends `offsets` to what a commit writes (`out`) and remembers them as
  // the sources' positions (StoredOffset). Ingest thread.
  void TakeOffsets(std::span<const SourceOffset> offsets,
                   std::vector<std::pair<std::string, int64_t>>* out);
  // Returns OK once the disk has the reserve free (or its free space cannot
  // be read), Cancelled if Stop() came first.
  absl::Status WaitForDiskSpace();
  // Sleeps `d`; true if Stop() was called (before or meanwhile).
  bool StopRequestedWithin(absl::Duration d);
  void SetStateCondition(std::string condition, std::string detail);
  void BumpVersion() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountRejection(RejectReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillWatermark(google::protobuf::Timestamp* out) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Publishes the live windows' measures as of now (every staged update
  // applied) for the lock-free query path.
  void PublishSnapshot() ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const PipelineOptions options_;
  const std::unique_ptr<StateStore> store_;
  const Clock* const clock_;
  const UserHasher hasher_;

  // Apply-thread state (Load() and the apply thread's tasks, one at a time).
  UniqueDownloadCounter dedup_;
  Day dedup_dropped_before_ = INT32_MIN;
  // The unique downloads of each (model, day) of the days still in dedup_
  // (their daily counts, stored when a day leaves it).
  std::map<Day, absl::flat_hash_map<ModelIdx, uint64_t>> open_day_counts_;
  // Apply thread: per model, the index of its last group in the batch being
  // grouped (stale from earlier batches; checked before use).
  std::vector<uint32_t> last_group_of_model_;
  // Metrics-role state, touched by Load() and ApplyUniqueRecords() only (on
  // the ingest thread, after Drain(): never beside the apply thread). The
  // last count read per (model, day, input partition): the aggregates hold,
  // per (model, day), the sum over partitions. And each input partition's
  // last progress (what GetIngestStats sums).
  absl::flat_hash_map<std::tuple<ModelIdx, Day, int32_t>, uint64_t> unique_parts_;
  std::map<int32_t, v1::PartitionProgress> progress_;
  // Ingest-thread state (only the ingest thread touches these).
  EventValidator validator_;
  absl::flat_hash_map<std::string, int64_t> offsets_;
  // Model ids the ingest thread has interned, to skip the lock for known ones.
  ModelIdTable known_models_;
  std::atomic<bool> broken_{false};

  // Shared with query threads.
  mutable absl::Mutex mu_;
  ModelRegistry registry_ ABSL_GUARDED_BY(mu_);
  Catalog catalog_ ABSL_GUARDED_BY(mu_);
  Aggregates aggregates_ ABSL_GUARDED_BY(mu_);
  v1::IngestStats counters_ ABSL_GUARDED_BY(mu_);  // persisted counter fields
  std::array<uint64_t, kNumRejectReasons> rejected_by_reason_ ABSL_GUARDED_BY(mu_){};
  std::optional<absl::Time> watermark_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;

  mutable absl::Mutex snapshot_mu_;
  std::shared_ptr<const LiveSnapshot> snapshot_ ABSL_GUARDED_BY(snapshot_mu_);

  mutable absl::Mutex status_mu_;
  bool stop_requested_ ABSL_GUARDED_BY(status_mu_) = false;
  // GetIngestStats' state_condition and its detail (see the proto).
  std::string state_condition_ ABSL_GUARDED_BY(status_mu_);
  std::string state_condition_detail_ ABSL_GUARDED_BY(status_mu_);
  bool source_exhausted_ ABSL_GUARDED_BY(status_mu_) = false;
  std::string source_condition_ ABSL_GUARDED_BY(status_mu_);
  std::vector<v1::PartitionLag> lags_ ABSL_GUARDED_BY(status_mu_);

  // Decodes the second half of a large batch while the ingest thread decodes
  // the first (Prepare); created on first use, by the ingest thread.
  std::unique_ptr<LaneWorker> decode_worker_;
  // Prepare's per-record results, reused from batch to batch (ingest thread).
  std::unique_ptr<DecodedRecord[]> decoded_;
  size_t decoded_capacity_ = 0;
  // The apply thread and the result of the last batch it applied: written by
  // the task, read by the ingest thread only after apply_worker_->Wait().
  absl::Status apply_status_;
  // Last member: destroyed first, it finishes the batch it applies while
  // everything it uses still exists.
  std::unique_ptr<LaneWorker> apply_worker_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_INGEST_PIPELINE_H_
