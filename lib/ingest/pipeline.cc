#include "lib/ingest/pipeline.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "lib/base/kill_point.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/state/keys.h"

namespace hubmetrics {
namespace {

std::optional<IsoWeek> WeekOf(std::optional<absl::Time> t) {
  if (!t) return std::nullopt;
  return IsoWeek::Containing(DayOf(*t));
}

const char* RoleName(PipelineRole role) {
  switch (role) {
    case PipelineRole::kAll:
      return "all";
    case PipelineRole::kMetrics:
      return "metrics";
  }
  return "unknown";
}

struct PairHash {
  size_t operator()(const std::pair<ModelIdx, Day>& p) const {
    return absl::HashOf(p.first, p.second);
  }
};

}  // namespace

Pipeline::Pipeline(PipelineOptions options, std::unique_ptr<StateStore> store, const Clock* clock,
                   UserHasher hasher)
    : options_(std::move(options)),
      store_(std::move(store)),
      clock_(clock),
      hasher_(hasher),
      validator_(options_.validator, clock, std::nullopt),
      catalog_(&registry_),
      aggregates_(options_.aggregates, &registry_, &catalog_) {}

Pipeline::~Pipeline() = default;

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Open(PipelineOptions options,
                                                         std::unique_ptr<StateStore> store,
                                                         const Clock* clock, UserHasher hasher) {
  std::unique_ptr<Pipeline> p(new Pipeline(std::move(options), std::move(store), clock, hasher));
  RETURN_IF_ERROR(p->Load());
  return p;
}

absl::Status Pipeline::CheckRole(const StoredState& state) {
  const std::string role = RoleName(options_.role);
  std::optional<std::string> stored = state.role;
  if (!stored) {
    // States from before roles were all built from events: any trace of
    // that makes them "all". Only a state with none of it (never fed
    // events) may become a metrics replica's. The dedup scan is for that
    // case only: a role-"all" state is scanned by Load() anyway.
    bool from_events = !state.daily_counts.empty() || state.dedup_floor.has_value() ||
                       state.watermark_micros.has_value() ||
                       !state.partition_watermarks_micros.empty() ||
                       state.counters.events_read() > 0;
    if (!from_events && options_.role != PipelineRole::kAll) {
      RETURN_IF_ERROR(
          store_->ForEachDedupKey(INT32_MIN, [&](const StoredDedupKey&) { from_events = true; }));
    }
    if (from_events) stored = std::string(RoleName(PipelineRole::kAll));
  }
  if (stored && *stored != role) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this state was built in role \"", *stored, "\" and cannot be opened in role \"", role,
        "\" (the roles keep different data: \"all\" deduplicates events, \"metrics\" sums "
        "the unique topic's counts): start with --role=",
        *stored, " to use it, or give role ", role, " another --state_dir"));
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Load() {
  ASSIGN_OR_RETURN(StoredState state, store_->Load());
  RETURN_IF_ERROR(CheckRole(state));
  StateCommit bind;
  if (!state.role) bind.role = std::string(RoleName(options_.role));
  // The dedup records hold hashes under one key: under another, every user
  // would be counted again, silently. A metrics replica hashes nothing (its
  // counts come hashed and counted), so its state is not bound to a key: a
  // replica's key file may change freely.
  if (options_.role == PipelineRole::kAll) {
    const uint64_t fingerprint = hasher_.KeyFingerprint();
    if (!state.user_hash_key_fingerprint) {
      bind.user_hash_key_fingerprint = fingerprint;
    } else if (*state.user_hash_key_fingerprint != fingerprint) {
      return absl::FailedPreconditionError(
          "the user-hash key is not the key this state was built with (its fingerprint "
          "differs): restore the original key file (--user_hash_key_file, default "
          "<state_dir>/user_hash.key), or start with a new --state_dir; a new key would count "
          "every user again");
    }
  }
  if (!bind.empty()) RETURN_IF_ERROR(store_->Commit(bind));
  absl::MutexLock lock(&mu_);
  for (const v1::ModelInfo& m : state.catalog) catalog_.Put(m);
  if (options_.role == PipelineRole::kMetrics) {
    LoadMetricsRole(state);
    return absl::OkStatus();
  }
  // Days before the dedup floor are closed: their counts are stored. Open
  // days are counted from their dedup triples (daily records of open days,
  // as format version 1 wrote them, are equal to those and skipped).
  const Day floor = state.dedup_floor.value_or(std::numeric_limits<Day>::min());
  absl::flat_hash_map<std::pair<ModelIdx, Day>, int64_t, PairHash> counts;
  for (const StoredDailyCount& d : state.daily_counts) {
    if (d.day < floor) {
      counts[{registry_.Intern(d.model_id), d.day}] += static_cast<int64_t>(d.count);
    }
  }
  size_t keys = 0;
  RETURN_IF_ERROR(store_->ForEachDedupKey(floor, [&](const StoredDedupKey& k) {
    const ModelIdx m = registry_.Intern(k.model_id);
    if (dedup_.Insert(k.day, m, k.user_hash)) ++counts[{m, k.day}];
    ++keys;
  }));
  dedup_dropped_before_ = floor;
  for (const auto& [key, n] : counts) {
    if (key.second >= floor) open_day_counts_[key.second][key.first] += static_cast<uint64_t>(n);
  }
  std::vector<ModelDayDelta> deltas;
  deltas.reserve(counts.size());
  for (const auto& [key, n] : counts) deltas.push_back({key.first, key.second, n});
  aggregates_.Apply(deltas);
  if (state.watermark_micros) {
    watermark_ = FromUnixMicros(*state.watermark_micros);
    aggregates_.SetWatermarkWeek(*WeekOf(watermark_));
  }
  absl::flat_hash_map<int32_t, absl::Time> partitions;
  for (const auto& [p, micros] : state.partition_watermarks_micros) {
    partitions[p] = FromUnixMicros(micros);
  }
  validator_ = EventValidator(options_.validator, clock_, watermark_, std::move(partitions), floor);
  counters_ = state.counters;
  for (const v1::RejectCount& r : counters_.rejected_by_reason()) {
    if (auto reason = RejectReasonFromName(r.reason())) {
      rejected_by_reason_[static_cast<int>(*reason)] = r.count();
    }
  }
  offsets_ = std::move(state.offsets);
  PublishSnapshot();
  LogInfo(
      "state loaded: %d catalog records, %d daily counts, %d unique downloads, %d live dedup keys",
      state.catalog.size(), state.daily_counts.size(), aggregates_.TotalUniqueDownloads(), keys);
  return absl::OkStatus();
}

void Pipeline::LoadMetricsRole(StoredState& state) {
  // Every day is in the parts (a metrics state closes none): the daily
  // counts are their sums over partitions.
  absl::flat_hash_map<std::pair<ModelIdx, Day>, int64_t, PairHash> counts;
  for (const StoredUniquePart& u : state.unique_parts) {
    const ModelIdx m = registry_.Intern(u.model_id);
    unique_parts_[{m, u.day, u.partition}] = u.count;
    counts[{m, u.day}] += static_cast<int64_t>(u.count);
  }
  std::vector<ModelDayDelta> deltas;
  deltas.reserve(counts.size());
  for (const auto& [key, n] : counts) {
    if (n != 0) deltas.push_back({key.first, key.second, n});
  }
  aggregates_.Apply(deltas);
  for (v1::PartitionProgress& p : state.partition_progress) {
    const int32_t partition = p.partition();
    progress_[partition] = std::move(p);
  }
  // The replica's own counters (catalog_*) are stored; the ingest counters
  // are the dedup instances', from their progress.
  counters_ = state.counters;
  SetCountersFromProgress();
  offsets_ = std::move(state.offsets);
  PublishSnapshot();
  LogInfo(
      "state loaded (metrics role): %d catalog records, %d unique parts of %d input partitions, "
      "%d unique downloads",
      state.catalog.size(), unique_parts_.size(), progress_.size(),
      aggregates_.TotalUniqueDownloads());
}

void Pipeline::SetCountersFromProgress() {
  uint64_t events_read = 0;
  uint64_t unique = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t lost = 0;
  // By name: a dedup instance of a newer version may know reasons this one
  // does not; they are shown after the known ones.
  std::map<std::string, uint64_t, std::less<>> by_reason;
  std::optional<int64_t> watermark_micros;
  for (const auto& [partition, p] : progress_) {
    events_read += p.events_read();
    unique += p.unique_downloads();
    duplicates += p.duplicates();
    rejected += p.rejected();
    lost += p.events_lost_to_retention();
    for (const v1::RejectCount& r : p.rejected_by_reason()) by_reason[r.reason()] += r.count();
    if (p.has_watermark_micros()) {
      watermark_micros = std::max(watermark_micros.value_or(INT64_MIN), p.watermark_micros());
    }
  }
  counters_.set_events_read(events_read);
  counters_.set_unique_downloads(unique);
  counters_.set_duplicates(duplicates);
  counters_.set_rejected(rejected);
  counters_.set_events_lost_to_retention(lost);
  counters_.clear_rejected_by_reason();
  for (int r = 0; r < kNumRejectReasons; ++r) {
    const std::string_view name = RejectReasonName(static_cast<RejectReason>(r));
    uint64_t n = 0;
    if (auto it = by_reason.find(name); it != by_reason.end()) {
      n = it->second;
      by_reason.erase(it);
    }
    rejected_by_reason_[r] = n;
    auto* rc = counters_.add_rejected_by_reason();
    rc->set_reason(std::string(name));
    rc->set_count(n);
  }
  for (const auto& [name, n] : by_reason) {
    auto* rc = counters_.add_rejected_by_reason();
    rc->set_reason(name);
    rc->set_count(n);
  }
  if (watermark_micros) {
    watermark_ = FromUnixMicros(*watermark_micros);
    // Weeks only move forward: a partition's progress replaced by an older
    // one (a replay) leaves the trailing windows where they are.
    aggregates_.SetWatermarkWeek(*WeekOf(watermark_));
  } else {
    watermark_.reset();
  }
}

void Pipeline::TakeOffsets(std::span<const SourceOffset> offsets,
                           std::vector<std::pair<std::string, int64_t>>* out) {
  for (const SourceOffset& o : offsets) {
    out->emplace_back(o.source_key, o.next_offset);
    offsets_[o.source_key] = o.next_offset;
  }
}

absl::Status Pipeline::CommitOrBreak(const StateCommit& commit) {
  KillPoint("commit.before");
  bool failed_before = false;
  while (true) {
    absl::Status s = WaitForDiskSpace();
    if (s.ok()) s = store_->Commit(commit);
    if (s.ok()) {
      if (failed_before) LogInfo("state written again; ingest resumes");
      SetStateCondition("", "");
      KillPoint("commit.after");
      return absl::OkStatus();
    }
    // A full disk or an I/O error may pass: the commit is kept and retried,
    // so that nothing is lost and ingest resumes by itself.
    const bool retryable = s.code() == absl::StatusCode::kResourceExhausted ||
                           s.code() == absl::StatusCode::kUnavailable;
    if (!retryable) {
      broken_ = true;
      return absl::Status(s.code(), absl::StrCat(s.code() == absl::StatusCode::kCancelled
                                                     ? "ingest stopped: "
                                                     : "committing state failed; restart "
                                                       "hubmetricsd to resume from the last "
                                                       "commit: ",
                                                 s.message()));
    }
    const bool full = s.code() == absl::StatusCode::kResourceExhausted;
    if (!failed_before) {
      LogError(
          "cannot write the state (%s); ingest waits and retries every %s, queries are "
          "answered meanwhile",
          s.message(), absl::FormatDuration(options_.disk_retry_interval));
    }
    failed_before = true;
    SetStateCondition(
        full ? "disk_full" : "io_error",
        absl::StrCat(
            full ? "the state's disk is full" : "writing the state failed", " (", s.message(),
            "); ingest waits and retries, queries are answered. ",
            full ? "Free space on the state's disk." : "Check the state's disk and the log."));
    if (StopRequestedWithin(options_.disk_retry_interval)) {
      broken_ = true;
      return absl::CancelledError(
          "ingest stopped while the state could not be written; the batch was not committed "
          "and is read again after a restart");
    }
    if (absl::Status r = store_->Recover(); !r.ok()) {
      LogWarning("state store not writable yet: %s", r.message());
    }
  }
}

absl::Status Pipeline::WaitForDiskSpace() {
  if (options_.min_free_disk_bytes == 0) return absl::OkStatus();
  while (true) {
    absl::StatusOr<uint64_t> free = store_->FreeBytes();
    // Unknown free space: the write itself says whether the disk is full.
    if (!free.ok() || *free >= options_.min_free_disk_bytes) return absl::OkStatus();
    const std::string detail = absl::StrCat(
        *free >> 20, " MiB free on the state's disk, below the reserve of ",
        options_.min_free_disk_bytes >> 20,
        " MiB (--min_free_disk_mb): ingest waits until space is freed, queries are answered");
    bool first = false;
    {
      absl::MutexLock lock(&status_mu_);
      first = state_condition_ != "disk_full";
    }
    if (first) LogError("%s", detail);
    SetStateCondition("disk_full", detail);
    if (StopRequestedWithin(options_.disk_retry_interval)) {
      return absl::CancelledError(
          "stopped while waiting for disk space; the batch was not committed and is read again "
          "after a restart");
    }
  }
}

bool Pipeline::StopRequestedWithin(absl::Duration d) {
  absl::MutexLock lock(&status_mu_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(status_mu_) { return stop_requested_; };
  status_mu_.AwaitWithTimeout(absl::Condition(&stopped), d);
  return stop_requested_;
}

void Pipeline::Stop() {
  absl::MutexLock lock(&status_mu_);
  stop_requested_ = true;
}

void Pipeline::SetStateCondition(std::string condition, std::string detail) {
  absl::MutexLock lock(&status_mu_);
  state_condition_ = std::move(condition);
  state_condition_detail_ = std::move(detail);
}

void Pipeline::BumpVersion() { ++version_; }

void Pipeline::CountRejection(RejectReason reason) {
  counters_.set_rejected(counters_.rejected() + 1);
  ++rejected_by_reason_[static_cast<int>(reason)];
}

// What the ingest thread hands to the apply thread: everything the rest of a
// batch needs, owned (the source's records may be gone by then).
struct Pipeline::PreparedBatch {
  uint64_t events_read = 0;
  // The accepted events, in order, deduplicated on the apply thread.
  std::vector<UniqueDownloadCounter::Triple> accepted;
  std::vector<RejectReason> rejected;
  std::optional<absl::Time> watermark;
  std::vector<std::pair<int32_t, int64_t>> partition_watermarks_micros;
  // The validator's OldestAcceptedDay() after this batch: dedup days before
  // it are dropped once the batch is deduplicated.
  Day oldest_accepted_day = INT32_MIN;
  std::vector<std::pair<std::string, int64_t>> offsets;
  DeadLetterSink* dead_letters = nullptr;
  // The source's, called on the apply thread (SubmitEvents).
  absl::AnyInvocable<void()> release;
};

absl::Status Pipeline::IngestEvents(std::span<const SourceRecord> records, EventFormat format,
                                    std::span<const SourceOffset> offsets,
                                    DeadLetterSink* dead_letters) {
  RETURN_IF_ERROR(SubmitEvents(records, format, offsets, dead_letters));
  return Drain();
}

absl::Status Pipeline::SubmitEvents(std::span<const SourceRecord> records, EventFormat format,
                                    std::span<const SourceOffset> offsets,
                                    DeadLetterSink* dead_letters,
                                    absl::AnyInvocable<void()> release) {
  if (options_.role == PipelineRole::kMetrics) {
    return absl::FailedPreconditionError(
        "a metrics replica reads the unique topic, not events (--role=metrics): point the event "
        "source at a dedup or all-role instance");
  }
  if (broken_) {
    // Say why: the error of the batch that broke ingest, if it was one of
    // ours (the apply thread is idle once it has failed).
    if (apply_worker_) apply_worker_->Wait();
    return absl::FailedPreconditionError(absl::StrCat(
        "ingest stopped after a failed commit; restart hubmetricsd to resume from stored state",
        apply_status_.ok() ? "" : absl::StrCat(" (", apply_status_.message(), ")")));
  }
  auto batch = std::make_shared<PreparedBatch>(Prepare(records, format, offsets, dead_letters));
  batch->release = std::move(release);
  if (!apply_worker_) apply_worker_ = std::make_unique<LaneWorker>("hm-apply");
  apply_worker_->Wait();
  RETURN_IF_ERROR(apply_status_);
  apply_worker_->Start([this, batch] {
    apply_status_ = ApplyPrepared(*batch);
    if (batch->release) std::exchange(batch->release, nullptr)();
  });
  return absl::OkStatus();
}

absl::Status Pipeline::Drain() {
  if (apply_worker_) apply_worker_->Wait();
  return apply_status_;
}

// What the first part of Prepare makes of one record: its decoding, model
// lookup and user hash, which need nothing of the records before it, so that
// parts of a batch are decoded on two threads at once.
struct Pipeline::DecodedRecord {
  // Decoding rejected the record (its rejection is in its part's `rejected`).
  static constexpr ModelIdx kRejected = ~ModelIdx{0};
  // A model id not in known_models_ (copied into its part's `unknown_ids`).
  static constexpr ModelIdx kUnknown = ~ModelIdx{0} - 1;
  // No initializers: DecodePart sets `model` of every record, and the rest
  // of every record not rejected (the array is reused, not cleared).
  absl::Time time;
  UserHash user_hash;
  ModelIdx model;  // kRejected, kUnknown, or an index in known_models_
  Day day;
};

struct Pipeline::DecodedPart {
  size_t begin = 0;
  size_t end = 0;
  // By record index, ascending.
  std::vector<std::pair<size_t, Rejection>> rejected;
  // The model ids of the part's kUnknown records, in order.
  std::vector<std::string> unknown_ids;
};

void Pipeline::DecodePart(std::span<const SourceRecord> records, EventFormat format,
                          DecodedRecord* out, DecodedPart* part) const {
  // The model id check answers ids already interned from known_models_ (they
  // passed it before), and remembers the index it found. Decoded ids are
  // views into the record (or the thread's JSON parser), used before the next
  // record is decoded; only model ids new to known_models_ are copied.
  ModelIdx known = DecodedRecord::kUnknown;
  auto is_valid_model_id = [&](std::string_view id) {
    if (const std::optional<ModelIdx> m = known_models_.Find(id)) {
      known = *m;
      return true;
    }
    known = DecodedRecord::kUnknown;
    return IsValidModelId(id);
  };
  for (size_t i = part->begin; i < part->end; ++i) {
    const SourceRecord& record = records[i];
    DecodedRecord& d = out[i];
    d.model = DecodedRecord::kRejected;
    const int64_t size = record.size >= 0 ? record.size : static_cast<int64_t>(record.value.size());
    if (auto rej = CheckEventSize(static_cast<uint64_t>(size), options_.max_event_bytes)) {
      part->rejected.emplace_back(i, std::move(*rej));
      continue;
    }
    DecodeViewResult r = format == EventFormat::kJson
                             ? DecodeJsonEventView(record.value, is_valid_model_id)
                             : DecodeBinaryEventView(record.value, is_valid_model_id);
    if (r.rejection) {
      part->rejected.emplace_back(i, std::move(*r.rejection));
      continue;
    }
    const DecodedEventView& e = *r.event;
    d.time = e.time;
    d.day = DayOf(e.time);
    d.user_hash = hasher_.Hash(e.user_id);
    d.model = known;
    if (known == DecodedRecord::kUnknown) part->unknown_ids.emplace_back(e.model_id);
  }
}

Pipeline::PreparedBatch Pipeline::Prepare(std::span<const SourceRecord> records, EventFormat format,
                                          std::span<const SourceOffset> offsets,
                                          DeadLetterSink* dead_letters) {
  // Outside the lock: the ingest thread owns the validator and
  // known_models_. First decoding, model lookup and hashing, which each
  // record needs alone: a large batch in two halves, one on a helper thread;
  // then, in order, what depends on the records before: the validator
  // (watermarks, lateness), new models, rejections.
  PreparedBatch batch;
  batch.events_read = records.size();
  batch.dead_letters = dead_letters;
  if (decoded_capacity_ < records.size()) {
    decoded_capacity_ = records.size();
    decoded_ = std::make_unique_for_overwrite<DecodedRecord[]>(decoded_capacity_);
  }
  DecodedRecord* const decoded = decoded_.get();
  const size_t parts_n = records.size() >= 2 * kMinRecordsPerDecodePart ? 2 : 1;
  std::array<DecodedPart, 2> parts;
  // The calling thread also reads and splits the next batch and validates in order, so the
  // helper decodes the larger part: kHelperSharePercent of the records.
  const size_t first_end =
      parts_n == 2 ? records.size() - records.size() * kHelperSharePercent / 100 : records.size();
  parts[0].begin = 0;
  parts[0].end = first_end;
  parts[1].begin = first_end;
  parts[1].end = records.size();
  if (parts_n == 2) {
    if (!decode_worker_) decode_worker_ = std::make_unique<LaneWorker>("hm-decode");
    decode_worker_->Start([this, records, format, decoded, &parts] {
      DecodePart(records, format, decoded, &parts[1]);
    });
    DecodePart(records, format, decoded, &parts[0]);
    decode_worker_->Wait();
  } else {
    DecodePart(records, format, decoded, &parts[0]);
  }

  constexpr ModelIdx kNewModel = ModelIdx{1} << 31;
  // model: an interned index, or kNewModel + an index into new_models.
  std::vector<UniqueDownloadCounter::Triple> accepted;
  accepted.reserve(records.size());
  std::vector<std::string> new_models;
  absl::flat_hash_map<std::string, ModelIdx> new_model_index;
  std::vector<std::pair<size_t, Rejection>> rejected;
  // The `future` check's wall clock, once per batch: the records were all
  // read by now.
  const absl::Time now = clock_->Now();
  for (size_t p = 0; p < parts_n; ++p) {
    DecodedPart& part = parts[p];
    auto next_rejected = part.rejected.begin();
    auto next_unknown = part.unknown_ids.begin();
    for (size_t i = part.begin; i < part.end; ++i) {
      const DecodedRecord& d = decoded[i];
      if (d.model == DecodedRecord::kRejected) {
        rejected.push_back(std::move(*next_rejected++));
        continue;
      }
      const std::string* unknown_id =
          d.model == DecodedRecord::kUnknown ? &*next_unknown++ : nullptr;
      if (auto rej = validator_.Accept(d.time, records[i].partition, now)) {
        rejected.emplace_back(i, std::move(*rej));
        continue;
      }
      ModelIdx m = d.model;
      if (unknown_id != nullptr) {
        auto [nit, inserted] =
            new_model_index.try_emplace(*unknown_id, kNewModel + new_models.size());
        if (inserted) new_models.push_back(*unknown_id);
        m = nit->second;
      }
      accepted.push_back({d.day, m, d.user_hash});
    }
  }
  batch.rejected.reserve(rejected.size());
  for (const auto& [i, rej] : rejected) {
    dead_letters->Reject(records[i], rej);
    batch.rejected.push_back(rej.reason);
  }

  if (!new_models.empty()) {
    std::vector<ModelIdx> interned;
    interned.reserve(new_models.size());
    {
      absl::MutexLock lock(&mu_);
      for (const std::string& id : new_models) interned.push_back(registry_.Intern(id));
    }
    for (size_t j = 0; j < new_models.size(); ++j) known_models_.Insert(new_models[j], interned[j]);
    for (UniqueDownloadCounter::Triple& a : accepted) {
      if (a.model >= kNewModel) a.model = interned[a.model - kNewModel];
    }
  }
  batch.accepted = std::move(accepted);
  batch.watermark = validator_.watermark();
  for (const auto& [p, w] : validator_.partition_watermarks()) {
    if (w == absl::InfinitePast()) continue;
    batch.partition_watermarks_micros.emplace_back(p, ::hubmetrics::ToUnixMicros(w));
  }
  batch.oldest_accepted_day = validator_.OldestAcceptedDay();
  TakeOffsets(offsets, &batch.offsets);
  KillPoint("ingest.decoded");
  return batch;
}

absl::Status Pipeline::ApplyPrepared(PreparedBatch& batch) {
  // Dedup runs here, not on the ingest thread, to share the per-event work
  // between the two threads.
  std::vector<uint8_t> is_new;
  dedup_.InsertBatch(batch.accepted, &is_new);
  KillPoint("apply.deduped");
  // The unique downloads grouped per (model, day), the groups in (day, model)
  // order: the daily count deltas (staged in that order: a model's days
  // arrive ascending) and the dedup records (one per day, each group's user
  // hashes in the order read), without a container per group.
  struct Group {
    Day day;
    ModelIdx model;
    uint32_t count = 0;
    uint32_t next = 0;  // where its next hash goes in `hashes`
  };
  std::vector<Group> groups;
  std::vector<uint32_t> group_of_fresh;  // per new triple, in order, its group
  {
    absl::flat_hash_map<std::pair<ModelIdx, Day>, uint32_t, PairHash> group_index;
    for (size_t j = 0; j < batch.accepted.size(); ++j) {
      if (!is_new[j]) continue;
      const UniqueDownloadCounter::Triple& a = batch.accepted[j];
      // A model's downloads mostly come day after day: its last group is
      // usually the one, found without hashing.
      if (a.model >= last_group_of_model_.size()) {
        last_group_of_model_.resize(size_t{a.model} + 1, ~uint32_t{0});
      }
      uint32_t& last = last_group_of_model_[a.model];
      if (last >= groups.size() || groups[last].model != a.model || groups[last].day != a.day) {
        auto [it, inserted] =
            group_index.try_emplace({a.model, a.day}, static_cast<uint32_t>(groups.size()));
        if (inserted) groups.push_back(Group{a.day, a.model});
        last = it->second;
      }
      ++groups[last].count;
      group_of_fresh.push_back(last);
    }
  }
  const uint64_t unique = group_of_fresh.size();
  std::vector<uint32_t> order(groups.size());
  for (uint32_t g = 0; g < order.size(); ++g) order[g] = g;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return std::tie(groups[a].day, groups[a].model) < std::tie(groups[b].day, groups[b].model);
  });
  std::vector<UserHash> hashes(unique);
  {
    uint32_t at = 0;
    for (uint32_t g : order) {
      groups[g].next = at;
      at += groups[g].count;
    }
    size_t k = 0;
    for (size_t j = 0; j < batch.accepted.size(); ++j) {
      if (is_new[j]) hashes[groups[group_of_fresh[k++]].next++] = batch.accepted[j].user_hash;
    }
  }
  StateCommit commit;
  std::vector<ModelDayDelta> applied;
  applied.reserve(groups.size());
  for (uint32_t g : order) {
    applied.push_back({groups[g].model, groups[g].day, static_cast<int64_t>(groups[g].count)});
  }
  for (size_t i = 0; i < applied.size(); i += options_.max_deltas_per_lock) {
    absl::MutexLock lock(&mu_);
    aggregates_.Stage(std::span<const ModelDayDelta>(applied).subspan(
        i, std::min(options_.max_deltas_per_lock, applied.size() - i)));
  }
  for (size_t i = 0; i < applied.size();) {
    absl::flat_hash_map<ModelIdx, uint64_t>& day_counts = open_day_counts_[applied[i].day];
    for (const Day day = applied[i].day; i < applied.size() && applied[i].day == day; ++i) {
      day_counts[applied[i].model] += static_cast<uint64_t>(applied[i].delta);
    }
  }
  {
    // Only reads: queries go on meanwhile.
    absl::ReaderMutexLock lock(&mu_);
    size_t first_hash = 0;
    for (size_t i = 0; i < order.size();) {
      const Day day = groups[order[i]].day;
      size_t end = i;
      size_t bytes = 0;
      for (; end < order.size() && groups[order[end]].day == day; ++end) {
        const Group& g = groups[order[end]];
        bytes += 10 + registry_.Name(g.model).size() + 8 * size_t{g.count};
      }
      std::string record;
      record.reserve(bytes);
      for (; i < end; ++i) {
        const Group& g = groups[order[i]];
        state_keys::AppendDedupGroup(
            &record, registry_.Name(g.model),
            std::span<const uint64_t>(hashes).subspan(first_hash, g.count));
        first_hash += g.count;
      }
      commit.dedup_records.emplace_back(day, std::move(record));
    }
  }
  {
    // The watermark's week moves with the batch's counts: the weeks entering
    // and leaving the trailing windows are staged with them, merged per
    // entity, and applied in the same slices.
    absl::MutexLock lock(&mu_);
    watermark_ = batch.watermark;
    if (watermark_) aggregates_.StageWatermarkWeek(*WeekOf(watermark_));
  }
  // The live distributions' updates, a slice at a time so that queries wait
  // for at most one slice, never for a whole batch.
  for (bool done = false; !done;) {
    {
      absl::MutexLock lock(&mu_);
      done = aggregates_.ApplyStaged(options_.max_updates_per_lock);
    }
    KillPoint("apply.aggregating");
  }
  {
    absl::MutexLock lock(&mu_);
    counters_.set_events_read(counters_.events_read() + batch.events_read);
    counters_.set_unique_downloads(counters_.unique_downloads() + unique);
    counters_.set_duplicates(counters_.duplicates() + (batch.accepted.size() - unique));
    for (RejectReason reason : batch.rejected) CountRejection(reason);
    counters_.clear_rejected_by_reason();
    for (int r = 0; r < kNumRejectReasons; ++r) {
      auto* rc = counters_.add_rejected_by_reason();
      rc->set_reason(std::string(RejectReasonName(static_cast<RejectReason>(r))));
      rc->set_count(rejected_by_reason_[r]);
    }
    commit.counters = counters_;
    if (watermark_) commit.watermark_micros = ::hubmetrics::ToUnixMicros(*watermark_);
    PublishSnapshot();
    BumpVersion();
  }
  commit.partition_watermarks_micros = std::move(batch.partition_watermarks_micros);
  if (const Day oldest = batch.oldest_accepted_day; oldest > dedup_dropped_before_) {
    // The days leaving dedup get their daily counts stored: from now on
    // nothing else remembers them (see state_store.h). This batch and every
    // earlier one are staged, so the counts are complete.
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = open_day_counts_.begin();
      for (; it != open_day_counts_.end() && it->first < oldest; ++it) {
        // Encoded here, one record per day: no string per (model, day).
        size_t bytes = 0;
        for (const auto& [m, n] : it->second) bytes += 13 + registry_.Name(m).size();
        std::string record;
        record.reserve(bytes);
        for (const auto& [m, n] : it->second) {
          state_keys::AppendDailyCount(&record, registry_.Name(m), n);
        }
        if (!record.empty()) commit.daily_records.emplace_back(it->first, std::move(record));
      }
      open_day_counts_.erase(open_day_counts_.begin(), it);
    }
    dedup_.DropDaysBefore(oldest);
    dedup_dropped_before_ = oldest;
    commit.drop_dedup_before = oldest;
  }
  commit.offsets = std::move(batch.offsets);
  if (!batch.rejected.empty()) {
    if (absl::Status s = batch.dead_letters->Flush(); !s.ok()) {
      broken_ = true;
      return absl::Status(s.code(),
                          absl::StrCat("dead letters not acknowledged, batch not committed; "
                                       "restart hubmetricsd to retry: ",
                                       s.message()));
    }
    KillPoint("apply.dlq_flushed");
  }
  return CommitOrBreak(commit);
}

absl::Status Pipeline::ApplyCatalog(std::span<const CatalogRecord> records,
                                    std::span<const SourceOffset> offsets) {
  // Re-credit works on the applied state, and commits go out in order.
  RETURN_IF_ERROR(Drain());
  if (broken_) {
    return absl::FailedPreconditionError(
        "ingest stopped after a failed commit; restart hubmetricsd to resume from stored state");
  }
  StateCommit commit;
  {
    absl::MutexLock lock(&mu_);
    bool changed = false;
    for (const CatalogRecord& r : records) {
      const ModelIdx m = registry_.Intern(r.model_id);
      const v1::ModelInfo* current = catalog_.Find(m);
      if (r.info) {
        if (current && current->SerializeAsString() == r.info->SerializeAsString()) continue;
      } else if (!current) {
        continue;
      }
      const std::vector<ModelIdx> affected = catalog_.AffectedBy(m);
      aggregates_.RemoveModels(affected);
      KillPoint("catalog.recredit");
      if (r.info) {
        catalog_.Put(*r.info);
        commit.catalog_puts.push_back(*r.info);
      } else {
        catalog_.Remove(m);
        commit.catalog_deletes.push_back(r.model_id);
      }
      aggregates_.AddModels(affected);
      counters_.set_catalog_records(counters_.catalog_records() + 1);
      changed = true;
    }
    if (changed) {
      PublishSnapshot();
      BumpVersion();
    }
    // With the source's position goes catalog_rejected, counted since the
    // last commit.
    if (changed || !offsets.empty()) commit.counters = counters_;
  }
  TakeOffsets(offsets, &commit.offsets);
  if (commit.empty()) return absl::OkStatus();
  return CommitOrBreak(commit);
}

absl::Status Pipeline::ApplyUniqueRecords(std::span<const UniqueTopicRecord> records,
                                          std::span<const SourceOffset> offsets) {
  if (options_.role != PipelineRole::kMetrics) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unique topic records are applied by a metrics replica (--role=metrics); this pipeline "
        "is in role \"",
        RoleName(options_.role), "\" and counts events itself"));
  }
  // Commits go out in order, after any catalog change's.
  RETURN_IF_ERROR(Drain());
  if (broken_) {
    return absl::FailedPreconditionError(
        "ingest stopped after a failed commit; restart hubmetricsd to resume from stored state");
  }
  for (const UniqueTopicRecord& r : records) {
    if (const auto* c = std::get_if<UniqueCountUpdate>(&r); c && !IsValidModelId(c->model_id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unique count record of input partition ", c->partition,
          " has an invalid model id; nothing of the batch was applied (is the unique topic "
          "written by hubmetricsd --role=dedup only?)"));
    }
  }
  // The last record of a key in the batch wins (they are absolute values).
  absl::flat_hash_map<std::tuple<ModelIdx, Day, int32_t>, uint64_t> counts;
  std::map<int32_t, const v1::PartitionProgress*> progress;
  {
    absl::MutexLock lock(&mu_);  // interning
    for (const UniqueTopicRecord& r : records) {
      if (const auto* c = std::get_if<UniqueCountUpdate>(&r)) {
        counts[{registry_.Intern(c->model_id), c->day, c->partition}] = c->unique_downloads;
      } else {
        const auto& p = std::get<v1::PartitionProgress>(r);
        progress[p.partition()] = &p;
      }
    }
  }
  // Each count replaces its part: the (model, day) changes by the difference.
  StateCommit commit;
  absl::flat_hash_map<std::pair<ModelIdx, Day>, int64_t, PairHash> sums;
  {
    absl::ReaderMutexLock lock(&mu_);  // registry_.Name
    for (const auto& [key, n] : counts) {
      const auto [m, day, partition] = key;
      auto [it, inserted] = unique_parts_.try_emplace(key, 0);
      if (it->second == n) {
        if (inserted) unique_parts_.erase(it);
        continue;
      }
      sums[{m, day}] += static_cast<int64_t>(n) - static_cast<int64_t>(it->second);
      it->second = n;
      commit.unique_parts.push_back({registry_.Name(m), day, partition, n});
    }
  }
  std::vector<ModelDayDelta> applied;
  applied.reserve(sums.size());
  for (const auto& [key, delta] : sums) {
    if (delta != 0) applied.push_back({key.first, key.second, delta});
  }
  for (const auto& [partition, p] : progress) {
    auto it = progress_.find(partition);
    if (it != progress_.end() && it->second.SerializeAsString() == p->SerializeAsString()) continue;
    commit.partition_progress.push_back(*p);
  }
  // As ApplyPrepared: staged in slices, applied a slice per hold of the lock.
  for (size_t i = 0; i < applied.size(); i += options_.max_deltas_per_lock) {
    absl::MutexLock lock(&mu_);
    aggregates_.Stage(std::span<const ModelDayDelta>(applied).subspan(
        i, std::min(options_.max_deltas_per_lock, applied.size() - i)));
  }
  for (bool done = applied.empty(); !done;) {
    absl::MutexLock lock(&mu_);
    done = aggregates_.ApplyStaged(options_.max_updates_per_lock);
  }
  const bool changed = !commit.unique_parts.empty() || !commit.partition_progress.empty();
  {
    absl::MutexLock lock(&mu_);
    for (const v1::PartitionProgress& p : commit.partition_progress) progress_[p.partition()] = p;
    if (!commit.partition_progress.empty()) SetCountersFromProgress();
    if (changed) {
      PublishSnapshot();
      BumpVersion();
    }
    // With the source's position go the counters (catalog_rejected too).
    if (changed || !offsets.empty()) commit.counters = counters_;
  }
  TakeOffsets(offsets, &commit.offsets);
  if (commit.empty()) return absl::OkStatus();
  return CommitOrBreak(commit);
}

void Pipeline::CountCatalogRejected() {
  absl::MutexLock lock(&mu_);
  counters_.set_catalog_rejected(counters_.catalog_rejected() + 1);
}

void Pipeline::CountEventsLostToRetention(uint64_t n) {
  absl::MutexLock lock(&mu_);
  counters_.set_events_lost_to_retention(counters_.events_lost_to_retention() + n);
}

void Pipeline::ExpectPartitions(std::span<const int32_t> partitions) {
  validator_.ExpectPartitions(partitions);
}

std::optional<int64_t> Pipeline::StoredOffset(std::string_view source_key) const {
  auto it = offsets_.find(std::string(source_key));
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

void Pipeline::SetSourceExhausted(bool exhausted) {
  absl::MutexLock lock(&status_mu_);
  source_exhausted_ = exhausted;
}

void Pipeline::SetSourceCondition(std::string condition) {
  absl::MutexLock lock(&status_mu_);
  source_condition_ = std::move(condition);
}

void Pipeline::SetPartitionLags(std::vector<v1::PartitionLag> lags) {
  absl::MutexLock lock(&status_mu_);
  lags_ = std::move(lags);
}

void Pipeline::FillWatermark(google::protobuf::Timestamp* out) const {
  if (watermark_) ToTimestamp(*watermark_, out);
}

void Pipeline::PublishSnapshot() {
  auto snapshot = std::make_shared<LiveSnapshot>();
  snapshot->watermark_week = aggregates_.watermark_week();
  snapshot->watermark = watermark_;
  snapshot->windows = aggregates_.LiveValues(DefaultTopK());
  absl::MutexLock lock(&snapshot_mu_);
  snapshot_ = std::move(snapshot);
}

std::shared_ptr<const Pipeline::LiveSnapshot> Pipeline::Snapshot() const {
  absl::MutexLock lock(&snapshot_mu_);
  return snapshot_;
}

const LiveWindowValues* Pipeline::LiveSnapshot::Find(const Window& window) const {
  const std::optional<int> weeks = window.TrailingWeeks(watermark_week);
  if (!weeks) return nullptr;
  for (const LiveWindowValues& w : windows) {
    if (w.weeks == *weeks) return &w;
  }
  return nullptr;
}

uint64_t Pipeline::StateVersion() const {
  absl::ReaderMutexLock lock(&mu_);
  return version_;
}

uint64_t Pipeline::WaitForStateVersionAbove(uint64_t seen, absl::Time deadline) const {
  absl::ReaderMutexLock lock(&mu_);
  auto moved = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return version_ > seen; };
  mu_.AwaitWithDeadline(absl::Condition(&moved), deadline);
  return version_;
}

void Pipeline::Read(absl::FunctionRef<void(const ReadState&)> reader) const {
  absl::ReaderMutexLock lock(&mu_);
  reader(ReadState{aggregates_, catalog_, registry_, watermark_});
}

bool Pipeline::TryRead(absl::FunctionRef<void(const ReadState&)> reader) const {
  if (!mu_.ReaderTryLock()) return false;
  reader(ReadState{aggregates_, catalog_, registry_, watermark_});
  mu_.ReaderUnlock();
  return true;
}

v1::IngestStats Pipeline::GetIngestStats() const {
  v1::IngestStats out;
  {
    absl::ReaderMutexLock lock(&mu_);
    out = counters_;
    // The metrics role's reasons are summed by name from the progress
    // records, with any a newer dedup instance added (SetCountersFromProgress).
    if (options_.role != PipelineRole::kMetrics) {
      out.clear_rejected_by_reason();
      for (int r = 0; r < kNumRejectReasons; ++r) {
        auto* rc = out.add_rejected_by_reason();
        rc->set_reason(std::string(RejectReasonName(static_cast<RejectReason>(r))));
        rc->set_count(rejected_by_reason_[r]);
      }
    }
    FillWatermark(out.mutable_watermark());
    out.set_catalog_models(catalog_.size());
  }
  {
    absl::MutexLock lock(&status_mu_);
    out.set_source_exhausted(source_exhausted_);
    out.set_source_condition(source_condition_);
    if (!state_condition_.empty()) {
      out.set_state_condition(state_condition_);
      out.set_state_condition_detail(state_condition_detail_);
    } else if (const std::string loss = store_->RecoveryLoss(); !loss.empty()) {
      // Until the next start: the loss happened, whatever came after.
      out.set_state_condition("wal_corrupted");
      out.set_state_condition_detail(loss);
    }
    int64_t lag = 0;
    for (const v1::PartitionLag& p : lags_) {
      *out.add_partitions() = p;
      lag += std::max<int64_t>(0, p.lag());
    }
    out.set_consumer_lag(lag);
  }
  out.set_state_disk_bytes(store_->DiskBytes());
  out.set_state_memory_bytes(store_->MemoryBytes());
  return out;
}

}  // namespace hubmetrics
