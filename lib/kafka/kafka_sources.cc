#include "lib/kafka/kafka_sources.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/events/events.h"
#include "lib/kafka/kafka_internal.h"

namespace hubmetrics {
namespace {

using kafka_internal::ApplyRebalance;
using kafka_internal::BrokersDown;
using kafka_internal::PartitionList;
using kafka_internal::ToMillis;
using kafka_internal::TopicPartitions;

// Error reporting from librdkafka's own threads goes through the consumer
// queue; this callback sees what is not tied to a message (broker state).
// Its fields are guarded by `mu` (the event source's dead-letter stall hook
// reads and sets them from the pipeline's apply thread).
class ErrorEvents : public RdKafka::EventCb {
 public:
  explicit ErrorEvents(std::string what) : what_(std::move(what)) {}
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      absl::MutexLock lock(&mu);
      last_error = event.err();
      last_text = event.str();
      if (BrokersDown(event.err())) brokers_down = true;
      if (event.fatal()) fatal = true;
      if (++logged_ <= 20 || logged_ % 100 == 0) {
        LogWarning("%s: kafka: %s (%s)", what_, event.str(), RdKafka::err2str(event.err()));
      }
    } else if (event.type() == RdKafka::Event::EVENT_LOG && event.severity() <= 4) {
      LogWarning("%s: librdkafka %s: %s", what_, event.fac(), event.str());
    }
  }
  absl::Mutex mu;
  // Atomic besides: the event source checks it per message without the lock.
  std::atomic<bool> brokers_down{false};
  bool fatal ABSL_GUARDED_BY(mu) = false;
  RdKafka::ErrorCode last_error ABSL_GUARDED_BY(mu) = RdKafka::ERR_NO_ERROR;
  std::string last_text ABSL_GUARDED_BY(mu);

 private:
  std::string what_;
  uint64_t logged_ = 0;
};

}  // namespace

std::string KafkaSourceKey(std::string_view topic, int32_t partition) {
  return absl::StrCat("kafka:", absl::string_view(topic.data(), topic.size()), ":", partition);
}

// ---------------------------------------------------------------- dead letters

KafkaDeadLetterSink::KafkaDeadLetterSink(std::string dlq_topic, const std::atomic<bool>* stop)
    : topic_(std::move(dlq_topic)), stop_(stop) {}

// The producer waits up to its close_timeout (2 s) for the last dead letters.
KafkaDeadLetterSink::~KafkaDeadLetterSink() = default;

absl::StatusOr<std::unique_ptr<KafkaDeadLetterSink>> KafkaDeadLetterSink::Create(
    const KafkaSettings& settings, std::string dlq_topic, const std::atomic<bool>* stop) {
  if (dlq_topic.empty()) return absl::InvalidArgumentError("--dlq_topic is empty");
  std::unique_ptr<KafkaDeadLetterSink> sink(new KafkaDeadLetterSink(std::move(dlq_topic), stop));
  KafkaProducerOptions options;
  options.client_id = "hubmetricsd-dlq";
  options.idempotence = true;
  // Wait for the broker however long an outage lasts: a failed delivery
  // would stop ingest until a restart. The stop flag ends the waits.
  options.delivery_timeout = absl::InfiniteDuration();
  options.max_queue_wait = stop != nullptr ? absl::InfiniteDuration() : absl::Minutes(5);
  options.linger = absl::Milliseconds(5);
  options.stop = stop;
  ASSIGN_OR_RETURN(sink->producer_, KafkaProducer::Create(settings, std::move(options)));
  return sink;
}

absl::Status ProduceDeadLetter(KafkaProducer* producer, const std::string& topic,
                               const SourceRecord& record, const Rejection& rejection) {
  std::vector<KafkaHeader> headers = {{"reason", std::string(RejectReasonName(rejection.reason))},
                                      {"detail", rejection.detail},
                                      {"source_topic", std::string(record.source)},
                                      {"source_partition", absl::StrCat(record.partition)},
                                      {"source_offset", absl::StrCat(record.offset)}};
  const std::optional<std::string_view> key =
      record.key.empty() ? std::nullopt : std::optional<std::string_view>(record.key);
  std::string_view value = record.value;
  absl::Status s = producer->Produce(topic, KafkaProducer::kAnyPartition, key, value, headers);
  if (KafkaErrorCode(s) == RdKafka::ERR_MSG_SIZE_TOO_LARGE &&
      value.size() > KafkaDeadLetterSink::kDeadLetterCutBytes) {
    // A record larger than the producer may send (message.max.bytes, 1 MB by
    // default; the events topic may allow more): its first bytes go instead,
    // marked, rather than a failed delivery stopping ingest on every restart.
    value = value.substr(0, KafkaDeadLetterSink::kDeadLetterCutBytes);
    headers.emplace_back("value_truncated_from", absl::StrCat(record.value.size()));
    s = producer->Produce(topic, KafkaProducer::kAnyPartition, key, value, headers);
  }
  return s;
}

void KafkaDeadLetterSink::Reject(const SourceRecord& record, const Rejection& rejection) {
  if (absl::Status s = ProduceDeadLetter(producer_.get(), topic_, record, rejection); !s.ok()) {
    absl::MutexLock lock(&mu_);
    if (produce_error_.empty()) produce_error_ = std::string(s.message());
  }
  producer_->Poll();
}

absl::Status KafkaDeadLetterSink::Flush() {
  const absl::Time start = absl::Now();
  absl::Status flushed;
  // In slices, for the stall hook and the stop flag.
  while (
      absl::IsDeadlineExceeded(flushed = producer_->Flush(absl::Now() + absl::Milliseconds(500)))) {
    if (stall_hook_ && absl::Now() - start > absl::Seconds(2)) stall_hook_();
    if (stop_ != nullptr && stop_->load()) {
      return absl::UnavailableError(absl::StrCat(
          "stopping while ", producer_->pending(), " dead letters to ", topic_,
          " were not acknowledged; their batch is not committed and will be read again"));
    }
  }
  std::string error;
  {
    absl::MutexLock lock(&mu_);
    error = std::move(produce_error_);
    produce_error_.clear();
  }
  if (!flushed.ok() && error.empty()) {
    error =
        absl::StrCat("dead letters could not be delivered to ", topic_, ": ", flushed.message());
  }
  if (!error.empty()) return absl::UnavailableError(error);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- events

class KafkaEventSource::Impl : public RdKafka::RebalanceCb {
 public:
  Impl(KafkaEventSourceOptions options, Pipeline* pipeline, IngestGate* gate,
       KafkaDeadLetterSink* dead_letters)
      : options_(std::move(options)),
        pipeline_(pipeline),
        gate_(gate),
        dead_letters_(dead_letters),
        events_("events source") {}

  absl::Status Init(const KafkaSettings& settings) {
    ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                     NewKafkaConf(settings,
                                  {{"client.id", "hubmetricsd"},
                                   {"auto.offset.reset", "earliest"},
                                   // librdkafka 2.0 stops fetching a partition for a
                                   // whole second once this many messages (or
                                   // queued.max.messages.kbytes of them) wait in the local
                                   // queue (librdkafka issues 2879, 4275), so the queue
                                   // must hold a second of ingest or ingest stalls: at
                                   // 400,000 an 8M replay spent a third of its time
                                   // waiting for fetches; 1,000,000 (the kbytes bound
                                   // raised so that it does not trip first) took it from
                                   // 629k to 795k events/s for ~330 MB more peak memory.
                                   {"queued.min.messages", "1000000"},
                                   {"queued.max.messages.kbytes", "262144"},
                                   {"isolation.level", "read_committed"},
                                   {"enable.partition.eof", "false"},
                                   // librdkafka's 1 MiB per partition and fetch
                                   // made a catch-up replay wait on fetch round
                                   // trips (3 partitions: 165k events/s at a
                                   // third of a core); 8 MiB: 2.3x. The total
                                   // prefetched stays bounded by
                                   // queued.max.messages.kbytes.
                                   {"max.partition.fetch.bytes", "8388608"}},
                                  {{"group.id", options_.group_id},
                                   {"enable.auto.commit", "false"},
                                   {"enable.auto.offset.store", "false"}}));
    std::string err;
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) !=
            RdKafka::Conf::CONF_OK ||
        conf->set("event_cb", static_cast<RdKafka::EventCb*>(&events_), err) !=
            RdKafka::Conf::CONF_OK) {
      return absl::InternalError(absl::StrCat("callbacks: ", err));
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) {
      return absl::InvalidArgumentError(absl::StrCat("cannot create the Kafka consumer: ", err));
    }
    // On the apply thread, while this thread may consume: only locked state.
    dead_letters_->SetStallHook([this] {
      // A slow acknowledgement is not an outage (a fresh broker takes a few
      // seconds to hand out producer ids): only unanswered metadata is.
      if (!condition_set_.load() && TopicPartitions(consumer_.get(), options_.topic, 500)) return;
      {
        absl::MutexLock lock(&events_.mu);
        events_.brokers_down = true;
        if (events_.last_text.empty()) {
          events_.last_text = "dead letters to the DLQ topic not acknowledged";
        }
      }
      UpdateCondition();
    });
    return absl::OkStatus();
  }

  ~Impl() override {
    batch_.clear();
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    if (consumer_) consumer_->close();
  }

  absl::Status Run(const std::atomic<bool>& stop) {
    if (RdKafka::ErrorCode err = consumer_->subscribe({options_.topic});
        err != RdKafka::ERR_NO_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot subscribe to ", options_.topic, ": ", RdKafka::err2str(err)));
    }
    LogInfo("consuming %s as group %s (%s values)", options_.topic, options_.group_id,
            options_.format == EventFormat::kBinary ? "binary" : "json");
    // Messages are read in bunches from the consumer queue (one call and one
    // clock reading per bunch, not per message). That call serves the
    // rebalance and error callbacks as consume() does, on this thread;
    // consumer errors come back as messages with `err` set. A revocation
    // served in the middle of a bunch commits batch_ first; the bunch's
    // messages of the revoked partitions are then dropped by Take(), and
    // librdkafka purges those fetched before a new assignment.
    queue_ = rd_kafka_queue_get_consumer(consumer_->c_ptr());
    if (queue_ == nullptr) return absl::InternalError("the consumer has no consumer queue");
    std::vector<rd_kafka_message_t*> polled(kMaxPolled);
    absl::Time batch_start = absl::Now();
    absl::Time last_lag = absl::InfinitePast();
    while (!stop.load() && failure_.ok()) {
      const absl::Time now = absl::Now();
      absl::Duration wait = absl::Milliseconds(100);
      if (!batch_.empty()) wait = std::min(wait, batch_start + options_.max_batch_time - now);
      const size_t room = std::clamp<size_t>(
          options_.max_batch_messages - std::min(options_.max_batch_messages, batch_.size()), 1,
          polled.size());
      const ssize_t n =
          rd_kafka_consume_batch_queue(queue_, std::max(0, ToMillis(wait)), polled.data(), room);
      if (n < 0 && (++errors_logged_ <= 20 || errors_logged_ % 100 == 0)) {
        LogWarning("consuming %s: %s", options_.topic, rd_kafka_err2str(rd_kafka_last_error()));
      }
      // Nothing new to read: let the batch in flight finish, so that the lags
      // (and Kafka's group offsets) show it committed — at once, not up to a
      // lag_interval later (from the consumer's cached watermarks: no request).
      if (n <= 0 && batch_.empty() && !in_flight_.empty()) {
        DrainBatches();
        PublishLags();
        last_lag = absl::Now();
      }
      for (ssize_t j = 0; j < n; ++j) {
        Message msg(polled[j]);
        switch (msg->err) {
          case RD_KAFKA_RESP_ERR_NO_ERROR:
            // The call waits until `room` messages or the timeout, so a batch's
            // age counts from the call that read its first message.
            if (batch_.empty()) batch_start = now;
            Take(std::move(msg));
            break;
          case RD_KAFKA_RESP_ERR__TIMED_OUT:
          case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            break;
          default:
            if (BrokersDown(static_cast<RdKafka::ErrorCode>(msg->err))) {
              absl::MutexLock lock(&events_.mu);
              events_.brokers_down = true;
            }
            if (++errors_logged_ <= 20 || errors_logged_ % 100 == 0) {
              LogWarning("consuming %s: %s", options_.topic, rd_kafka_message_errstr(msg.get()));
            }
            break;
        }
      }
      if (!batch_.empty() && (batch_.size() >= options_.max_batch_messages ||
                              absl::Now() - batch_start >= options_.max_batch_time)) {
        CommitBatch();
      }
      UpdateCondition();
      if (absl::Now() - last_lag >= options_.lag_interval) {
        PublishLags();
        last_lag = absl::Now();
      }
    }
    if (failure_.ok()) CommitBatch();
    DrainBatches();  // also after a failure: the apply thread may still use dead_letters_
    batch_.clear();
    // The queue must be released before the consumer closes.
    rd_kafka_queue_destroy(queue_);
    queue_ = nullptr;
    // Leaves the group (the revoke callback commits nothing more).
    consumer_->close();
    consumer_.reset();
    return failure_;
  }

  // Called by librdkafka inside rd_kafka_consume_batch_queue() (or close())
  // on the Run() thread.
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      std::vector<std::string> described;
      for (RdKafka::TopicPartition* tp : partitions) {
        std::optional<int64_t> stored =
            pipeline_->StoredOffset(KafkaSourceKey(tp->topic(), tp->partition()));
        tp->set_offset(stored ? *stored : RdKafka::Topic::OFFSET_BEGINNING);
        next_offset_[tp->partition()] = stored.value_or(0);
        stored_offset_[tp->partition()] = stored.value_or(-1);
        described.push_back(
            absl::StrCat(tp->partition(), "@", stored ? absl::StrCat(*stored) : "beginning"));
      }
      LogInfo("assigned %s partitions %s (offsets from the state)", options_.topic,
              absl::StrJoin(described, ", "));
      CheckRetention(partitions);
      std::vector<int32_t> assigned;
      for (RdKafka::TopicPartition* tp : partitions) assigned.push_back(tp->partition());
      pipeline_->ExpectPartitions(assigned);
      caught_up_logged_ = false;
      assigned_at_ = absl::Now();
      if (absl::Status s = ApplyRebalance(consumer, /*assign=*/true, partitions); !s.ok()) Fail(s);
      return;
    }
    // Revoked (or lost, or an error): commit what was read from them first.
    if (failure_.ok()) CommitBatch();
    DrainBatches();
    for (RdKafka::TopicPartition* tp : partitions) {
      next_offset_.erase(tp->partition());
      stored_offset_.erase(tp->partition());
    }
    LogInfo("revoked %d %s partitions (in-flight batch committed first)", partitions.size(),
            options_.topic);
    if (absl::Status s = ApplyRebalance(consumer, /*assign=*/false, partitions); !s.ok()) {
      LogWarning("%s", s.message());
    }
    PublishLags();
  }

 private:
  void Fail(absl::Status s) {
    LogError("events source: %s", s.ToString());
    if (failure_.ok()) failure_ = std::move(s);
  }

  struct MessageFree {
    void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
  };
  using Message = std::unique_ptr<rd_kafka_message_t, MessageFree>;
  // Messages asked for per rd_kafka_consume_batch_queue() call.
  static constexpr size_t kMaxPolled = 4096;

  void Take(Message msg) {
    auto it = next_offset_.find(msg->partition);
    // Not assigned any more, or already committed with the state (a replay
    // would count events_read twice).
    if (it == next_offset_.end() || msg->offset < it->second) return;
    it->second = msg->offset + 1;
    flowing_ = true;
    batch_.push_back(std::move(msg));
  }

  void CommitBatch() {
    if (batch_.empty()) return;
    std::vector<SourceRecord> records;
    records.reserve(batch_.size());
    std::map<int32_t, int64_t> ends;
    int32_t last_partition = -1;
    int64_t* end = nullptr;
    for (const Message& m : batch_) {
      const char* data = static_cast<const char*>(m->payload);
      const char* key = static_cast<const char*>(m->key);
      records.push_back(SourceRecord{std::string_view(data ? data : "", data ? m->len : 0),
                                     options_.topic, m->partition, m->offset,
                                     std::string_view(key ? key : "", key ? m->key_len : 0)});
      if (end == nullptr || m->partition != last_partition) {
        end = &ends[m->partition];
        last_partition = m->partition;
      }
      *end = std::max(*end, m->offset + 1);
    }
    std::vector<SourceOffset> offsets;
    for (const auto& [p, e] : ends) offsets.push_back({KafkaSourceKey(options_.topic, p), e});
    absl::Status s;
    {
      // Pipelined: this batch is applied and committed while the next one is
      // consumed and decoded; returning OK means the previous one committed.
      absl::MutexLock lock(&gate_->mu);
      // The messages are destroyed on the apply thread once the batch is
      // applied: freeing them took an eighth of this thread's time.
      s = pipeline_->SubmitEvents(
          records, options_.format, offsets, dead_letters_,
          [messages = std::exchange(batch_, {})]() mutable { messages.clear(); });
    }
    batch_.reserve(options_.max_batch_messages);
    if (!s.ok()) {
      Fail(s);
      return;
    }
    MarkCommitted(std::exchange(in_flight_, std::move(ends)));
  }

  // Waits until every submitted batch is committed. Before partitions go
  // away and before Run() returns: the pipeline's apply thread uses
  // dead_letters_, and a revoked partition's next owner reads its offset from
  // the state.
  void DrainBatches() {
    absl::Status s = pipeline_->Drain();
    if (!s.ok()) {
      if (failure_.ok()) Fail(s);
      return;
    }
    MarkCommitted(std::exchange(in_flight_, {}));
  }

  // A batch's offsets are in the state: they count for the lags, and go to
  // Kafka's group offsets for lag tools only (never read back).
  void MarkCommitted(const std::map<int32_t, int64_t>& ends) {
    if (ends.empty()) return;
    PartitionList list;
    for (const auto& [p, e] : ends) {
      if (auto it = stored_offset_.find(p); it != stored_offset_.end()) it->second = e;
      list.list.push_back(RdKafka::TopicPartition::create(options_.topic, p, e));
    }
    consumer_->commitAsync(list.list);
  }

  // Sets or clears the pipeline's source condition as the brokers come and go.
  void UpdateCondition() {
    // Called per message: nothing to do in the common case, without a lock.
    if (!events_.brokers_down.load() && !condition_set_.load()) return;
    // Called by this thread and by the dead-letter stall hook on the apply
    // thread: one at a time.
    absl::MutexLock condition_lock(&condition_mu_);
    bool down = false;
    std::string text;
    {
      absl::MutexLock lock(&events_.mu);
      down = events_.brokers_down;
      text = events_.last_text;
    }
    if (down && !condition_set_.load()) {
      pipeline_->SetSourceCondition(absl::StrCat(
          "kafka brokers unreachable: ", text.empty() ? std::string("no broker answers") : text,
          " (retrying; queries are served from the stored state)"));
      condition_set_ = true;
      flowing_ = false;
      last_probe_ = absl::Now();
      return;
    }
    if (!condition_set_.load()) return;
    bool back = flowing_.load();
    if (!back && absl::Now() - last_probe_ >= absl::Seconds(1)) {
      last_probe_ = absl::Now();
      back = TopicPartitions(consumer_.get(), options_.topic, 1000).has_value();
    }
    if (back) {
      LogInfo("kafka brokers reachable again");
      pipeline_->SetSourceCondition("");
      condition_set_ = false;
      absl::MutexLock lock(&events_.mu);
      events_.brokers_down = false;
    }
  }

  // A partition that now starts after the offset stored with the state lost
  // the events between to retention (or a deletion) before they were read:
  // said loudly and counted, since nothing can bring them back.
  void CheckRetention(const std::vector<RdKafka::TopicPartition*>& partitions) {
    for (RdKafka::TopicPartition* tp : partitions) {
      const int64_t stored = stored_offset_[tp->partition()];
      if (stored < 0) continue;
      int64_t low = -1;
      int64_t high = -1;
      if (RdKafka::ErrorCode e = consumer_->query_watermark_offsets(options_.topic, tp->partition(),
                                                                    &low, &high, 5000);
          e != RdKafka::ERR_NO_ERROR) {
        LogWarning("cannot check the retention of %s partition %d: %s", options_.topic,
                   tp->partition(), RdKafka::err2str(e));
        continue;
      }
      if (low <= stored) continue;
      LogError(
          "%s partition %d now starts at offset %d, after offset %d stored with the state: %d "
          "events were deleted (retention) before they were counted and are lost for good; keep "
          "the topic's retention longer than hubmetricsd may be down or behind",
          options_.topic, tp->partition(), low, stored, low - stored);
      pipeline_->CountEventsLostToRetention(static_cast<uint64_t>(low - stored));
    }
  }

  void PublishLags() {
    if (!consumer_) return;
    std::vector<v1::PartitionLag> lags;
    std::vector<int32_t> partitions;
    for (const auto& [p, next] : stored_offset_) partitions.push_back(p);
    std::sort(partitions.begin(), partitions.end());
    for (int32_t p : partitions) {
      int64_t next = stored_offset_[p];
      int64_t low = -1;
      int64_t high = -1;
      if (consumer_->get_watermark_offsets(options_.topic, p, &low, &high) !=
              RdKafka::ERR_NO_ERROR ||
          high < 0) {
        if (condition_set_ || consumer_->query_watermark_offsets(options_.topic, p, &low, &high,
                                                                 500) != RdKafka::ERR_NO_ERROR) {
          high = -1;
        }
      }
      v1::PartitionLag lag;
      lag.set_topic(options_.topic);
      lag.set_partition(p);
      lag.set_next_offset(next < 0 ? std::max<int64_t>(low, 0) : next);
      lag.set_high_watermark(high);
      lag.set_lag(high < 0 ? -1 : std::max<int64_t>(0, high - std::max(lag.next_offset(), low)));
      lags.push_back(std::move(lag));
    }
    // The first time after an assignment that every partition is read and
    // committed to its end: how long a backlog took, for operators (and the
    // end of a catch-up for benchmarks, which then need not poll).
    const bool caught_up =
        !lags.empty() && std::all_of(lags.begin(), lags.end(), [](const v1::PartitionLag& l) {
          return l.high_watermark() >= 0 && l.lag() == 0;
        });
    if (caught_up && !caught_up_logged_) {
      caught_up_logged_ = true;
      LogInfo(
          "caught up with %s: %d partitions read and committed to their end, %d events "
          "read in all, %s after the assignment",
          options_.topic, lags.size(), pipeline_->GetIngestStats().events_read(),
          absl::FormatDuration(absl::Trunc(absl::Now() - assigned_at_, absl::Milliseconds(1))));
    }
    pipeline_->SetPartitionLags(std::move(lags));
  }

  const KafkaEventSourceOptions options_;
  Pipeline* const pipeline_;
  IngestGate* const gate_;
  KafkaDeadLetterSink* const dead_letters_;
  ErrorEvents events_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;

  // The consumer queue, while Run() runs.
  rd_kafka_queue_t* queue_ = nullptr;
  std::vector<Message> batch_;
  // Assigned partitions: next offset to take (read or committed).
  absl::flat_hash_map<int32_t, int64_t> next_offset_;
  // Assigned partitions: next offset committed with the state (-1: none yet).
  absl::flat_hash_map<int32_t, int64_t> stored_offset_;
  // End offsets of the batch submitted but maybe not committed yet.
  std::map<int32_t, int64_t> in_flight_;
  absl::Status failure_;
  // The broker condition: set by UpdateCondition under condition_mu_; the
  // flags are atomic because Take() and PublishLags() read them unlocked.
  absl::Mutex condition_mu_;
  std::atomic<bool> condition_set_{false};
  // Whether "caught up" was logged since the last assignment, and when that was.
  bool caught_up_logged_ = false;
  absl::Time assigned_at_ = absl::Now();
  std::atomic<bool> flowing_{false};
  absl::Time last_probe_ ABSL_GUARDED_BY(condition_mu_);
  uint64_t errors_logged_ = 0;
};

KafkaEventSource::KafkaEventSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaEventSource::~KafkaEventSource() = default;

absl::StatusOr<std::unique_ptr<KafkaEventSource>> KafkaEventSource::Create(
    const KafkaSettings& settings, const KafkaEventSourceOptions& options, Pipeline* pipeline,
    IngestGate* gate, KafkaDeadLetterSink* dead_letters) {
  if (options.topic.empty()) return absl::InvalidArgumentError("--events_topic is empty");
  if (options.group_id.empty()) return absl::InvalidArgumentError("--group_id is empty");
  auto impl = std::make_unique<Impl>(options, pipeline, gate, dead_letters);
  RETURN_IF_ERROR(impl->Init(settings));
  return std::unique_ptr<KafkaEventSource>(new KafkaEventSource(std::move(impl)));
}

absl::Status KafkaEventSource::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }

// ---------------------------------------------------------------- catalog

class KafkaCatalogSource::Impl {
 public:
  Impl(KafkaCatalogSourceOptions options, Pipeline* pipeline, IngestGate* gate)
      : options_(std::move(options)), pipeline_(pipeline), gate_(gate), events_("catalog source") {}

  absl::Status Init(const KafkaSettings& settings) {
    // No group: every instance reads the whole topic. librdkafka still wants
    // a group.id; it is never joined or committed to.
    ASSIGN_OR_RETURN(
        std::unique_ptr<RdKafka::Conf> conf,
        NewKafkaConf(settings,
                     {{"client.id", "hubmetricsd-catalog"}, {"isolation.level", "read_committed"}},
                     {{"group.id", "hubmetricsd-catalog-reader-unused"},
                      {"enable.auto.commit", "false"},
                      {"enable.auto.offset.store", "false"},
                      {"enable.partition.eof", "true"},
                      {"auto.offset.reset", "earliest"}}));
    std::string err;
    if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&events_), err) !=
        RdKafka::Conf::CONF_OK) {
      return absl::InternalError(absl::StrCat("event_cb: ", err));
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) {
      return absl::InvalidArgumentError(absl::StrCat("cannot create the catalog consumer: ", err));
    }
    return absl::OkStatus();
  }

  ~Impl() {
    if (consumer_) consumer_->close();
  }

  absl::Status Bootstrap(const std::atomic<bool>& stop) {
    const absl::Time deadline = absl::Now() + options_.bootstrap_timeout;
    std::optional<std::vector<int32_t>> partitions;
    while (!(partitions = TopicPartitions(consumer_.get(), options_.topic, 2000))) {
      if (stop.load()) return absl::CancelledError("stopping");
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no Kafka broker answered within ", absl::FormatDuration(options_.bootstrap_timeout),
            " while reading the catalog topic ", options_.topic, " (check --kafka_brokers)"));
      }
    }
    if (partitions->empty()) {
      LogWarning("catalog topic %s does not exist yet: starting with the stored catalog",
                 options_.topic);
    }
    // The end offsets as of now: the catalog is read up to there before events.
    absl::flat_hash_map<int32_t, int64_t> end;
    for (int32_t p : *partitions) {
      int64_t low = 0;
      int64_t high = 0;
      RdKafka::ErrorCode e;
      while ((e = consumer_->query_watermark_offsets(options_.topic, p, &low, &high, 2000)) !=
             RdKafka::ERR_NO_ERROR) {
        if (stop.load()) return absl::CancelledError("stopping");
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError(
              absl::StrCat("end offset of ", options_.topic, "[", p, "]: ", RdKafka::err2str(e)));
        }
      }
      if (high > low) end[p] = high;
    }
    RETURN_IF_ERROR(Assign(*partitions));
    // Last record per model; a model published several times re-credits once.
    std::vector<CatalogRecord> records;
    absl::flat_hash_map<std::string, size_t> index;
    int64_t read = 0;
    while (!end.empty() && !stop.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(200));
      if (msg->err() == RdKafka::ERR__PARTITION_EOF) {
        end.erase(msg->partition());
        continue;
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        if (msg->err() != RdKafka::ERR__TIMED_OUT) LogWarning("catalog: %s", msg->errstr());
        continue;
      }
      ++read;
      next_[msg->partition()] = msg->offset() + 1;
      if (std::optional<CatalogRecord> r = Decode(*msg)) {
        auto [it, inserted] = index.emplace(r->model_id, records.size());
        if (inserted) {
          records.push_back(*std::move(r));
        } else {
          records[it->second] = *std::move(r);
        }
      }
      if (auto it = end.find(msg->partition());
          it != end.end() && msg->offset() + 1 >= it->second) {
        end.erase(it);
      }
    }
    if (stop.load()) return absl::CancelledError("stopping");
    RETURN_IF_ERROR(Apply(records));
    LogInfo("catalog topic %s read to its end: %d records, %d models applied", options_.topic, read,
            records.size());
    return absl::OkStatus();
  }

  absl::Status Follow(const std::atomic<bool>& stop) {
    std::vector<CatalogRecord> records;
    absl::Time last_flush = absl::Now();
    absl::Time last_metadata = absl::Now();
    while (!stop.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(200));
      if (msg->err() == RdKafka::ERR_NO_ERROR) {
        next_[msg->partition()] = msg->offset() + 1;
        if (std::optional<CatalogRecord> r = Decode(*msg)) records.push_back(*std::move(r));
      } else if (msg->err() != RdKafka::ERR__TIMED_OUT &&
                 msg->err() != RdKafka::ERR__PARTITION_EOF) {
        LogWarning("catalog: %s", msg->errstr());
      }
      if (!records.empty() &&
          (records.size() >= 1000 || absl::Now() - last_flush >= absl::Milliseconds(200))) {
        RETURN_IF_ERROR(Apply(records));
        records.clear();
        last_flush = absl::Now();
      }
      // New partitions (or the topic appearing).
      if (absl::Now() - last_metadata >= absl::Seconds(5)) {
        last_metadata = absl::Now();
        if (auto ps = TopicPartitions(consumer_.get(), options_.topic, 1000);
            ps && ps->size() != assigned_.size()) {
          RETURN_IF_ERROR(Assign(*ps));
        }
      }
    }
    if (!records.empty()) RETURN_IF_ERROR(Apply(records));
    return absl::OkStatus();
  }

 private:
  absl::Status Assign(const std::vector<int32_t>& partitions) {
    PartitionList list;
    for (int32_t p : partitions) {
      auto it = next_.find(p);
      list.list.push_back(RdKafka::TopicPartition::create(
          options_.topic, p, it == next_.end() ? RdKafka::Topic::OFFSET_BEGINNING : it->second));
    }
    if (RdKafka::ErrorCode e = consumer_->assign(list.list); e != RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("cannot assign ", options_.topic, ": ", RdKafka::err2str(e)));
    }
    assigned_ = partitions;
    return absl::OkStatus();
  }

  absl::Status Apply(const std::vector<CatalogRecord>& records) {
    absl::MutexLock lock(&gate_->mu);
    for (int i = 0; i < rejected_; ++i) pipeline_->CountCatalogRejected();
    rejected_ = 0;
    if (records.empty()) return absl::OkStatus();
    return pipeline_->ApplyCatalog(records, {});
  }

  std::optional<CatalogRecord> Decode(const RdKafka::Message& msg) {
    const std::string key(msg.key_pointer() ? static_cast<const char*>(msg.key_pointer()) : "",
                          msg.key_pointer() ? msg.key_len() : 0);
    auto reject = [&](const std::string& why) -> std::optional<CatalogRecord> {
      ++rejected_;
      LogWarning("catalog record %s[%d]@%d rejected: %s", options_.topic, msg.partition(),
                 msg.offset(), why);
      return std::nullopt;
    };
    if (msg.payload() == nullptr) {
      if (key.empty()) return reject("tombstone without a key (the key is the model id)");
      return CatalogRecord{key, std::nullopt};
    }
    const std::string_view value(static_cast<const char*>(msg.payload()), msg.len());
    absl::StatusOr<v1::ModelInfo> m =
        options_.format == EventFormat::kBinary ? DecodeBinaryModel(value) : DecodeJsonModel(value);
    if (!m.ok()) return reject(std::string(m.status().message()));
    if (!key.empty() && key != m->model_id()) {
      return reject(absl::StrCat("key '", key.substr(0, 200), "' differs from model_id '",
                                 m->model_id(), "'"));
    }
    std::string id = m->model_id();
    return CatalogRecord{std::move(id), *std::move(m)};
  }

  const KafkaCatalogSourceOptions options_;
  Pipeline* const pipeline_;
  IngestGate* const gate_;
  ErrorEvents events_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  absl::flat_hash_map<int32_t, int64_t> next_;
  std::vector<int32_t> assigned_;
  int rejected_ = 0;
};

KafkaCatalogSource::KafkaCatalogSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaCatalogSource::~KafkaCatalogSource() = default;

absl::StatusOr<std::unique_ptr<KafkaCatalogSource>> KafkaCatalogSource::Create(
    const KafkaSettings& settings, const KafkaCatalogSourceOptions& options, Pipeline* pipeline,
    IngestGate* gate) {
  if (options.topic.empty()) return absl::InvalidArgumentError("--models_topic is empty");
  auto impl = std::make_unique<Impl>(options, pipeline, gate);
  RETURN_IF_ERROR(impl->Init(settings));
  return std::unique_ptr<KafkaCatalogSource>(new KafkaCatalogSource(std::move(impl)));
}

absl::Status KafkaCatalogSource::Bootstrap(const std::atomic<bool>& stop) {
  return impl_->Bootstrap(stop);
}
absl::Status KafkaCatalogSource::Follow(const std::atomic<bool>& stop) {
  return impl_->Follow(stop);
}

}  // namespace hubmetrics
