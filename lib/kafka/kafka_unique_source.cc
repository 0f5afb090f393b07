#include "lib/kafka/kafka_unique_source.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/kafka/kafka_internal.h"

namespace hubmetrics {

using kafka_internal::PartitionList;
using kafka_internal::ToMillis;
using kafka_internal::TopicPartitions;

class KafkaUniqueSource::Impl {
 public:
  Impl(KafkaUniqueSourceOptions options, Pipeline* pipeline, IngestGate* gate)
      : options_(std::move(options)), pipeline_(pipeline), gate_(gate) {}

  ~Impl() {
    if (consumer_) consumer_->close();
  }

  absl::Status Init(const KafkaSettings& settings) {
    // No group: every replica reads the whole topic. librdkafka still wants
    // a group.id; it is never joined or committed to.
    ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                     NewKafkaConf(settings,
                                  {{"client.id", "hubmetricsd-metrics"},
                                   {"max.partition.fetch.bytes", "8388608"}},
                                  {{"group.id", "hubmetricsd-unique-reader-unused"},
                                   {"isolation.level", "read_committed"},
                                   {"enable.auto.commit", "false"},
                                   {"enable.auto.offset.store", "false"},
                                   {"enable.partition.eof", "false"},
                                   {"auto.offset.reset", "earliest"}}));
    std::string err;
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot create the unique topic's consumer: ", err));
    }
    return absl::OkStatus();
  }

  absl::Status Run(const std::atomic<bool>& stop) {
    LogInfo("metrics replica: reading %s (read_committed)", options_.topic);
    absl::Time last_metadata = absl::InfinitePast();
    absl::Time last_lag = absl::InfinitePast();
    absl::Time batch_start = absl::Now();
    while (!stop.load()) {
      if (absl::Now() - last_metadata >= absl::Seconds(5)) {
        last_metadata = absl::Now();
        if (auto ps = TopicPartitions(consumer_.get(), options_.topic, 1000);
            ps && *ps != assigned_) {
          RETURN_IF_ERROR(Apply());
          RETURN_IF_ERROR(Assign(*ps));
        }
      }
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (msg->err() == RdKafka::ERR_NO_ERROR) {
        if (records_.empty()) batch_start = absl::Now();
        Take(*msg);
      } else if (msg->err() != RdKafka::ERR__TIMED_OUT &&
                 msg->err() != RdKafka::ERR__PARTITION_EOF &&
                 (++errors_logged_ <= 20 || errors_logged_ % 100 == 0)) {
        LogWarning("consuming %s: %s", options_.topic, msg->errstr());
      }
      if (!ends_.empty() && (records_.size() >= options_.max_batch_records ||
                             absl::Now() - batch_start >= options_.max_batch_time)) {
        RETURN_IF_ERROR(Apply());
      }
      if (absl::Now() - last_lag >= options_.lag_interval) {
        PublishLags();
        last_lag = absl::Now();
      }
    }
    return Apply();
  }

 private:
  void Take(const RdKafka::Message& msg) {
    auto it = next_.find(msg.partition());
    if (it == next_.end() || msg.offset() < it->second) return;
    it->second = msg.offset() + 1;
    ends_[msg.partition()] = msg.offset() + 1;
    const std::string_view key(msg.key_pointer() ? static_cast<const char*>(msg.key_pointer()) : "",
                               msg.key_pointer() ? msg.key_len() : 0);
    const std::string_view value(msg.payload() ? static_cast<const char*>(msg.payload()) : "",
                                 msg.payload() ? msg.len() : 0);
    absl::StatusOr<UniqueTopicRecord> record = DecodeUniqueTopicRecord(key, value);
    if (!record.ok()) {
      if (++skipped_ <= 20 || skipped_ % 1000 == 0) {
        LogError("%s[%d]@%d skipped (%d so far): %s", options_.topic, msg.partition(), msg.offset(),
                 skipped_, record.status().message());
      }
      return;
    }
    records_.push_back(*std::move(record));
  }

  absl::Status Apply() {
    if (ends_.empty()) return absl::OkStatus();
    std::vector<SourceOffset> offsets;
    for (const auto& [p, e] : ends_) offsets.push_back({KafkaSourceKey(options_.topic, p), e});
    {
      absl::MutexLock lock(&gate_->mu);
      RETURN_IF_ERROR(pipeline_->ApplyUniqueRecords(records_, offsets));
    }
    for (const auto& [p, e] : ends_) stored_[p] = e;
    records_.clear();
    ends_.clear();
    return absl::OkStatus();
  }

  absl::Status Assign(const std::vector<int32_t>& partitions) {
    PartitionList list;
    for (int32_t p : partitions) {
      if (!next_.contains(p)) {
        const std::optional<int64_t> stored =
            pipeline_->StoredOffset(KafkaSourceKey(options_.topic, p));
        next_[p] = stored.value_or(0);
        stored_[p] = stored.value_or(0);
      }
      list.list.push_back(RdKafka::TopicPartition::create(
          options_.topic, p, next_[p] > 0 ? next_[p] : RdKafka::Topic::OFFSET_BEGINNING));
    }
    if (RdKafka::ErrorCode e = consumer_->assign(list.list); e != RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("cannot assign ", options_.topic, ": ", RdKafka::err2str(e)));
    }
    if (partitions.empty()) {
      LogWarning("unique topic %s does not exist yet (no dedup instance has started)",
                 options_.topic);
    } else {
      LogInfo("reading %d partitions of %s from the stored offsets", partitions.size(),
              options_.topic);
    }
    assigned_ = partitions;
    return absl::OkStatus();
  }

  void PublishLags() {
    std::vector<v1::PartitionLag> lags;
    for (int32_t p : assigned_) {
      int64_t low = -1;
      int64_t high = -1;
      if (consumer_->get_watermark_offsets(options_.topic, p, &low, &high) !=
              RdKafka::ERR_NO_ERROR ||
          high < 0) {
        if (consumer_->query_watermark_offsets(options_.topic, p, &low, &high, 500) !=
            RdKafka::ERR_NO_ERROR) {
          high = -1;
        }
      }
      v1::PartitionLag lag;
      lag.set_topic(options_.topic);
      lag.set_partition(p);
      lag.set_next_offset(std::max<int64_t>(stored_[p], std::max<int64_t>(low, 0)));
      lag.set_high_watermark(high);
      // Read_committed: the high watermark counts transaction markers and
      // open transactions' records, so a caught-up replica may show a small
      // lag (a marker per transaction) until the next records come.
      lag.set_lag(high < 0 ? -1 : std::max<int64_t>(0, high - lag.next_offset()));
      lags.push_back(std::move(lag));
    }
    pipeline_->SetPartitionLags(std::move(lags));
  }

  const KafkaUniqueSourceOptions options_;
  Pipeline* const pipeline_;
  IngestGate* const gate_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::vector<int32_t> assigned_;
  // Per partition: the next offset to take; committed with the state.
  std::map<int32_t, int64_t> next_;
  std::map<int32_t, int64_t> stored_;
  // The batch: records and the next offset of each partition in it.
  std::vector<UniqueTopicRecord> records_;
  std::map<int32_t, int64_t> ends_;
  uint64_t skipped_ = 0;
  uint64_t errors_logged_ = 0;
};

KafkaUniqueSource::KafkaUniqueSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaUniqueSource::~KafkaUniqueSource() = default;

absl::StatusOr<std::unique_ptr<KafkaUniqueSource>> KafkaUniqueSource::Create(
    const KafkaSettings& settings, const KafkaUniqueSourceOptions& options, Pipeline* pipeline,
    IngestGate* gate) {
  auto impl = std::make_unique<Impl>(options, pipeline, gate);
  RETURN_IF_ERROR(impl->Init(settings));
  return std::unique_ptr<KafkaUniqueSource>(new KafkaUniqueSource(std::move(impl)));
}

absl::Status KafkaUniqueSource::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }

}  // namespace hubmetrics
