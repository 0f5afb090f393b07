#include "lib/kafka/kafka_producer.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/status_macros.h"

namespace hubmetrics {
namespace {

// The payload under which a status carries librdkafka's error code.
constexpr char kErrorCodeUrl[] = "type.hubmetrics/kafka_error_code";

// How long one wait of Produce() (queue full) and Flush() lasts before they
// check the deadline (and Produce() the stop flag) again.
constexpr absl::Duration kPollSlice = absl::Milliseconds(5);
constexpr absl::Duration kFlushSlice = absl::Milliseconds(100);

int ToMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, 1 << 30));
}

absl::StatusCode CodeOf(RdKafka::ErrorCode err) {
  switch (err) {
    case RdKafka::ERR_NO_ERROR:
      return absl::StatusCode::kOk;
    case RdKafka::ERR__UNKNOWN_PARTITION:
    case RdKafka::ERR__UNKNOWN_TOPIC:
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
      return absl::StatusCode::kNotFound;
    case RdKafka::ERR_MSG_SIZE_TOO_LARGE:
    case RdKafka::ERR_RECORD_LIST_TOO_LARGE:
    case RdKafka::ERR_INVALID_MSG:
    case RdKafka::ERR_INVALID_MSG_SIZE:
    case RdKafka::ERR_INVALID_RECORD:
    case RdKafka::ERR_INVALID_REQUIRED_ACKS:
    case RdKafka::ERR_TOPIC_EXCEPTION:
    case RdKafka::ERR__INVALID_ARG:
    case RdKafka::ERR__BAD_MSG:
      return absl::StatusCode::kInvalidArgument;
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
    case RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RdKafka::ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RdKafka::ERR_SASL_AUTHENTICATION_FAILED:
    case RdKafka::ERR__AUTHENTICATION:
      return absl::StatusCode::kPermissionDenied;
    case RdKafka::ERR__QUEUE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case RdKafka::ERR__PURGE_QUEUE:
    case RdKafka::ERR__PURGE_INFLIGHT:
    case RdKafka::ERR__DESTROY:
      return absl::StatusCode::kCancelled;
    case RdKafka::ERR__FATAL:
    case RdKafka::ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case RdKafka::ERR_INVALID_PRODUCER_EPOCH:
    case RdKafka::ERR_UNKNOWN_PRODUCER_ID:
    case RdKafka::ERR_PRODUCER_FENCED:
      return absl::StatusCode::kFailedPrecondition;
    case RdKafka::ERR__MSG_TIMED_OUT:
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR_REQUEST_TIMED_OUT:
    case RdKafka::ERR__ALL_BROKERS_DOWN:
    case RdKafka::ERR__TRANSPORT:
    case RdKafka::ERR__RESOLVE:
    case RdKafka::ERR_LEADER_NOT_AVAILABLE:
    case RdKafka::ERR_NOT_LEADER_FOR_PARTITION:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RdKafka::ERR_NETWORK_EXCEPTION:
    case RdKafka::ERR_BROKER_NOT_AVAILABLE:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::Status KafkaError(RdKafka::ErrorCode err, std::string_view message) {
  absl::Status status(CodeOf(err), absl::string_view(message.data(), message.size()));
  status.SetPayload(kErrorCodeUrl, absl::Cord(absl::StrCat(static_cast<int>(err))));
  return status;
}

std::string Where(const std::string& topic, int32_t partition) {
  return partition == KafkaProducer::kAnyPartition ? topic
                                                   : absl::StrCat(topic, " [", partition, "]");
}

}  // namespace

int KafkaErrorCode(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorCodeUrl);
  if (!payload) return 0;
  return std::atoi(std::string(*payload).c_str());
}

// Delivery reports, from whichever thread polls: atomic counts, and the
// failures not reported by Flush() yet under the mutex.
struct KafkaProducer::Delivery : public RdKafka::DeliveryReportCb {
  explicit Delivery(std::function<void(const absl::Status&)> on_failure)
      : on_failure_(std::move(on_failure)) {}

  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      acknowledged.fetch_add(1);
      return;
    }
    const absl::Status status = KafkaError(
        message.err(),
        absl::StrCat(message.topic_name(), " [", message.partition(), "]: ", message.errstr()));
    {
      absl::MutexLock lock(&mu);
      if (unreported_failures++ == 0) first_failure = status;
    }
    // Counted after the failure is recorded: a Flush() that sees nothing
    // pending also sees the failure.
    failed.fetch_add(1);
    if (on_failure_) on_failure_(status);
  }

  std::atomic<uint64_t> acknowledged{0};
  std::atomic<uint64_t> failed{0};
  absl::Mutex mu;
  uint64_t unreported_failures ABSL_GUARDED_BY(mu) = 0;
  absl::Status first_failure ABSL_GUARDED_BY(mu);

 private:
  const std::function<void(const absl::Status&)> on_failure_;
};

KafkaProducer::KafkaProducer(std::string brokers, KafkaProducerOptions options)
    : brokers_(std::move(brokers)),
      options_(std::move(options)),
      delivery_(std::make_unique<Delivery>(options_.on_delivery_failure)) {}

KafkaProducer::~KafkaProducer() {
  if (!producer_) return;
  const absl::Time deadline = absl::Now() + options_.close_timeout;
  while (pending() > 0 && absl::Now() < deadline) {
    producer_->flush(ToMillis(std::min(kFlushSlice, deadline - absl::Now())));
  }
}

absl::StatusOr<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const KafkaSettings& settings,
                                                                     KafkaProducerOptions options) {
  std::unique_ptr<KafkaProducer> producer(new KafkaProducer(settings.brokers, std::move(options)));
  RETURN_IF_ERROR(producer->Init(settings, {}));
  return producer;
}

absl::Status KafkaProducer::Init(const KafkaSettings& settings,
                                 const std::vector<KafkaProperty>& enforced) {
  const KafkaProducerOptions& o = options_;
  if (o.idempotence && o.acks != "all" && o.acks != "-1") {
    return absl::InvalidArgumentError(
        absl::StrCat("an idempotent Kafka producer needs acks=all, not acks=", o.acks,
                     " (turn idempotence off for weaker acknowledgements)"));
  }
  if (o.linger < absl::ZeroDuration() || o.delivery_timeout <= absl::ZeroDuration() ||
      o.batch_messages < 0 || o.queue_messages < 0) {
    return absl::InvalidArgumentError(
        "Kafka producer options: linger must be >= 0, delivery_timeout > 0, batch_messages and "
        "queue_messages >= 0");
  }
  std::vector<KafkaProperty> defaults = {
      {"client.id", o.client_id},
      {"acks", o.acks},
      {"linger.ms", absl::StrCat(absl::ToInt64Milliseconds(o.linger))},
      {"message.timeout.ms",
       o.delivery_timeout == absl::InfiniteDuration()
           ? std::string("0")
           : absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(o.delivery_timeout)))}};
  if (!o.compression.empty()) defaults.emplace_back("compression.type", o.compression);
  if (o.batch_messages > 0) {
    defaults.emplace_back("batch.num.messages", absl::StrCat(o.batch_messages));
  }
  if (o.queue_messages > 0) {
    defaults.emplace_back("queue.buffering.max.messages", absl::StrCat(o.queue_messages));
  }
  std::vector<KafkaProperty> all_enforced;
  if (o.idempotence) all_enforced.emplace_back("enable.idempotence", "true");
  all_enforced.insert(all_enforced.end(), enforced.begin(), enforced.end());
  ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                   NewKafkaConf(settings, defaults, all_enforced));
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(delivery_.get()), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(absl::StrCat("dr_cb: ", err));
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create a Kafka producer (", o.client_id,
                                                   ") for ", settings.brokers, ": ", err));
  }
  return absl::OkStatus();
}

absl::Status KafkaProducer::Produce(const std::string& topic, int32_t partition,
                                    std::optional<std::string_view> key,
                                    std::optional<std::string_view> value,
                                    const std::vector<KafkaHeader>& headers) {
  // Owned by librdkafka once a produce() succeeds; until then, reused.
  std::unique_ptr<RdKafka::Headers> hdrs;
  if (!headers.empty()) {
    hdrs.reset(RdKafka::Headers::create());
    for (const auto& [name, v] : headers) hdrs->add(name, v);
  }
  const absl::Time give_up = absl::Now() + options_.max_queue_wait;
  while (true) {
    // Counted before the call, so that a delivery report served meanwhile
    // on another thread never makes pending() miss a message.
    produced_.fetch_add(1);
    const RdKafka::ErrorCode err = producer_->produce(
        topic, partition, RdKafka::Producer::RK_MSG_COPY,
        value ? const_cast<char*>(value->data()) : nullptr, value ? value->size() : 0,
        key ? key->data() : nullptr, key ? key->size() : 0, 0, hdrs.get(), nullptr);
    if (err == RdKafka::ERR_NO_ERROR) {
      static_cast<void>(hdrs.release());  // deleted by librdkafka
      return absl::OkStatus();
    }
    produced_.fetch_sub(1);
    if (err != RdKafka::ERR__QUEUE_FULL) {
      std::string reason = RdKafka::err2str(err);
      if (err == RdKafka::ERR__FATAL) {
        std::string fatal;
        producer_->fatal_error(fatal);
        reason = absl::StrCat("fatal error, the producer must be recreated: ", fatal);
      }
      return KafkaError(err,
                        absl::StrCat("cannot produce to ", Where(topic, partition), ": ", reason));
    }
    if (Stopping()) {
      return absl::CancelledError(
          absl::StrCat("stopping while the local queue for ", Where(topic, partition), " is full"));
    }
    const absl::Time now = absl::Now();
    if (now >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cannot produce to ", Where(topic, partition), ": the local queue stayed full for ",
          absl::FormatDuration(options_.max_queue_wait), " (", pending(),
          " messages not acknowledged by ", brokers_, "); is the broker reachable?"));
    }
    producer_->poll(ToMillis(std::min(kPollSlice, give_up - now)));
  }
}

void KafkaProducer::Poll(absl::Duration timeout) { producer_->poll(ToMillis(timeout)); }

absl::Status KafkaProducer::Flush(absl::Time deadline) {
  const absl::Time start = absl::Now();
  while (pending() > 0) {
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(pending(), " messages not acknowledged by ", brokers_, " after ",
                       absl::FormatDuration(absl::Trunc(now - start, absl::Milliseconds(1))),
                       "; is the broker reachable?"));
    }
    producer_->flush(ToMillis(std::min(kFlushSlice, deadline - now)));
  }
  absl::MutexLock lock(&delivery_->mu);
  if (delivery_->unreported_failures == 0) return absl::OkStatus();
  absl::Status first = std::move(delivery_->first_failure);
  absl::Status status(first.code(), absl::StrCat(delivery_->unreported_failures,
                                                 " messages could not be delivered; the first, to ",
                                                 first.message()));
  if (absl::optional<absl::Cord> code = first.GetPayload(kErrorCodeUrl)) {
    status.SetPayload(kErrorCodeUrl, *code);
  }
  delivery_->unreported_failures = 0;
  delivery_->first_failure = absl::OkStatus();
  return status;
}

uint64_t KafkaProducer::acknowledged() const { return delivery_->acknowledged.load(); }
uint64_t KafkaProducer::failed() const { return delivery_->failed.load(); }

uint64_t KafkaProducer::pending() const {
  // Reports are counted after their message: read them first.
  const uint64_t done = delivery_->acknowledged.load() + delivery_->failed.load();
  const uint64_t queued = produced_.load();
  return queued > done ? queued - done : 0;
}

}  // namespace hubmetrics

namespace hubmetrics {
namespace {

// A failed transaction call, by what the caller must do next (see the
// header).
absl::Status TransactionError(std::string_view call, RdKafka::ErrorCode code, std::string_view text,
                              bool fatal, bool requires_abort, bool retriable) {
  const std::string what =
      absl::StrCat("Kafka transaction: ", absl::string_view(call.data(), call.size()), ": ",
                   absl::string_view(text.data(), text.size()));
  absl::Status s;
  if (fatal) {
    s = absl::FailedPreconditionError(absl::StrCat(
        what,
        " (fatal: the producer was fenced or lost its state; restart from the committed "
        "offsets)"));
  } else if (requires_abort) {
    s = absl::AbortedError(absl::StrCat(what, " (the transaction must be aborted)"));
  } else if (code == RdKafka::ERR__TIMED_OUT) {
    s = absl::DeadlineExceededError(what);
  } else if (retriable) {
    s = absl::UnavailableError(what);
  } else {
    return KafkaError(code, what);
  }
  s.SetPayload(kErrorCodeUrl, absl::Cord(absl::StrCat(static_cast<int>(code))));
  return s;
}

// The same for the C++ API's error (owned; null: success).
absl::Status TransactionStatus(std::string_view call, RdKafka::Error* raw) {
  std::unique_ptr<RdKafka::Error> error(raw);
  if (!error) return absl::OkStatus();
  return TransactionError(call, error->code(), error->str(), error->is_fatal(),
                          error->txn_requires_abort(), error->is_retriable());
}

}  // namespace

absl::StatusOr<std::unique_ptr<KafkaTransactionalProducer>> KafkaTransactionalProducer::Create(
    const KafkaSettings& settings, KafkaProducerOptions options,
    const std::string& transactional_id, absl::Duration timeout) {
  if (transactional_id.empty()) {
    return absl::InvalidArgumentError("a transactional producer needs a transactional id");
  }
  options.idempotence = true;
  options.acks = "all";
  // librdkafka requires message.timeout.ms <= transaction.timeout.ms (60 s by
  // default): a delivery cannot outlive its transaction.
  options.delivery_timeout = std::min(options.delivery_timeout, kTransactionTimeout);
  std::unique_ptr<KafkaTransactionalProducer> producer(
      new KafkaTransactionalProducer(settings.brokers, std::move(options)));
  RETURN_IF_ERROR(producer->Init(
      settings,
      {{"transactional.id", transactional_id},
       {"transaction.timeout.ms", absl::StrCat(absl::ToInt64Milliseconds(kTransactionTimeout))}}));
  RETURN_IF_ERROR(
      TransactionStatus("init", producer->rdkafka()->init_transactions(ToMillis(timeout))));
  return producer;
}

absl::Status KafkaTransactionalProducer::Begin() {
  return TransactionStatus("begin", rdkafka()->begin_transaction());
}

absl::Status KafkaTransactionalProducer::SendOffsets(const std::vector<TransactionOffset>& offsets,
                                                     RdKafka::KafkaConsumer* consumer,
                                                     absl::Duration timeout) {
  // The C API: librdkafka's C++ TopicPartition carries no metadata.
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const TransactionOffset& o : offsets) {
    rd_kafka_topic_partition_t* tp =
        rd_kafka_topic_partition_list_add(list, o.topic.c_str(), o.partition);
    tp->offset = o.next_offset;
    if (!o.metadata.empty()) {
      tp->metadata = std::malloc(o.metadata.size());
      std::memcpy(tp->metadata, o.metadata.data(), o.metadata.size());
      tp->metadata_size = o.metadata.size();
    }
  }
  rd_kafka_consumer_group_metadata_t* group = rd_kafka_consumer_group_metadata(consumer->c_ptr());
  rd_kafka_error_t* error =
      rd_kafka_send_offsets_to_transaction(rdkafka()->c_ptr(), list, group, ToMillis(timeout));
  rd_kafka_consumer_group_metadata_destroy(group);
  rd_kafka_topic_partition_list_destroy(list);
  if (error == nullptr) return absl::OkStatus();
  absl::Status s = TransactionError(
      "send offsets", static_cast<RdKafka::ErrorCode>(rd_kafka_error_code(error)),
      rd_kafka_error_string(error), rd_kafka_error_is_fatal(error),
      rd_kafka_error_txn_requires_abort(error), rd_kafka_error_is_retriable(error));
  rd_kafka_error_destroy(error);
  return s;
}

absl::Status KafkaTransactionalProducer::Commit(absl::Duration timeout) {
  return TransactionStatus("commit", rdkafka()->commit_transaction(ToMillis(timeout)));
}

absl::Status KafkaTransactionalProducer::Abort(absl::Duration timeout) {
  return TransactionStatus("abort", rdkafka()->abort_transaction(ToMillis(timeout)));
}

}  // namespace hubmetrics
