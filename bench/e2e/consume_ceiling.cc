// consume_ceiling: the machine's consume ceiling for hubmetricsd's catch-up
// (issue 18): a librdkafka consumer with hubmetricsd's event-source settings
// (lib/kafka/kafka_sources.cc, KafkaEventSource::Impl::Init) that reads a topic
// to its end the way hubmetricsd does (a fresh group, subscribe, bunches of up
// to 4,096 messages from the consumer queue) and does nothing with them.
//
//   consume_ceiling --brokers=127.0.0.1:9092 --topic=T --events=N
//       [--group_id=G] [--kafka_property=k=v ...] [--timeout=600s]
//
// Timed like hubmetricsd's catch-up: from the start of main() until N messages
// were read (process start, group join and assignment included). Prints one
// JSON line on stdout:
//   {"events":N,"bytes":..,"seconds":..,"events_per_sec":..,
//    "seconds_from_first_message":..,"cpu_seconds":..}
// cpu_seconds is the process's utime+stime at that moment. Exit status 1 when
// N messages were not read within --timeout, or on a setup failure.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/kafka/kafka_config.h"

ABSL_FLAG(std::string, brokers, "127.0.0.1:9092", "Kafka bootstrap servers.");
ABSL_FLAG(std::string, topic, "hub.downloads", "Topic to read to its end.");
ABSL_FLAG(int64_t, events, 0, "Messages to read (the topic's size); required.");
ABSL_FLAG(std::string, group_id, "", "Consumer group (default: a fresh one).");
ABSL_FLAG(std::vector<std::string>, kafka_property, {},
          "Extra librdkafka properties key=value, applied after the defaults, as "
          "hubmetricsd's --kafka_property.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(600), "Give up after this long.");

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int Run(std::chrono::steady_clock::time_point start) {
  const int64_t want = absl::GetFlag(FLAGS_events);
  const std::string topic = absl::GetFlag(FLAGS_topic);
  if (want <= 0) {
    std::fprintf(stderr, "consume_ceiling: --events must be > 0\n");
    return 1;
  }
  std::string group = absl::GetFlag(FLAGS_group_id);
  if (group.empty()) {
    group = absl::StrCat("consume-ceiling-", absl::ToUnixMicros(absl::Now()));
  }
  std::vector<hubmetrics::KafkaProperty> extra;
  for (const std::string& kv : absl::GetFlag(FLAGS_kafka_property)) {
    auto parsed = hubmetrics::ParseKafkaProperties(kv, "--kafka_property");
    if (!parsed.ok()) {
      std::fprintf(stderr, "consume_ceiling: %s\n", std::string(parsed.status().message()).c_str());
      return 1;
    }
    extra.insert(extra.end(), parsed->begin(), parsed->end());
  }
  // hubmetricsd's event source settings (lib/kafka/kafka_sources.cc), the
  // reasons for each given there.
  auto conf = hubmetrics::NewKafkaConf({absl::GetFlag(FLAGS_brokers), extra},
                                       {{"client.id", "hubmetrics-consume-ceiling"},
                                        {"auto.offset.reset", "earliest"},
                                        {"queued.min.messages", "1000000"},
                                        {"queued.max.messages.kbytes", "262144"},
                                        {"isolation.level", "read_committed"},
                                        {"enable.partition.eof", "false"},
                                        {"max.partition.fetch.bytes", "8388608"}},
                                       {{"group.id", group},
                                        {"enable.auto.commit", "false"},
                                        {"enable.auto.offset.store", "false"}});
  if (!conf.ok()) {
    std::fprintf(stderr, "consume_ceiling: %s\n", std::string(conf.status().message()).c_str());
    return 1;
  }
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) {
    std::fprintf(stderr, "consume_ceiling: cannot create the consumer: %s\n", err.c_str());
    return 1;
  }
  if (RdKafka::ErrorCode e = consumer->subscribe({topic}); e != RdKafka::ERR_NO_ERROR) {
    std::fprintf(stderr, "consume_ceiling: subscribe: %s\n", RdKafka::err2str(e).c_str());
    return 1;
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(consumer->c_ptr());
  constexpr size_t kMaxPolled = 4096;  // hubmetricsd's bunch
  std::vector<rd_kafka_message_t*> polled(kMaxPolled);
  const auto deadline =
      start + std::chrono::microseconds(absl::ToInt64Microseconds(absl::GetFlag(FLAGS_timeout)));
  int64_t read = 0, bytes = 0;
  std::chrono::steady_clock::time_point first{};
  int errors_logged = 0;
  while (read < want && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = rd_kafka_consume_batch_queue(queue, 100, polled.data(), polled.size());
    for (ssize_t j = 0; j < n; ++j) {
      rd_kafka_message_t* m = polled[j];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (read == 0) first = std::chrono::steady_clock::now();
        ++read;
        bytes += static_cast<int64_t>(m->len);
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && ++errors_logged <= 20) {
        std::fprintf(stderr, "consume_ceiling: %s\n", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
  }
  const auto done = std::chrono::steady_clock::now();
  const double cpu = CpuSeconds();
  const double seconds = std::chrono::duration<double>(done - start).count();
  const double after_first = read > 0 ? std::chrono::duration<double>(done - first).count() : 0.0;
  rd_kafka_queue_destroy(queue);
  consumer->close();
  if (read < want) {
    std::fprintf(stderr, "consume_ceiling: read %lld of %lld messages of %s before the timeout\n",
                 static_cast<long long>(read), static_cast<long long>(want), topic.c_str());
    return 1;
  }
  std::printf(
      "{\"events\":%lld,\"bytes\":%lld,\"seconds\":%.3f,\"events_per_sec\":%.0f,"
      "\"seconds_from_first_message\":%.3f,\"cpu_seconds\":%.2f}\n",
      static_cast<long long>(read), static_cast<long long>(bytes), seconds,
      static_cast<double>(read) / std::max(seconds, 1e-9), after_first, cpu);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  absl::SetProgramUsageMessage(
      "consume_ceiling --brokers=HOST:PORT --topic=T --events=N: reads the topic to its end "
      "with hubmetricsd's consumer settings and does nothing else; prints one JSON line "
      "(events/s from process start).");
  absl::ParseCommandLine(argc, argv);
  return Run(start);
}
