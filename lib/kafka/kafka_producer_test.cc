// KafkaProducer against librdkafka's in-process mock cluster: acknowledgements
// are counted and Flush() waits for them, a failed delivery surfaces in the
// next Flush() (once), headers, keys and tombstones arrive as given, the waits
// end at their deadline (and a full queue's also at the stop flag). The real broker is exercised by
// tests/integration.
#include "lib/kafka/kafka_producer.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;

// The Produce request's API key in the Kafka protocol.
constexpr int16_t kProduceApiKey = 0;

class MockCluster {
 public:
  MockCluster() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    mc_ = rd_kafka_mock_cluster_new(rk_, 1);
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(mc_);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  void CreateTopic(const std::string& topic, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, 1),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  // The next `errors.size()` Produce requests fail with these errors.
  void FailProduceRequests(const std::vector<rd_kafka_resp_err_t>& errors) {
    rd_kafka_mock_push_request_errors_array(mc_, kProduceApiKey, errors.size(), errors.data());
  }
  const std::string& bootstraps() const { return bootstraps_; }

  struct Record {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  // The first `expected` messages of topic[partition] (copied: a consumer
  // cannot be destroyed while its messages live).
  std::vector<Record> ReadAll(const std::string& topic, int32_t partition, size_t expected) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", bootstraps_, err);
    conf->set("group.id", "reader", err);
    std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
    std::vector<RdKafka::TopicPartition*> tps = {
        RdKafka::TopicPartition::create(topic, partition, RdKafka::Topic::OFFSET_BEGINNING)};
    c->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    std::vector<Record> out;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (out.size() < expected && absl::Now() < deadline) {
      std::unique_ptr<RdKafka::Message> m(c->consume(200));
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      Record r;
      if (m->key()) r.key = *m->key();
      if (m->payload()) r.value.emplace(static_cast<const char*>(m->payload()), m->len());
      if (m->headers()) {
        for (const RdKafka::Headers::Header& x : m->headers()->get_all()) {
          r.headers.emplace_back(x.key(),
                                 std::string(static_cast<const char*>(x.value()), x.value_size()));
        }
      }
      out.push_back(std::move(r));
    }
    c->close();
    return out;
  }

 private:
  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* mc_;
  std::string bootstraps_;
};

class KafkaProducerTest : public ::testing::Test {
 protected:
  KafkaProducerTest() { settings_.brokers = cluster_.bootstraps(); }

  std::unique_ptr<KafkaProducer> Create(KafkaProducerOptions options = {}) {
    options.client_id = "kafka-producer-test";
    auto p = KafkaProducer::Create(settings_, std::move(options));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  static absl::Time In(absl::Duration d) { return absl::Now() + d; }

  MockCluster cluster_;
  KafkaSettings settings_;
};

TEST_F(KafkaProducerTest, ProduceAndFlushAcknowledgesEverything) {
  cluster_.CreateTopic("t", 3);
  auto p = Create();
  ASSERT_TRUE(p);
  for (int i = 0; i < 600; ++i) {
    const std::string value = absl::StrCat("v", i);
    if (i % 3 == 0) {
      ASSERT_TRUE(p->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, value).ok());
    } else if (i % 3 == 1) {
      ASSERT_TRUE(
          p->Produce("t", KafkaProducer::kAnyPartition, absl::StrCat("k", i % 17), value).ok());
    } else {
      ASSERT_TRUE(p->Produce("t", i % 3, std::nullopt, value).ok());
    }
    if (i % 100 == 0) p->Poll();
  }
  EXPECT_EQ(p->produced(), 600u);
  const absl::Status s = p->Flush(In(absl::Seconds(30)));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(p->acknowledged(), 600u);
  EXPECT_EQ(p->failed(), 0u);
  EXPECT_EQ(p->pending(), 0u);
  // Nothing new: a second Flush() is immediate and OK.
  EXPECT_TRUE(p->Flush(absl::Now()).ok());
}

TEST_F(KafkaProducerTest, ConcurrentProducersAndFlushCountExactly) {
  cluster_.CreateTopic("t", 2);
  auto p = Create();
  ASSERT_TRUE(p);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&p, t] {
      for (int i = 0; i < 300; ++i) {
        EXPECT_TRUE(
            p->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, absl::StrCat(t, ":", i))
                .ok());
      }
    });
  }
  // Flushes while the others produce: each returns OK once what was queued
  // before it is acknowledged.
  for (int i = 0; i < 5; ++i) {
    const absl::Status s = p->Flush(In(absl::Seconds(30)));
    EXPECT_TRUE(s.ok()) << s;
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(p->Flush(In(absl::Seconds(30))).ok());
  EXPECT_EQ(p->produced(), 900u);
  EXPECT_EQ(p->acknowledged(), 900u);
  EXPECT_EQ(p->pending(), 0u);
}

TEST_F(KafkaProducerTest, DeliveryFailureSurfacesInTheNextFlushOnce) {
  cluster_.CreateTopic("t", 1);
  std::vector<std::string> reported;
  KafkaProducerOptions options;
  options.idempotence = false;  // a rejected request must fail its messages, not the producer
  options.on_delivery_failure = [&reported](const absl::Status& s) {
    reported.emplace_back(s.message());
  };
  auto p = Create(std::move(options));
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Produce("t", 0, std::nullopt, "first").ok());
  ASSERT_TRUE(p->Flush(In(absl::Seconds(30))).ok());

  cluster_.FailProduceRequests({RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
  ASSERT_TRUE(p->Produce("t", 0, std::nullopt, "refused").ok());
  const absl::Status s = p->Flush(In(absl::Seconds(30)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(KafkaErrorCode(s), RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_THAT(s.message(), HasSubstr("1 messages could not be delivered"));
  EXPECT_THAT(s.message(), HasSubstr("t [0]"));
  EXPECT_EQ(p->failed(), 1u);
  EXPECT_EQ(p->acknowledged(), 1u);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_THAT(reported[0], HasSubstr("t [0]: "));

  // Reported once: the next batch is judged on its own.
  ASSERT_TRUE(p->Produce("t", 0, std::nullopt, "again").ok());
  const absl::Status next = p->Flush(In(absl::Seconds(30)));
  EXPECT_TRUE(next.ok()) << next;
  EXPECT_EQ(p->acknowledged(), 2u);
  EXPECT_EQ(p->failed(), 1u);
}

TEST_F(KafkaProducerTest, APartitionThatDoesNotExistIsNotFound) {
  cluster_.CreateTopic("t", 1);
  auto p = Create();
  ASSERT_TRUE(p);
  // Before the topic's metadata is known the message is queued and fails at
  // delivery; after, Produce() refuses it at once. Either way: NotFound.
  absl::Status s = p->Produce("t", 5, std::nullopt, "nowhere");
  if (s.ok()) s = p->Flush(In(absl::Seconds(30)));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(s.message(), HasSubstr("t [5]"));
  ASSERT_TRUE(p->Flush(In(absl::Seconds(30))).ok());
  s = p->Produce("t", 5, std::nullopt, "nowhere");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(KafkaErrorCode(s), RdKafka::ERR__UNKNOWN_PARTITION);
  EXPECT_EQ(p->pending(), 0u);
}

TEST_F(KafkaProducerTest, HeadersKeysAndTombstonesArriveAsGiven) {
  cluster_.CreateTopic("t", 1);
  auto p = Create();
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Produce("t", 0, std::string_view("k1"), std::string_view("v1"),
                         {{"reason", "malformed"}, {"source_offset", "7"}, {"empty", ""}})
                  .ok());
  ASSERT_TRUE(p->Produce("t", 0, std::nullopt, std::string_view("no key")).ok());
  ASSERT_TRUE(p->Produce("t", 0, std::string_view("gone"), std::nullopt).ok());
  ASSERT_TRUE(p->Flush(In(absl::Seconds(30))).ok());
  const auto got = cluster_.ReadAll("t", 0, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].key, "k1");
  EXPECT_EQ(got[0].value, "v1");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"reason", "malformed"}, {"source_offset", "7"}, {"empty", ""}};
  EXPECT_EQ(got[0].headers, want);
  EXPECT_EQ(got[1].key, std::nullopt);
  EXPECT_EQ(got[1].value, "no key");
  EXPECT_TRUE(got[1].headers.empty());
  EXPECT_EQ(got[2].key, "gone");
  EXPECT_EQ(got[2].value, std::nullopt);  // tombstone
}

// Nothing listens there: messages stay queued.
KafkaSettings Unreachable() {
  KafkaSettings settings;
  settings.brokers = "127.0.0.1:1";
  settings.properties = {{"log_level", "0"}};
  return settings;
}

TEST(KafkaProducerWaitTest, FlushEndsAtItsDeadline) {
  auto p = KafkaProducer::Create(Unreachable(), {});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE((*p)->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, "x").ok());
  const absl::Time start = absl::Now();
  absl::Status s = (*p)->Flush(start + absl::Milliseconds(300));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(s.message(), HasSubstr("1 messages not acknowledged by 127.0.0.1:1"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ((*p)->pending(), 1u);
  // A deadline already past: one check, no wait.
  s = (*p)->Flush(absl::InfinitePast());
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST(KafkaProducerWaitTest, AFullQueueIsWaitedForBoundedly) {
  std::atomic<bool> stop{false};
  KafkaProducerOptions options;
  options.stop = &stop;
  options.queue_messages = 1;
  options.max_queue_wait = absl::Milliseconds(300);
  auto p = KafkaProducer::Create(Unreachable(), std::move(options));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE((*p)->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, "x").ok());
  absl::Time start = absl::Now();
  absl::Status s = (*p)->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, "y");
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(s.message(), HasSubstr("local queue stayed full"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  stop = true;
  s = (*p)->Produce("t", KafkaProducer::kAnyPartition, std::nullopt, "z");
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ((*p)->produced(), 1u);
  EXPECT_EQ((*p)->pending(), 1u);
}

TEST(KafkaProducerCreateTest, BadSettingsAreInvalidArgumentsNamingTheCulprit) {
  KafkaSettings settings;
  auto p = KafkaProducer::Create(settings, {});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("--kafka_brokers"));

  settings.brokers = "127.0.0.1:1";
  settings.properties = {{"log_level", "0"}, {"no.such.property", "1"}};
  p = KafkaProducer::Create(settings, {});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("no.such.property"));

  settings.properties = {{"log_level", "0"}, {"enable.idempotence", "false"}};
  p = KafkaProducer::Create(settings, {});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("enable.idempotence"));

  settings.properties = {{"log_level", "0"}};
  KafkaProducerOptions options;
  options.acks = "1";
  p = KafkaProducer::Create(settings, options);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("acks=all"));
  options.idempotence = false;
  p = KafkaProducer::Create(settings, options);
  EXPECT_TRUE(p.ok()) << p.status();
}

TEST_F(KafkaProducerTest, TransactionalProducerNeedsAnId) {
  auto p = KafkaTransactionalProducer::Create(settings_, {}, "", absl::Seconds(10));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
}

// Transactions begin, commit and abort, and their records reach the broker.
// (librdkafka's mock cluster does not hide aborted records from read_committed
// readers; tests/integration's roles scenario checks that on the real broker.)
TEST_F(KafkaProducerTest, TransactionsCommitAndAbort) {
  cluster_.CreateTopic("t", 1);
  auto p = KafkaTransactionalProducer::Create(settings_, {}, "txn-test", absl::Seconds(30));
  ASSERT_TRUE(p.ok()) << p.status();
  auto run = [&](const std::vector<std::string>& values, bool commit) {
    ASSERT_TRUE((*p)->Begin().ok());
    for (const std::string& v : values) ASSERT_TRUE((*p)->Produce("t", 0, std::nullopt, v).ok());
    ASSERT_TRUE((*p)->Flush(In(absl::Seconds(30))).ok());
    const absl::Status s =
        commit ? (*p)->Commit(absl::Seconds(30)) : (*p)->Abort(absl::Seconds(30));
    ASSERT_TRUE(s.ok()) << s;
  };
  run({"a1", "a2"}, true);
  run({"b1"}, false);
  run({"c1"}, true);
  auto values = [](const std::vector<MockCluster::Record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(r.value.value_or("<null>"));
    return out;
  };
  EXPECT_EQ(values(cluster_.ReadAll("t", 0, 4)),
            (std::vector<std::string>{"a1", "a2", "b1", "c1"}));
}

}  // namespace
}  // namespace hubmetrics
