#include "lib/kafka/kafka_internal.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"

namespace hubmetrics::kafka_internal {

int ToMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, 1 << 30));
}

bool BrokersDown(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR__ALL_BROKERS_DOWN || err == RdKafka::ERR__TRANSPORT ||
         err == RdKafka::ERR__RESOLVE;
}

absl::Status ApplyRebalance(RdKafka::KafkaConsumer* consumer, bool assign,
                            std::vector<RdKafka::TopicPartition*>& partitions) {
  const char* what = nullptr;
  std::string reason;
  if (consumer->rebalance_protocol() == "COOPERATIVE") {
    std::unique_ptr<RdKafka::Error> e(assign ? consumer->incremental_assign(partitions)
                                             : consumer->incremental_unassign(partitions));
    what = assign ? "incremental_assign" : "incremental_unassign";
    if (e) reason = e->str();
  } else {
    const RdKafka::ErrorCode e = assign ? consumer->assign(partitions) : consumer->unassign();
    what = assign ? "assign" : "unassign";
    if (e != RdKafka::ERR_NO_ERROR) reason = RdKafka::err2str(e);
  }
  if (reason.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", reason));
}

std::optional<std::vector<int32_t>> TopicPartitions(RdKafka::Handle* handle,
                                                    const std::string& topic, int timeout_ms) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(handle, topic, nullptr, err));
  if (!t) return std::nullopt;
  RdKafka::Metadata* raw = nullptr;
  if (handle->metadata(false, t.get(), &raw, timeout_ms) != RdKafka::ERR_NO_ERROR) {
    return std::nullopt;
  }
  std::unique_ptr<RdKafka::Metadata> md(raw);
  std::vector<int32_t> partitions;
  for (const RdKafka::TopicMetadata* tm : *md->topics()) {
    if (tm->topic() != topic || tm->err() != RdKafka::ERR_NO_ERROR) continue;
    for (const RdKafka::PartitionMetadata* pm : *tm->partitions()) partitions.push_back(pm->id());
  }
  std::sort(partitions.begin(), partitions.end());
  return partitions;
}

}  // namespace hubmetrics::kafka_internal
