// Helpers shared by the Kafka components of lib/kafka (not a public
// interface): librdkafka durations, broker-down errors, owned partition
// lists, topic metadata.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_INTERNAL_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_INTERNAL_H_

#include <librdkafka/rdkafkacpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace hubmetrics::kafka_internal {

// A duration as librdkafka's int milliseconds, clamped to [0, 2^30].
int ToMillis(absl::Duration d);

// Errors that mean no broker can be reached.
bool BrokersDown(RdKafka::ErrorCode err);

// Owns the TopicPartition objects of a librdkafka partition list.
struct PartitionList {
  std::vector<RdKafka::TopicPartition*> list;
  PartitionList() = default;
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
  ~PartitionList() { RdKafka::TopicPartition::destroy(list); }
};

// Inside a rebalance callback: takes `partitions` (assign) or gives them up
// (revoke) the way the group's protocol requires — incrementally for
// cooperative assignors, the whole assignment for eager ones. Unavailable
// with librdkafka's reason when it refuses.
absl::Status ApplyRebalance(RdKafka::KafkaConsumer* consumer, bool assign,
                            std::vector<RdKafka::TopicPartition*>& partitions);

// The partitions of `topic`, ascending: nullopt when the brokers did not
// answer within `timeout_ms`; empty when the topic does not exist.
std::optional<std::vector<int32_t>> TopicPartitions(RdKafka::Handle* handle,
                                                    const std::string& topic, int timeout_ms);

}  // namespace hubmetrics::kafka_internal

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_INTERNAL_H_
