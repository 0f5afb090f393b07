// KafkaUniqueSource: what a metrics replica (hubmetricsd --role=metrics)
// reads. Every partition of the unique topic (unique_record.h), assigned
// explicitly (no consumer group: every replica reads everything), read
// read_committed — only the dedup instances' committed transactions — from
// the offsets stored with the replica's state (the beginning when none: a
// new or wiped replica rebuilds from the compacted topic alone), and handed
// to Pipeline::ApplyUniqueRecords in batches with their next offsets, which
// the pipeline commits with the state. A restart resumes from there; a
// record applied twice changes nothing (absolute values).
//
// A record that does not decode is skipped and logged (it cannot come from a
// dedup instance); the offsets still move past it. Partitions added to the
// topic are picked up within seconds. The lags of the unique topic are
// published to the pipeline (GetIngestStats' partitions and consumer_lag).
//
// Threads: Run() on the calling thread; every source sharing the pipeline
// uses the same IngestGate. Stop by setting `stop`; Run() returns within
// about a second.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_UNIQUE_SOURCE_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_UNIQUE_SOURCE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/ingest/pipeline.h"
#include "lib/kafka/kafka_config.h"
#include "lib/kafka/kafka_sources.h"

namespace hubmetrics {

struct KafkaUniqueSourceOptions {
  std::string topic = "hubmetrics.unique";
  // A batch (one ApplyUniqueRecords, one commit) ends after this many
  // records or this much time, whichever first.
  size_t max_batch_records = 100000;
  absl::Duration max_batch_time = absl::Milliseconds(200);
  absl::Duration lag_interval = absl::Seconds(1);
};

class KafkaUniqueSource {
 public:
  // `pipeline` (metrics role) and `gate` are not owned and must outlive the
  // source. InvalidArgument for a bad client setting.
  static absl::StatusOr<std::unique_ptr<KafkaUniqueSource>> Create(
      const KafkaSettings& settings, const KafkaUniqueSourceOptions& options, Pipeline* pipeline,
      IngestGate* gate);
  ~KafkaUniqueSource();

  // Follows the topic until `stop` is set (returns OK after applying what it
  // holds) or the pipeline fails (its error: the process must restart).
  absl::Status Run(const std::atomic<bool>& stop);

  class Impl;

 private:
  explicit KafkaUniqueSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_UNIQUE_SOURCE_H_
