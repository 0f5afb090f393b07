// PartitionDeduper: the dedup role's work for ONE input partition, without
// Kafka. It decodes, validates, hashes and deduplicates the partition's
// events in offset order and says which (model, day) unique counts changed
// (absolute values, for the unique topic; see unique_record.h), and keeps the
// partition's PartitionProgress (counters, watermark, next offset).
//
// Lateness is the partition's own (as EventValidator judges it per
// partition): an event is too_late when its day is more than lateness_days
// before the day of the partition's watermark. So what is counted depends
// only on the partition's events, never on which instance owns it or which
// other partitions that instance holds.
//
// Rebuild after a partition move or a restart: the state is memory only.
// Constructed from the progress stored with the committed offset, the
// deduper is in rebuild until it reaches progress.next_offset: records below
// it are replayed into the dedup sets and counts of the open days (day >= the
// stored watermark's day - lateness_days, event time <= the stored
// watermark) and produce no output and no counter change. The caller starts
// reading at the first offset whose Kafka timestamp is >= RebuildFrom()
// (offsets for times). That is exact when every event's Kafka timestamp is at
// least its event time minus max_future_skew, as it is when producers let
// Kafka stamp records when they are produced (CreateTime = now) or stamp
// them with the event time.
//
// Thread safety: not thread-safe; one thread at a time. The hasher and clock
// are not owned and must outlive the deduper.
#ifndef HUBMETRICS_LIB_UNIQUE_PARTITION_DEDUPER_H_
#define HUBMETRICS_LIB_UNIQUE_PARTITION_DEDUPER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "lib/catalog/catalog.h"
#include "lib/dedup/unique_download_counter.h"
#include "lib/events/events.h"
#include "lib/time/time.h"
#include "lib/unique/unique_record.h"
#include "proto/hubmetrics/v1/unique.pb.h"

namespace hubmetrics {

// One input record (a Kafka value) and its offset. `value` is only valid
// during the call it is passed to.
struct PartitionRecord {
  std::string_view value;
  int64_t offset = 0;
};

struct PartitionDeduperOptions {
  ValidatorOptions validator;
  EventFormat format = EventFormat::kBinary;
  // Records longer than this are rejected too_large before decoding.
  uint64_t max_event_bytes = kDefaultMaxEventBytes;
};

class PartitionDeduper {
 public:
  // `start`: the progress stored with the partition's committed offset (a
  // default PartitionProgress with partition set and next_offset 0 for a
  // partition never committed).
  PartitionDeduper(PartitionDeduperOptions options, v1::PartitionProgress start,
                   const UserHasher* hasher, const Clock* clock);

  // Where a rebuild starts reading: the earliest Kafka timestamp an event of
  // an open day may carry; nullopt when nothing was accepted yet (read from
  // next_offset, nothing to rebuild).
  std::optional<absl::Time> RebuildFrom() const;
  // The stored next_offset: records below it only rebuild.
  int64_t live_from() const { return live_from_; }

  struct Output {
    // Absolute counts of the (model, day) pairs this call changed, one each.
    std::vector<UniqueCountUpdate> counts;
    // Rejected records: index into the call's `records`, and why.
    std::vector<std::pair<size_t, Rejection>> rejected;
  };
  // Processes `records` (one partition, ascending offsets; offsets may skip).
  // Records below the rebuild end only rebuild; the rest count.
  Output Process(std::span<const PartitionRecord> records);

  // `n` events deleted by retention before they were read.
  void CountLostToRetention(uint64_t n);

  // Counters, watermark and next offset after the records processed so far
  // (during rebuild: the stored ones).
  const v1::PartitionProgress& progress() const { return progress_; }
  // (model, day) pairs and triples held for the open days (for logs, tests).
  size_t open_model_days() const { return counts_.size(); }
  size_t open_triples() const { return dedup_.size(); }

 private:
  // Drops days before the validator's floor from the sets and counts.
  void DropClosedDays();

  const PartitionDeduperOptions options_;
  const UserHasher* const hasher_;
  const Clock* const clock_;
  v1::PartitionProgress progress_;
  // Records at or after this offset count (the stored next_offset).
  const int64_t live_from_;
  EventValidator validator_;
  // The rebuild's acceptance bounds, from the stored progress.
  Day rebuild_floor_;
  std::optional<absl::Time> rebuild_watermark_;
  ModelRegistry models_;
  UniqueDownloadCounter dedup_;
  Day dropped_before_ = INT32_MIN;
  // Unique downloads per (model, day) of the open days.
  absl::flat_hash_map<std::pair<ModelIdx, Day>, uint64_t> counts_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_UNIQUE_PARTITION_DEDUPER_H_
