// The Kafka ingest of hubmetricsd as one unit: the catalog topic is read to
// its end before any event is consumed (so events are credited with the
// current catalog from the start), then the catalog is followed on its own
// thread while the event source consumes on another. Both share one
// IngestGate. See kafka_sources.h for the exactly-once contract.
//
// Lifetime: Start() returns once the threads run; Stop() (also called by the
// destructor) sets the stop flag and joins them, committing what was read.
// `pipeline` is not owned and must outlive this object.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_INGEST_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_INGEST_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "lib/ingest/pipeline.h"
#include "lib/kafka/kafka_sources.h"
#include "lib/kafka/kafka_unique_source.h"

namespace hubmetrics {

struct KafkaIngestOptions {
  KafkaSettings settings;
  // kAll: events from `events`; kMetrics: the unique topic from `unique`
  // (no events, no dead letters). The pipeline must have the same role.
  PipelineRole role = PipelineRole::kAll;
  KafkaEventSourceOptions events;
  KafkaUniqueSourceOptions unique;
  KafkaCatalogSourceOptions catalog;
  std::string dlq_topic = "hub.downloads.dlq";
  // How many nice steps below the caller's own the ingest threads run: the
  // consume and catalog threads, the pipeline threads they start, and
  // librdkafka's threads (fetch, decompress, produce dead letters) of the
  // three Kafka clients; see LowerIngestPriority.
  int ingest_nice = 0;
};

class KafkaIngest {
 public:
  // `on_fatal` is called (from an ingest thread, at most once) when ingest
  // cannot go on — the pipeline refused a commit, a catalog read timed out at
  // start — and the process should stop. InvalidArgument for bad settings.
  static absl::StatusOr<std::unique_ptr<KafkaIngest>> Start(
      KafkaIngestOptions options, Pipeline* pipeline, std::function<void(absl::Status)> on_fatal);
  ~KafkaIngest();
  void Stop();

 private:
  KafkaIngest() = default;
  void Fatal(absl::Status s);

  Pipeline* pipeline_ = nullptr;
  std::function<void(absl::Status)> on_fatal_;
  std::atomic<bool> fatal_called_{false};
  std::atomic<bool> stop_{false};
  IngestGate gate_;
  std::unique_ptr<KafkaDeadLetterSink> dead_letters_;
  std::unique_ptr<KafkaCatalogSource> catalog_;
  std::unique_ptr<KafkaEventSource> events_;
  std::unique_ptr<KafkaUniqueSource> unique_;
  std::thread events_thread_;
  std::thread catalog_thread_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_INGEST_H_
