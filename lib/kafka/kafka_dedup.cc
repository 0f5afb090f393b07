#include "lib/kafka/kafka_dedup.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/kill_point.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/kafka/kafka_internal.h"
#include "lib/kafka/kafka_producer.h"
#include "lib/kafka/kafka_sources.h"

namespace hubmetrics {
namespace {

using kafka_internal::ApplyRebalance;
using kafka_internal::ToMillis;

struct MessageFree {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using Message = std::unique_ptr<rd_kafka_message_t, MessageFree>;

struct ListFree {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListFree>;

// Creates `topic` compacted when it does not exist. An existing topic is left
// as it is.
absl::Status EnsureCompactedTopic(rd_kafka_t* rk, const std::string& topic, int partitions,
                                  absl::Duration timeout) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof(err));
  if (nt == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unique topic ", topic, ": ", err));
  }
  rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, ToMillis(timeout), err, sizeof(err));
  rd_kafka_CreateTopics(rk, &nt, 1, options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, ToMillis(timeout) + 1000);
  absl::Status status;
  if (event == nullptr) {
    status = absl::UnavailableError(
        absl::StrCat("creating the unique topic ", topic, ": the brokers did not answer"));
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::UnavailableError(absl::StrCat("creating the unique topic ", topic, ": ",
                                                 rd_kafka_event_error_string(event)));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        LogInfo("created the unique topic %s (%d partitions, compacted)", topic, partitions);
      } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status =
            absl::UnavailableError(absl::StrCat("creating the unique topic ", topic, ": ",
                                                rd_kafka_topic_result_error_string(results[i])));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(nt);
  return status;
}

// Says loudly when `topic` deletes records sooner than `needed` (its
// retention.ms): a partition that moves, or an instance that restarts, must
// re-read that much to rebuild the open days' dedup state. Returns the
// retention (nullopt: unknown, or the topic does not exist yet).
std::optional<absl::Duration> CheckRetention(rd_kafka_t* rk, const std::string& topic,
                                             absl::Duration needed, absl::Duration timeout) {
  char err[512];
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(options, ToMillis(timeout), err, sizeof(err));
  rd_kafka_DescribeConfigs(rk, &resource, 1, options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, ToMillis(timeout) + 1000);
  std::optional<absl::Duration> retention;
  if (event != nullptr && rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t n = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &n);
    for (size_t i = 0; i < n; ++i) {
      if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      size_t m = 0;
      const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &m);
      for (size_t j = 0; j < m; ++j) {
        const char* name = rd_kafka_ConfigEntry_name(entries[j]);
        const char* value = rd_kafka_ConfigEntry_value(entries[j]);
        int64_t ms = 0;
        if (name != nullptr && value != nullptr && std::string_view(name) == "retention.ms" &&
            absl::SimpleAtoi(value, &ms)) {
          retention = ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(ms);
        }
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_ConfigResource_destroy(resource);
  if (!retention) {
    LogWarning("cannot read the retention of %s (not created yet?); it must keep at least %s",
               topic, absl::FormatDuration(needed));
  } else if (*retention < needed) {
    LogError(
        "%s keeps records for %s (retention.ms), less than the %s a dedup instance re-reads to "
        "rebuild the open days after a restart or a partition move: a user's repeat download on "
        "an open day may then count twice. Raise the topic's retention.ms to at least %d",
        topic, absl::FormatDuration(*retention), absl::FormatDuration(needed),
        absl::ToInt64Milliseconds(needed));
  } else {
    LogInfo("%s keeps records for %s: enough to rebuild the open days (%s)", topic,
            absl::FormatDuration(*retention), absl::FormatDuration(needed));
  }
  return retention;
}

}  // namespace

class KafkaDedup::Impl : public RdKafka::RebalanceCb {
 public:
  Impl(KafkaDedupOptions options, const UserHasher* hasher, const Clock* clock)
      : options_(std::move(options)), hasher_(hasher), clock_(clock) {}

  ~Impl() override {
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    if (consumer_) consumer_->close();
  }

  absl::Status Init() {
    if (options_.transactional_id.empty()) {
      return absl::InvalidArgumentError(
          "the dedup role needs a transactional id (--transactional_id), unique per instance and "
          "stable across its restarts");
    }
    KafkaProducerOptions producer_options;
    producer_options.client_id = "hubmetricsd-dedup";
    producer_options.linger = absl::Milliseconds(5);
    producer_options.max_queue_wait = options_.kafka_timeout;
    producer_options.compression = "lz4";
    ASSIGN_OR_RETURN(producer_, KafkaTransactionalProducer::Create(
                                    options_.settings, producer_options, options_.transactional_id,
                                    options_.kafka_timeout));
    RETURN_IF_ERROR(EnsureCompactedTopic(producer_->rdkafka()->c_ptr(), options_.unique_topic,
                                         options_.unique_topic_partitions, options_.kafka_timeout));
    // The open days (lateness_days before the watermark's day, and that
    // day) and the future skew.
    CheckRetention(producer_->rdkafka()->c_ptr(), options_.events_topic,
                   absl::Hours(24) * (options_.deduper.validator.lateness_days + 1) +
                       options_.deduper.validator.max_future_skew,
                   options_.kafka_timeout);
    ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                     NewKafkaConf(options_.settings,
                                  {{"client.id", "hubmetricsd-dedup"},
                                   {"auto.offset.reset", "earliest"},
                                   {"enable.partition.eof", "false"},
                                   {"max.partition.fetch.bytes", "8388608"}},
                                  {{"group.id", options_.group_id},
                                   {"enable.auto.commit", "false"},
                                   {"enable.auto.offset.store", "false"},
                                   {"isolation.level", "read_committed"},
                                   // Eager rebalancing: every rebalance revokes every
                                   // partition, and each owner rebuilds its open days.
                                   // cooperative-sticky would keep the partitions that
                                   // stay, but with librdkafka 2.0 a partition kept
                                   // through a cooperative rebalance was seen to stop
                                   // being delivered (docs/SCALING.md).
                                   {"partition.assignment.strategy", "roundrobin"}}));
    std::string err;
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) !=
        RdKafka::Conf::CONF_OK) {
      return absl::InternalError(absl::StrCat("rebalance_cb: ", err));
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) {
      return absl::InvalidArgumentError(absl::StrCat("cannot create the Kafka consumer: ", err));
    }
    return absl::OkStatus();
  }

  absl::Status Run(const std::atomic<bool>& stop) {
    if (RdKafka::ErrorCode e = consumer_->subscribe({options_.events_topic});
        e != RdKafka::ERR_NO_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot subscribe to ", options_.events_topic, ": ", RdKafka::err2str(e)));
    }
    LogInfo("dedup of %s as group %s (transactional id %s) into %s", options_.events_topic,
            options_.group_id, options_.transactional_id, options_.unique_topic);
    queue_ = rd_kafka_queue_get_consumer(consumer_->c_ptr());
    if (queue_ == nullptr) return absl::InternalError("the consumer has no consumer queue");
    std::vector<rd_kafka_message_t*> polled(4096);
    absl::Time batch_start = absl::Now();
    absl::Time last_report = absl::Now();
    while (!stop.load() && failure_.ok()) {
      absl::Duration wait = absl::Milliseconds(100);
      if (!batch_.empty()) {
        wait = std::min(wait, batch_start + options_.max_batch_time - absl::Now());
      }
      const size_t room = std::clamp<size_t>(
          options_.max_batch_messages - std::min(options_.max_batch_messages, batch_.size()), 1,
          polled.size());
      const ssize_t n =
          rd_kafka_consume_batch_queue(queue_, std::max(0, ToMillis(wait)), polled.data(), room);
      for (ssize_t j = 0; j < n; ++j) {
        Message msg(polled[j]);
        if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
              (++errors_logged_ <= 20 || errors_logged_ % 100 == 0)) {
            LogWarning("consuming %s: %s", options_.events_topic,
                       rd_kafka_message_errstr(msg.get()));
          }
          continue;
        }
        auto it = owned_.find(msg->partition);
        // Not ours any more, or before where this owner's reading began.
        if (it == owned_.end() || msg->offset < it->second.next_read) continue;
        it->second.next_read = msg->offset + 1;
        if (batch_.empty()) batch_start = absl::Now();
        batch_.push_back(std::move(msg));
      }
      if (!batch_.empty() && (batch_.size() >= options_.max_batch_messages ||
                              absl::Now() - batch_start >= options_.max_batch_time)) {
        Publish();
      }
      if (absl::Now() - last_report >= absl::Seconds(10)) {
        ReportProgress();
        last_report = absl::Now();
      }
    }
    if (failure_.ok()) Publish();
    batch_.clear();
    rd_kafka_queue_destroy(queue_);
    queue_ = nullptr;
    closing_ = true;
    consumer_->close();
    consumer_.reset();
    return failure_;
  }

  // On the Run() thread, inside rd_kafka_consume_batch_queue() or close().
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      // While closing (or after a failure) nothing more is read: the
      // partitions are taken as librdkafka asks, without building state.
      if (!closing_ && failure_.ok()) {
        if (absl::Status s = Assign(partitions); !s.ok()) Fail(s);
      }
      if (absl::Status s = ApplyRebalance(consumer, /*assign=*/true, partitions); !s.ok()) Fail(s);
      return;
    }
    // Revoked: publish what was read from them while they are still ours.
    // Lost (the group moved on without us): publishing would be fenced;
    // the batch is dropped and the next owner reads it again.
    if (consumer->assignment_lost()) {
      batch_.clear();
    } else if (failure_.ok()) {
      Publish();
    }
    for (RdKafka::TopicPartition* tp : partitions) owned_.erase(tp->partition());
    LogInfo("revoked %d %s partitions%s", partitions.size(), options_.events_topic,
            consumer->assignment_lost() ? " (lost)" : "");
    if (absl::Status s = ApplyRebalance(consumer, /*assign=*/false, partitions); !s.ok()) {
      LogWarning("%s", s.message());
    }
  }

 private:
  struct Owned {
    std::unique_ptr<PartitionDeduper> deduper;
    // The next offset to take from the fetched messages.
    int64_t next_read = 0;
  };

  void Fail(absl::Status s) {
    LogError("dedup: %s", s.ToString());
    if (failure_.ok()) failure_ = std::move(s);
  }

  // Builds each newly assigned partition's deduper from its committed
  // offset and progress, and sets the offset to start reading at.
  absl::Status Assign(std::vector<RdKafka::TopicPartition*>& partitions) {
    std::vector<int32_t> ps;
    for (RdKafka::TopicPartition* tp : partitions) ps.push_back(tp->partition());
    ASSIGN_OR_RETURN(std::vector<int64_t> starts, Restart(ps, "assigned"));
    for (size_t i = 0; i < partitions.size(); ++i) partitions[i]->set_offset(starts[i]);
    return absl::OkStatus();
  }

  // After an aborted transaction the dedupers are ahead of what was
  // published: every owned partition starts again from its committed offset
  // (rebuilding its open days), and the fetched messages are dropped.
  absl::Status Rewind() {
    batch_.clear();
    std::vector<int32_t> ps;
    for (const auto& [p, owned] : owned_) ps.push_back(p);
    if (ps.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<int64_t> starts, Restart(ps, "restarting"));
    PartitionListPtr seek(rd_kafka_topic_partition_list_new(static_cast<int>(ps.size())));
    for (size_t i = 0; i < ps.size(); ++i) {
      rd_kafka_topic_partition_list_add(seek.get(), options_.events_topic.c_str(), ps[i])->offset =
          starts[i];
    }
    if (rd_kafka_error_t* e = rd_kafka_seek_partitions(consumer_->c_ptr(), seek.get(),
                                                       ToMillis(options_.kafka_timeout))) {
      const std::string what = rd_kafka_error_string(e);
      rd_kafka_error_destroy(e);
      return absl::UnavailableError(absl::StrCat("seeking back to the committed offsets: ", what));
    }
    for (int i = 0; i < seek->cnt; ++i) {
      if (seek->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return absl::UnavailableError(
            absl::StrCat("seeking ", options_.events_topic, " partition ", seek->elems[i].partition,
                         " back: ", rd_kafka_err2str(seek->elems[i].err)));
      }
    }
    return absl::OkStatus();
  }

  // (Re)creates the deduper of each partition from its committed offset and
  // progress; returns, in the same order, where to start reading it.
  absl::StatusOr<std::vector<int64_t>> Restart(const std::vector<int32_t>& partitions,
                                               std::string_view what) {
    PartitionListPtr committed(
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (int32_t p : partitions) {
      rd_kafka_topic_partition_list_add(committed.get(), options_.events_topic.c_str(), p);
    }
    if (rd_kafka_resp_err_t e = rd_kafka_committed(consumer_->c_ptr(), committed.get(),
                                                   ToMillis(options_.kafka_timeout));
        e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::UnavailableError(absl::StrCat("reading the committed offsets of ",
                                                 options_.events_topic, ": ", rd_kafka_err2str(e),
                                                 "; restart to retry"));
    }
    std::vector<int64_t> starts;
    std::vector<std::string> described;
    for (int32_t p : partitions) {
      rd_kafka_topic_partition_t* c =
          rd_kafka_topic_partition_list_find(committed.get(), options_.events_topic.c_str(), p);
      v1::PartitionProgress progress;
      progress.set_partition(p);
      const bool has_commit = c != nullptr && c->offset >= 0;
      if (has_commit) {
        if (c->metadata_size > 0) {
          absl::StatusOr<v1::PartitionProgress> stored = ProgressFromOffsetMetadata(
              std::string_view(static_cast<const char*>(c->metadata), c->metadata_size));
          if (stored.ok()) {
            progress = *std::move(stored);
          } else {
            LogWarning("%s partition %d: %s; its counters start at 0", options_.events_topic, p,
                       stored.status().message());
          }
        }
        progress.set_partition(p);
        progress.set_next_offset(c->offset);
      }
      auto deduper =
          std::make_unique<PartitionDeduper>(options_.deduper, progress, hasher_, clock_);
      const int64_t start = has_commit ? RebuildStart(p, *deduper, c->offset)
                                       : int64_t{RdKafka::Topic::OFFSET_BEGINNING};
      starts.push_back(start);
      Owned& owned = owned_[p];
      owned.deduper = std::move(deduper);
      owned.next_read = start < 0 ? 0 : start;
      described.push_back(absl::StrCat(
          p, has_commit
                 ? absl::StrCat("@", c->offset,
                                start < c->offset ? absl::StrCat(" (rebuild from ", start, ")")
                                                  : std::string())
                 : std::string("@beginning")));
    }
    LogInfo("%s %s partitions %s", what, options_.events_topic, absl::StrJoin(described, ", "));
    return starts;
  }

  // Where to start reading partition `p` committed at `committed`: the first
  // offset that may hold an event of an open day, checked against what
  // retention left.
  int64_t RebuildStart(int32_t p, PartitionDeduper& deduper, int64_t committed) {
    int64_t low = -1;
    int64_t high = -1;
    if (consumer_->query_watermark_offsets(options_.events_topic, p, &low, &high,
                                           ToMillis(options_.kafka_timeout)) !=
        RdKafka::ERR_NO_ERROR) {
      low = -1;
    }
    if (low > committed) {
      LogError(
          "%s partition %d now starts at offset %d, after the committed offset %d: %d events were "
          "deleted (retention) before they were counted and are lost for good; keep the topic's "
          "retention longer than the dedup instances may be down or behind",
          options_.events_topic, p, low, committed, low - committed);
      deduper.CountLostToRetention(static_cast<uint64_t>(low - committed));
      return low;
    }
    const std::optional<absl::Time> from = deduper.RebuildFrom();
    if (!from) return committed;
    std::vector<RdKafka::TopicPartition*> query = {
        RdKafka::TopicPartition::create(options_.events_topic, p, absl::ToUnixMillis(*from))};
    int64_t start = committed;
    if (consumer_->offsetsForTimes(query, ToMillis(options_.kafka_timeout)) ==
            RdKafka::ERR_NO_ERROR &&
        query[0]->err() == RdKafka::ERR_NO_ERROR && query[0]->offset() >= 0) {
      start = std::min(committed, query[0]->offset());
    }
    RdKafka::TopicPartition::destroy(query);
    if (start < committed && low > 0 && start <= low) {
      // The earliest record retention left is where the open days' start
      // would be: part of them may be gone, and a user seen only there would
      // count again on a repeat download the same day.
      LogWarning(
          "%s partition %d: retention kept offsets from %d on, which may not reach back to %s "
          "(the open days' start): keep the topic's retention longer than --lateness_days plus "
          "a day",
          options_.events_topic, p, low, FormatRfc3339(*from));
    }
    return start;
  }

  // Runs the batch through the partitions' dedupers and publishes what
  // changed in one transaction with the consumed offsets.
  void Publish() {
    if (batch_.empty()) return;
    std::vector<Message> batch = std::exchange(batch_, {});
    // Per partition, in offset order (a batch keeps each partition's order).
    std::map<int32_t, std::vector<size_t>> by_partition;
    for (size_t i = 0; i < batch.size(); ++i) by_partition[batch[i]->partition].push_back(i);
    std::vector<UniqueCountUpdate> counts;
    std::vector<std::pair<size_t, Rejection>> rejected;
    std::vector<int32_t> live;
    for (const auto& [p, indexes] : by_partition) {
      auto it = owned_.find(p);
      if (it == owned_.end()) continue;
      PartitionDeduper& deduper = *it->second.deduper;
      std::vector<PartitionRecord> records;
      records.reserve(indexes.size());
      bool any_live = false;
      for (size_t i : indexes) {
        const char* data = static_cast<const char*>(batch[i]->payload);
        records.push_back(
            {std::string_view(data ? data : "", data ? batch[i]->len : 0), batch[i]->offset});
        any_live = any_live || batch[i]->offset >= deduper.live_from();
      }
      PartitionDeduper::Output out = deduper.Process(records);
      for (UniqueCountUpdate& u : out.counts) counts.push_back(std::move(u));
      for (auto& [j, r] : out.rejected) rejected.emplace_back(indexes[j], std::move(r));
      if (any_live) live.push_back(p);
    }
    if (live.empty()) return;  // only a rebuild: nothing to publish
    absl::Status s = producer_->Begin();
    KillPoint("dedup.before_produce");
    for (size_t i = 0; s.ok() && i < counts.size(); ++i) {
      const UniqueCountUpdate& u = counts[i];
      s = producer_->Produce(options_.unique_topic, KafkaProducer::kAnyPartition,
                             UniqueCountKey(u.partition, u.day, u.model_id),
                             EncodeUniqueCountValue(u.unique_downloads));
    }
    for (size_t i = 0; s.ok() && i < rejected.size(); ++i) {
      const rd_kafka_message_t* m = batch[rejected[i].first].get();
      const char* data = static_cast<const char*>(m->payload);
      const char* key = static_cast<const char*>(m->key);
      const SourceRecord record{std::string_view(data ? data : "", data ? m->len : 0),
                                options_.events_topic, m->partition, m->offset,
                                std::string_view(key ? key : "", key ? m->key_len : 0)};
      s = ProduceDeadLetter(producer_.get(), options_.dlq_topic, record, rejected[i].second);
    }
    std::vector<TransactionOffset> offsets;
    for (size_t i = 0; s.ok() && i < live.size(); ++i) {
      const v1::PartitionProgress& progress = owned_[live[i]].deduper->progress();
      s = producer_->Produce(options_.unique_topic, KafkaProducer::kAnyPartition,
                             ProgressKey(live[i]), progress.SerializeAsString());
      offsets.push_back({options_.events_topic, live[i], progress.next_offset(),
                         ProgressToOffsetMetadata(progress)});
    }
    if (s.ok()) s = producer_->SendOffsets(offsets, consumer_.get(), options_.kafka_timeout);
    // Commit() would flush too; flushing first makes the kill point below
    // land with every record of the transaction on the broker, uncommitted.
    if (s.ok()) s = producer_->Flush(absl::Now() + options_.kafka_timeout);
    KillPoint("dedup.before_commit");
    if (s.ok()) s = producer_->Commit(options_.kafka_timeout);
    if (!s.ok()) {
      // The in-memory dedup state is ahead of what was published. An
      // abortable failure (e.g. a rebalance moved the group to a new
      // generation meanwhile) is aborted and the owned partitions start
      // again from their committed offsets; anything else (fenced, fatal)
      // stops the instance, and a restart does the same.
      absl::Status a = absl::IsFailedPrecondition(s) ? s : producer_->Abort(options_.kafka_timeout);
      if (a.ok()) {
        LogWarning("transaction aborted (%s); reading again from the committed offsets",
                   s.message());
        a = Rewind();
      }
      if (!a.ok()) {
        Fail(absl::Status(a.code(), absl::StrCat("publishing a batch failed (restart to resume "
                                                 "from the committed offsets): ",
                                                 s.message(), a == s ? "" : "; then: ",
                                                 a == s ? "" : a.message())));
      }
      return;
    }
    KillPoint("dedup.after_commit");
    published_counts_ += counts.size();
    published_batches_ += 1;
  }

  void ReportProgress() {
    uint64_t events = 0;
    uint64_t unique = 0;
    for (const auto& [p, owned] : owned_) {
      events += owned.deduper->progress().events_read();
      unique += owned.deduper->progress().unique_downloads();
    }
    LogInfo(
        "dedup: %d partitions, %d events read, %d unique downloads; %d transactions, %d count "
        "records published",
        owned_.size(), events, unique, published_batches_, published_counts_);
  }

  const KafkaDedupOptions options_;
  const UserHasher* const hasher_;
  const Clock* const clock_;
  std::unique_ptr<KafkaTransactionalProducer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  rd_kafka_queue_t* queue_ = nullptr;
  std::map<int32_t, Owned> owned_;
  std::vector<Message> batch_;
  absl::Status failure_;
  // Set before the consumer closes: assignments served meanwhile build nothing.
  bool closing_ = false;
  uint64_t errors_logged_ = 0;
  uint64_t published_batches_ = 0;
  uint64_t published_counts_ = 0;
};

KafkaDedup::KafkaDedup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaDedup::~KafkaDedup() = default;

absl::StatusOr<std::unique_ptr<KafkaDedup>> KafkaDedup::Create(KafkaDedupOptions options,
                                                               const UserHasher* hasher,
                                                               const Clock* clock) {
  auto impl = std::make_unique<Impl>(std::move(options), hasher, clock);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<KafkaDedup>(new KafkaDedup(std::move(impl)));
}

absl::Status KafkaDedup::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }

}  // namespace hubmetrics
