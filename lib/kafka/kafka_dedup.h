// KafkaDedup: hubmetricsd --role=dedup. One instance of a consumer group over
// the events topic; it owns the dedup of the partitions the group assigns it
// (PartitionDeduper, memory only) and publishes, per batch, the changed
// per-(model, day, input partition) unique counts, the partitions' progress
// (counters, watermark) and the batch's dead letters to the unique topic and
// the DLQ topic in ONE Kafka transaction together with the consumed offsets
// (the progress rides along as each offset's metadata). A crash at any point
// therefore publishes a batch wholly or not at all (read_committed readers
// never see an aborted transaction's records), and the next owner of a
// partition starts from its committed offset.
//
// Partition moves and restarts: the dedup state is not stored; on assignment
// the owner reads the committed offset and progress, seeks to the first
// offset whose Kafka timestamp is >= PartitionDeduper::RebuildFrom() (offsets
// for times), replays up to the committed offset without publishing, then
// goes on. Where retention has deleted part of that range it says so (a
// warning: counts of the open days may miss users seen only in the deleted
// part, so a later event of theirs would count again) and, for offsets past
// the committed one, counts the events lost (events_lost_to_retention).
//
// The unique topic is created when missing: compacted (cleanup.policy=compact:
// the last value of every key is kept, so it holds the whole history).
//
// Threads: Run() consumes, processes and produces on the calling thread
// (the rebalance callback runs there too). Stop by setting the `stop` flag;
// Run() returns within about a second, after the open transaction (if any) is
// committed or aborted.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_DEDUP_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_DEDUP_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/events/events.h"
#include "lib/kafka/kafka_config.h"
#include "lib/time/time.h"
#include "lib/unique/partition_deduper.h"

namespace hubmetrics {

struct KafkaDedupOptions {
  KafkaSettings settings;
  std::string events_topic = "hub.downloads";
  std::string unique_topic = "hubmetrics.unique";
  std::string dlq_topic = "hub.downloads.dlq";
  // The dedup instances' consumer group (one group for all of them).
  std::string group_id = "hubmetrics-dedup";
  // This instance's transactional id: unique per instance and stable across
  // its restarts (a StatefulSet's pod name), so that a restarted instance
  // fences its previous incarnation.
  std::string transactional_id;
  // Partitions of the unique topic when it is created here.
  int unique_topic_partitions = 6;
  PartitionDeduperOptions deduper;
  // A batch (one transaction) ends after this many messages or this much
  // time, whichever first.
  size_t max_batch_messages = 100000;
  absl::Duration max_batch_time = absl::Milliseconds(200);
  // Bound of each transaction call and of the topic creation.
  absl::Duration kafka_timeout = absl::Seconds(60);
};

class KafkaDedup {
 public:
  // `hasher` and `clock` are not owned and must outlive the instance.
  // InvalidArgument for a bad setting; Unavailable when the brokers do not
  // answer the transaction's initialisation in time.
  static absl::StatusOr<std::unique_ptr<KafkaDedup>> Create(KafkaDedupOptions options,
                                                            const UserHasher* hasher,
                                                            const Clock* clock);
  ~KafkaDedup();

  // Consumes until `stop` is set (returns OK) or publishing fails for good
  // (returns the error: the process must restart; nothing is lost, the next
  // start re-reads from the committed offsets).
  absl::Status Run(const std::atomic<bool>& stop);

  class Impl;

 private:
  explicit KafkaDedup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_DEDUP_H_
