// KafkaProducer: the one librdkafka producer of hubmetrics (the DLQ sink,
// loadgen, the freshness probe, the integration tests' produce tool). It owns
// what every producer needs and used to write by hand: the delivery-report
// callback, the wait while librdkafka's local queue is full, the counts of
// acknowledged and failed deliveries, and a Flush() that says whether
// everything produced was acknowledged.
//
// Ownership: Create() returns the only owner of the librdkafka handle. The
// `stop` flag and the `on_delivery_failure` callback of the options are not
// owned; they must outlive the producer (the destructor still serves delivery
// reports while it waits up to `close_timeout` for the last messages).
//
// Thread safety: every method may be called from any thread, concurrently.
// Delivery reports are served by whichever thread polls (Produce, Poll,
// Flush, the destructor); `on_delivery_failure` runs there. Counters are
// exact at any time; Flush() reports each delivery failure once (see there).
//
// Errors: absl::Status, never exceptions. Local produce errors and delivery
// errors map librdkafka's error to the most specific code (unknown topic or
// partition: NotFound; message too large, invalid argument: InvalidArgument;
// broker unreachable, delivery timed out, leader not available: Unavailable;
// authorization: PermissionDenied; fatal idempotence error: FailedPrecondition;
// purged: Cancelled); KafkaErrorCode() returns librdkafka's own code from such
// a status. Waits that run out are DeadlineExceeded (never a delivery error:
// a delivery that timed out is Unavailable); waits ended by the stop flag are
// Cancelled.
//
// Transactions: KafkaTransactionalProducer (below) builds on this class; it
// passes `transactional.id` to Init() as an enforced property and drives
// init/begin/send_offsets/commit; this class keeps everything that is common:
// settings, queue-full waits, delivery accounting and flushing.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_PRODUCER_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_PRODUCER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kafka/kafka_config.h"

namespace RdKafka {
class Conf;
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

namespace hubmetrics {

// One header of a record: name and value (copied by Produce()).
using KafkaHeader = std::pair<std::string, std::string>;

struct KafkaProducerOptions {
  // client.id, in the broker's logs and metrics.
  std::string client_id = "hubmetrics";
  // enable.idempotence: no duplicates or reordering from retries. Enforced
  // (a settings property that turns it off is an InvalidArgument); needs
  // acks=all.
  bool idempotence = true;
  // acks: "all" (or "-1"), "1" or "0".
  std::string acks = "all";
  // linger.ms: how long messages wait to fill a batch.
  absl::Duration linger = absl::Milliseconds(5);
  // message.timeout.ms: a message not acknowledged within this time fails
  // its delivery (Unavailable). InfiniteDuration: retry however long an
  // outage lasts.
  absl::Duration delivery_timeout = absl::Minutes(5);
  // compression.type ("lz4", "zstd", ...); empty: librdkafka's default.
  std::string compression;
  // batch.num.messages and queue.buffering.max.messages; 0: librdkafka's
  // defaults.
  int batch_messages = 0;
  int queue_messages = 0;
  // How long Produce() waits (serving delivery reports) while the local
  // queue is full before it gives up with DeadlineExceeded.
  // InfiniteDuration: until `stop`.
  absl::Duration max_queue_wait = absl::Minutes(5);
  // How long the destructor waits for unacknowledged messages (zero: not
  // at all; tools that Flush() before they exit need no more).
  absl::Duration close_timeout = absl::Seconds(2);
  // Not owned, may be null: once set, Produce() stops waiting for room in
  // the queue and returns Cancelled (so that shutdown is not held up by a
  // broker that does not answer). Flush() is bounded by its deadline alone:
  // a caller that must stop sooner flushes in slices and checks its flag.
  const std::atomic<bool>* stop = nullptr;
  // Called for each failed delivery, on the thread that served the report,
  // with the error (message: "TOPIC [PARTITION]: librdkafka's reason"). May
  // be empty.
  std::function<void(const absl::Status&)> on_delivery_failure;
};

class KafkaProducer {
 public:
  // Any partition: librdkafka's partitioner picks one (by key hash, or
  // spread when there is no key).
  static constexpr int32_t kAnyPartition = -1;

  // The producer of `settings` (brokers, then `options`' properties as
  // defaults, then the user's properties, then the enforced ones).
  // InvalidArgument naming the flag or property that is wrong (empty
  // brokers, a property librdkafka rejects, idempotence turned off by a
  // property, idempotence with acks other than all).
  static absl::StatusOr<std::unique_ptr<KafkaProducer>> Create(const KafkaSettings& settings,
                                                               KafkaProducerOptions options);
  // Waits up to close_timeout (even when `stop` is set: it is bounded) for
  // the messages not acknowledged yet, then drops them.
  virtual ~KafkaProducer();

  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Queues one record (copied) for `topic`. `partition` may be
  // kAnyPartition. No key (nullopt) and no value (nullopt: a tombstone) are
  // distinct from empty ones. While the local queue is full it serves
  // delivery reports and retries, up to max_queue_wait (DeadlineExceeded) or
  // until `stop` is set (Cancelled). Other errors are returned at once (see
  // the file comment), with KafkaErrorCode() set; nothing was queued then.
  absl::Status Produce(const std::string& topic, int32_t partition,
                       std::optional<std::string_view> key, std::optional<std::string_view> value,
                       const std::vector<KafkaHeader>& headers = {});

  // Serves delivery reports, waiting up to `timeout` for one.
  void Poll(absl::Duration timeout = absl::ZeroDuration());

  // Waits until every message Produce() queued before the call has its
  // delivery report. OK only if then every delivery since the previous
  // Flush() that returned a delivery error was acknowledged; otherwise the
  // first such delivery error (its code as in the file comment, the message
  // counting the failures), after which the failures are forgotten: each is
  // reported by one Flush(). DeadlineExceeded (only) when messages are still
  // unacknowledged at `deadline`; that forgets nothing, so a caller may flush
  // in slices until it is not DeadlineExceeded.
  absl::Status Flush(absl::Time deadline);

  // Messages queued by Produce() so far, acknowledged by the broker, failed
  // delivery; and those queued but without a delivery report yet.
  uint64_t produced() const { return produced_.load(); }
  uint64_t acknowledged() const;
  uint64_t failed() const;
  uint64_t pending() const;

  // The librdkafka handle, for requests this class does not wrap (admin
  // calls such as DeleteRecords, transactions, tests). Producing through it
  // bypasses the counters.
  RdKafka::Producer* rdkafka() const { return producer_.get(); }

  const std::string& brokers() const { return brokers_; }

  struct Delivery;

 protected:
  KafkaProducer(std::string brokers, KafkaProducerOptions options);
  // Creates the librdkafka producer from `settings`, the options and
  // `enforced` (properties the user may not override, after the options'
  // own: e.g. a subclass's transactional.id).
  absl::Status Init(const KafkaSettings& settings, const std::vector<KafkaProperty>& enforced);

  const KafkaProducerOptions& options() const { return options_; }

 private:
  bool Stopping() const { return options_.stop != nullptr && options_.stop->load(); }

  const std::string brokers_;
  const KafkaProducerOptions options_;
  // Declared before producer_: librdkafka calls it until the handle is gone.
  std::unique_ptr<Delivery> delivery_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::atomic<uint64_t> produced_{0};
};

// One consumed position handed to a transaction: the next offset to read of
// `topic` [`partition`], with the metadata string committed beside it.
struct TransactionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;
  std::string metadata;
};

// A transactional producer (consume-transform-produce, exactly once): the
// records produced between Begin() and Commit(), and the consumer group's
// offsets sent with SendOffsets(), become visible to read_committed readers
// together, or not at all. Idempotence is on (enforced).
//
// Errors (every call): FailedPrecondition when the producer is fenced or
// otherwise fatally broken (another producer with the same transactional id
// took over, or the broker lost its state): the process must stop using it
// and re-create it after re-reading from the committed offsets; Aborted when
// the transaction must be aborted (Abort()) and its work redone from the
// committed offsets; Unavailable when the call may simply be retried;
// DeadlineExceeded when `timeout` ran out (a retry of the same call is
// allowed).
//
// Thread safety: as KafkaProducer; transaction calls are made by one thread.
class KafkaTransactionalProducer final : public KafkaProducer {
 public:
  // transaction.timeout.ms: the broker aborts a transaction open longer than
  // this (a crashed producer's). A delivery_timeout longer than this is cut
  // to it (librdkafka's rule).
  static constexpr absl::Duration kTransactionTimeout = absl::Seconds(60);

  // Creates the producer and initialises transactions for
  // `transactional_id`: an open transaction of an earlier producer with that
  // id is aborted, and that producer is fenced.
  static absl::StatusOr<std::unique_ptr<KafkaTransactionalProducer>> Create(
      const KafkaSettings& settings, KafkaProducerOptions options,
      const std::string& transactional_id, absl::Duration timeout);

  absl::Status Begin();
  // Adds `offsets` (committed for the group of `consumer`, whose current
  // group metadata fences zombies across rebalances) to the transaction.
  absl::Status SendOffsets(const std::vector<TransactionOffset>& offsets,
                           RdKafka::KafkaConsumer* consumer, absl::Duration timeout);
  // Flushes the transaction's records and commits it with its offsets.
  absl::Status Commit(absl::Duration timeout);
  absl::Status Abort(absl::Duration timeout);

 private:
  using KafkaProducer::KafkaProducer;
};

// librdkafka's error code (an RdKafka::ErrorCode / rd_kafka_resp_err_t) in a
// status returned by KafkaProducer; 0 (no error) when it carries none.
int KafkaErrorCode(const absl::Status& status);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_PRODUCER_H_
