// The unique topic's records (hubmetricsd --unique_topic, default
// hubmetrics.unique): what dedup instances (--role=dedup) publish and metrics
// replicas (--role=metrics) read. Stored format, written down once; change it
// only with a new key kind, never by reinterpreting an existing one.
//
// The topic is compacted: Kafka keeps the last value of every key, so every
// value is absolute (never a delta) and the keys never collide between
// writers: each input partition is owned by one dedup instance at a time.
//
//   count key     'u' partition(4) day(4) model_id
//                 -> hubmetrics.v1.UniqueCount: the unique downloads of
//                 model_id on that UTC day among the input partition's events
//   progress key  'p' partition(4)
//                 -> hubmetrics.v1.PartitionProgress: the partition's ingest
//                 counters, watermark and next input offset
// partition: int32 big-endian; day: int32 big-endian with the sign bit flipped
// (as in the RocksDB state, lib/state/keys.h). A metrics replica sums count
// values over partitions for a (model, day), and progress values over
// partitions for the ingest counters.
//
// The Kafka record's partition in the unique topic is chosen by the key's
// hash (librdkafka's default partitioner); readers must not depend on it.
//
// Thread safety: free functions without shared state.
#ifndef HUBMETRICS_LIB_UNIQUE_UNIQUE_RECORD_H_
#define HUBMETRICS_LIB_UNIQUE_UNIQUE_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/unique.pb.h"

namespace hubmetrics {

// The absolute unique downloads of (model_id, day) among one input
// partition's events.
struct UniqueCountUpdate {
  int32_t partition = 0;
  Day day = 0;
  std::string model_id;
  uint64_t unique_downloads = 0;

  friend bool operator==(const UniqueCountUpdate&, const UniqueCountUpdate&) = default;
};

std::string UniqueCountKey(int32_t partition, Day day, std::string_view model_id);
std::string ProgressKey(int32_t partition);

// The record of an update: key and serialized UniqueCount.
std::string EncodeUniqueCountValue(uint64_t unique_downloads);

// One decoded record of the unique topic.
using UniqueTopicRecord = std::variant<UniqueCountUpdate, v1::PartitionProgress>;

// InvalidArgument (saying what is wrong, never the bytes) when the key is of
// no known kind, is truncated, names an invalid model id (IsValidModelId),
// the value does not parse, or a progress value's partition differs from its
// key's.
absl::StatusOr<UniqueTopicRecord> DecodeUniqueTopicRecord(std::string_view key,
                                                          std::string_view value);

// PartitionProgress as the metadata string of a committed consumer-group
// offset (base64 of the serialized message: Kafka keeps metadata as a UTF-8
// string), and back. InvalidArgument when the metadata is not ours.
std::string ProgressToOffsetMetadata(const v1::PartitionProgress& progress);
absl::StatusOr<v1::PartitionProgress> ProgressFromOffsetMetadata(std::string_view metadata);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_UNIQUE_UNIQUE_RECORD_H_
