// The Kafka sources against librdkafka's in-process mock cluster: offsets
// come from the state (not from the group), dead letters carry their headers,
// the catalog applies upserts and tombstones. The real broker is exercised by
// tests/integration.
#include "lib/kafka/kafka_sources.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/state/state_store.h"

namespace hubmetrics {
namespace {

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
  const std::string& bootstraps() const { return bootstraps_; }

  // Produces and waits for the acknowledgements. A null value: tombstone.
  void Produce(const std::string& topic, int32_t partition, const std::optional<std::string>& key,
               const std::optional<std::string>& value) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", bootstraps_, err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    ASSERT_TRUE(p) << err;
    ASSERT_EQ(
        p->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY,
                   value ? const_cast<char*>(value->data()) : nullptr, value ? value->size() : 0,
                   key ? key->data() : nullptr, key ? key->size() : 0, 0, nullptr),
        RdKafka::ERR_NO_ERROR);
    ASSERT_EQ(p->flush(10000), RdKafka::ERR_NO_ERROR);
  }

  struct Record {
    std::optional<std::string> key;
    std::string value;
    std::map<std::string, std::string> headers;
  };

  // Every message of topic[partition] from the beginning (copied: a consumer
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
      r.value.assign(static_cast<const char*>(m->payload()), m->len());
      if (m->headers()) {
        for (const RdKafka::Headers::Header& x : m->headers()->get_all()) {
          r.headers[x.key()] = std::string(static_cast<const char*>(x.value()), x.value_size());
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

std::string Event(int i) {
  return absl::StrCat(R"({"model_id":"org/model-)", i % 7, R"(","user_id":"user-)", i,
                      R"(","time":"2025-03-0)", 1 + i % 5, R"(T12:00:00Z"})");
}

class KafkaSourcesTest : public ::testing::Test {
 protected:
  KafkaSourcesTest() : clock_(absl::FromUnixSeconds(1748736000)) {  // 2025-06-01
    cluster_.CreateTopic("events", 2);
    cluster_.CreateTopic("dlq", 1);
    cluster_.CreateTopic("models", 1);
    settings_.brokers = cluster_.bootstraps();
    // The mock cluster's group rejoin waits session.timeout.ms - 1 s.
    settings_.properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  }

  std::unique_ptr<Pipeline> Open() {
    std::array<uint8_t, 16> key{};
    key[3] = 7;
    auto p = Pipeline::Open(PipelineOptions{}, std::make_unique<UnownedStateStore>(&store_),
                            &clock_, UserHasher(key));
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  // Runs an event source (group `group`) until the pipeline has read `n` events.
  void ConsumeUntil(Pipeline* pipeline, const std::string& group, uint64_t n) {
    auto dlq = KafkaDeadLetterSink::Create(settings_, "dlq", nullptr);
    ASSERT_TRUE(dlq.ok()) << dlq.status();
    KafkaEventSourceOptions options;
    options.topic = "events";
    options.group_id = group;
    options.format = EventFormat::kJson;
    auto source = KafkaEventSource::Create(settings_, options, pipeline, &gate_, dlq->get());
    ASSERT_TRUE(source.ok()) << source.status();
    std::atomic<bool> stop{false};
    absl::Status result;
    std::thread t([&] { result = (*source)->Run(stop); });
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (pipeline->GetIngestStats().events_read() < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    stop = true;
    t.join();
    EXPECT_TRUE(result.ok()) << result;
  }

  MockCluster cluster_;
  KafkaSettings settings_;
  FakeStateStore store_;
  ManualClock clock_;
  IngestGate gate_;
};

TEST_F(KafkaSourcesTest, OffsetsComeFromTheStateNotFromTheGroup) {
  for (int i = 0; i < 30; ++i) cluster_.Produce("events", i % 2, std::nullopt, Event(i));
  {
    auto p = Open();
    ConsumeUntil(p.get(), "group-a", 30);
    EXPECT_EQ(p->GetIngestStats().events_read(), 30u);
    EXPECT_EQ(p->StoredOffset(KafkaSourceKey("events", 0)), 15);
    EXPECT_EQ(p->StoredOffset(KafkaSourceKey("events", 1)), 15);
  }
  for (int i = 30; i < 40; ++i) cluster_.Produce("events", i % 2, std::nullopt, Event(i));
  // A restart under a new group (no committed group offsets at all): it must
  // resume where the state says, not re-read from the beginning.
  auto p = Open();
  ConsumeUntil(p.get(), "group-b", 40);
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 40u);
  EXPECT_EQ(s.unique_downloads() + s.duplicates() + s.rejected(), 40u);
  EXPECT_EQ(p->StoredOffset(KafkaSourceKey("events", 0)), 20);
  EXPECT_EQ(p->StoredOffset(KafkaSourceKey("events", 1)), 20);
}

TEST_F(KafkaSourcesTest, RejectedEventsGoToTheDlqWithHeadersAndOriginalBytes) {
  cluster_.Produce("events", 1, std::nullopt, Event(1));
  cluster_.Produce("events", 1, std::string("k1"), std::string("{not json"));
  cluster_.Produce(
      "events", 1, std::nullopt,
      std::string(R"({"model_id":"a--b","user_id":"u","time":"2025-03-01T00:00:00Z"})"));
  auto p = Open();
  ConsumeUntil(p.get(), "group-dlq", 3);
  auto got = cluster_.ReadAll("dlq", 0, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value, "{not json");
  EXPECT_EQ(got[0].key, "k1");
  std::map<std::string, std::string> h0 = got[0].headers, h1 = got[1].headers;
  EXPECT_EQ(h0["reason"], "malformed");
  EXPECT_EQ(h0["source_topic"], "events");
  EXPECT_EQ(h0["source_partition"], "1");
  EXPECT_EQ(h0["source_offset"], "1");
  EXPECT_EQ(h1["reason"], "invalid_model_id");
  EXPECT_EQ(h1["source_offset"], "2");
  EXPECT_EQ(got[1].key, std::nullopt);
}

TEST_F(KafkaSourcesTest, CatalogAppliesTheLastRecordPerModelAndTombstones) {
  cluster_.Produce("models", 0, std::string("org/a"),
                   std::string(R"({"model_id":"org/a","developer":"x"})"));
  cluster_.Produce("models", 0, std::string("org/b"), std::string(R"({"model_id":"org/b"})"));
  cluster_.Produce("models", 0, std::string("org/c"), std::string(R"({"model_id":"org/c"})"));
  cluster_.Produce("models", 0, std::string("org/a"),
                   std::string(R"({"model_id":"org/a","developer":"y"})"));
  cluster_.Produce("models", 0, std::string("org/b"), std::nullopt);  // tombstone
  cluster_.Produce("models", 0, std::string("org/z"),
                   std::string(R"({"model_id":"org/c"})"));  // key mismatch
  cluster_.Produce("models", 0, std::string("org/d"), std::string("{oops"));
  auto p = Open();
  KafkaCatalogSourceOptions options;
  options.topic = "models";
  options.format = EventFormat::kJson;
  auto source = KafkaCatalogSource::Create(settings_, options, p.get(), &gate_);
  ASSERT_TRUE(source.ok()) << source.status();
  std::atomic<bool> stop{false};
  ASSERT_TRUE((*source)->Bootstrap(stop).ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.catalog_models(), 2u);  // org/a and org/c
  EXPECT_EQ(s.catalog_rejected(), 2u);
  // Following: a new record appears.
  std::thread t([&] { EXPECT_TRUE((*source)->Follow(stop).ok()); });
  cluster_.Produce("models", 0, std::string("org/e"), std::string(R"({"model_id":"org/e"})"));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (p->GetIngestStats().catalog_models() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop = true;
  t.join();
  EXPECT_EQ(p->GetIngestStats().catalog_models(), 3u);
}

}  // namespace
}  // namespace hubmetrics
