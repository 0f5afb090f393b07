// The Kafka sources of hubmetricsd (librdkafka): download events from a
// consumer group, the model catalog from a compacted topic, and the dead
// letter queue for rejected events.
//
// Exactly-once effect: the event source hands each batch to
// Pipeline::IngestEvents together with the next offset of every partition in
// the batch (source key "kafka:<topic>:<partition>"); the pipeline stores
// them in the same RocksDB commit as the state they produced, after the
// batch's dead letters were acknowledged by the broker. On assignment a
// partition starts at the offset stored with the state (the beginning when
// none); Kafka's group offsets are committed too, for lag tools, but never
// read. On revocation the in-flight batch is committed before the partitions
// are given up.
//
// Threads: each source runs on the thread that calls its Run(); the
// pipeline's ingest side is one thread at a time, so every source sharing a
// pipeline must be given the same IngestGate. Stop by setting the `stop` flag
// passed to Run(); Run() returns within about a second.
//
// Broker trouble: librdkafka reconnects by itself. While no broker is
// reachable the event source sets the pipeline's source condition ("kafka
// brokers unreachable: ...") and clears it once the brokers answer again;
// queries are served from the state meanwhile.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_SOURCES_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_SOURCES_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/ingest/pipeline.h"
#include "lib/kafka/kafka_config.h"
#include "lib/kafka/kafka_producer.h"

namespace hubmetrics {

// Serialises the calls of several sources into the pipeline's ingest side.
class IngestGate {
 public:
  absl::Mutex mu;
};

// The source key under which the next offset of a partition is stored.
std::string KafkaSourceKey(std::string_view topic, int32_t partition);

// Produces each rejected event to the DLQ topic: the original value and key,
// headers reason, detail, source_topic, source_partition, source_offset.
// Idempotent producer (no duplicates from retries), a KafkaProducer. Reject()
// is called by one thread, Flush() by another (possibly meanwhile).
//
// A value larger than the producer may send (message.max.bytes, 1,000,000 by
// default, possible only when the events topic allows larger messages than
// that) goes as its first kDeadLetterCutBytes bytes with a header
// value_truncated_from=<original size>, instead of failing the batch's commit
// on every restart.
class KafkaDeadLetterSink final : public DeadLetterSink {
 public:
  static constexpr size_t kDeadLetterCutBytes = 64 * 1024;

  // `stop` (not owned, may be null) ends a Flush() that waits for an
  // unreachable broker, with an error, so that shutdown is not held up.
  static absl::StatusOr<std::unique_ptr<KafkaDeadLetterSink>> Create(const KafkaSettings& settings,
                                                                     std::string dlq_topic,
                                                                     const std::atomic<bool>* stop);
  ~KafkaDeadLetterSink() override;

  // Called from Flush(), on its thread, about every half second while dead
  // letters stay unacknowledged for more than two seconds: the event source
  // checks whether the brokers are down and reports the condition, since it
  // cannot consume meanwhile.
  void SetStallHook(std::function<void()> hook) { stall_hook_ = std::move(hook); }

  // The dead letter carries record.key as its key (none when empty).
  void Reject(const SourceRecord& record, const Rejection& rejection) override;
  // Waits until every record since the last Flush() is acknowledged by the
  // broker (retrying while it is unreachable). Unavailable if any delivery
  // failed or `stop` was set while waiting; the batch must then not commit.
  absl::Status Flush() override;

  // Records acknowledged so far (for tests and logs).
  uint64_t delivered() const { return producer_->acknowledged(); }

 private:
  KafkaDeadLetterSink(std::string dlq_topic, const std::atomic<bool>* stop);

  const std::string topic_;
  const std::atomic<bool>* const stop_;
  std::function<void()> stall_hook_;
  std::unique_ptr<KafkaProducer> producer_;
  absl::Mutex mu_;
  // The first local produce failure since the last Flush().
  std::string produce_error_ ABSL_GUARDED_BY(mu_);
};

// Produces `record` as a dead letter to `topic` with `producer`: the original
// value and key, headers reason, detail, source_topic, source_partition,
// source_offset; a value over the producer's message size is cut to
// KafkaDeadLetterSink::kDeadLetterCutBytes and marked value_truncated_from.
// Returns Produce()'s status (queued, not yet acknowledged).
absl::Status ProduceDeadLetter(KafkaProducer* producer, const std::string& topic,
                               const SourceRecord& record, const Rejection& rejection);

struct KafkaEventSourceOptions {
  std::string topic = "hub.downloads";
  std::string group_id = "hubmetrics";
  EventFormat format = EventFormat::kBinary;
  // A batch ends after this many messages or this much time, whichever first.
  size_t max_batch_messages = 200000;
  absl::Duration max_batch_time = absl::Milliseconds(200);
  // How often partition lags are published to the pipeline.
  absl::Duration lag_interval = absl::Seconds(1);
};

class KafkaEventSource {
 public:
  // `pipeline`, `gate` and `dead_letters` are not owned and must outlive the
  // source. InvalidArgument for a bad client setting (naming the key).
  static absl::StatusOr<std::unique_ptr<KafkaEventSource>> Create(
      const KafkaSettings& settings, const KafkaEventSourceOptions& options, Pipeline* pipeline,
      IngestGate* gate, KafkaDeadLetterSink* dead_letters);
  ~KafkaEventSource();

  // Consumes until `stop` is set (then commits what it holds, leaves the group
  // and returns OK) or the pipeline fails (returns its error: the process must
  // restart).
  absl::Status Run(const std::atomic<bool>& stop);

  class Impl;

 private:
  explicit KafkaEventSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct KafkaCatalogSourceOptions {
  std::string topic = "hub.models";
  EventFormat format = EventFormat::kBinary;
  // How long Bootstrap() waits for the topic's end offsets (broker reachable).
  absl::Duration bootstrap_timeout = absl::Seconds(60);
};

// Reads the whole catalog topic from the beginning (all partitions assigned
// explicitly; no consumer group), then follows it. Key = model id; a null
// value is a tombstone removing the model. Records that do not decode, or
// whose key differs from their model_id, are logged and counted
// (catalog_rejected).
class KafkaCatalogSource {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaCatalogSource>> Create(
      const KafkaSettings& settings, const KafkaCatalogSourceOptions& options, Pipeline* pipeline,
      IngestGate* gate);
  ~KafkaCatalogSource();

  // Reads the topic up to its end offsets as of the call and applies the last
  // record of each model in one ApplyCatalog (a model published several times
  // re-credits once). A topic that does not exist yet is an empty catalog.
  // DeadlineExceeded if the brokers do not answer within bootstrap_timeout.
  absl::Status Bootstrap(const std::atomic<bool>& stop);
  // Follows the topic (new records and new partitions) until `stop` is set.
  absl::Status Follow(const std::atomic<bool>& stop);

  class Impl;

 private:
  explicit KafkaCatalogSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_SOURCES_H_
