// loadgen: realistic Hugging Face Hub-like traffic for hubmetrics.
//
// File mode writes the catalog (ModelInfo NDJSON) and the raw download events
// (DownloadEvent NDJSON, bad records included); the same flags always give
// the same bytes:
//
//   loadgen --out=events.ndjson --models_out=models.ndjson --events=200000 --seed=1
//       --start=2025-01-06T00:00:00Z --days=70 --models=3000 --users=60000 --bad_fraction=0.01
//
// Kafka mode (--kafka_brokers) produces the same records: the whole catalog to
// --models_topic first (key = model id, flushed before any event), then the
// events to --events_topic at a steady --rate (token bucket) until --total
// events were sent, the generator's --events are exhausted, or SIGINT/SIGTERM;
// then it flushes and exits 0 when every message was acknowledged. Values are
// binary protobuf by default (hubmetricsd's default), JSON with
// --events_format=json; a bad record that has no protobuf equivalent is sent
// as its raw bytes either way, so the dead-letter path gets exercised.
//
// Both modes print the shape of the traffic to stderr at the end; Kafka mode
// also prints progress every few seconds.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "lib/kafka/kafka_producer.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "services/loadgen/traffic.h"

ABSL_FLAG(std::string, out, "", "File mode: events NDJSON file to write.");
ABSL_FLAG(std::string, models_out, "", "File mode: models (catalog) NDJSON file to write.");
ABSL_FLAG(int64_t, events, 200000,
          "Event records the generator makes (bad ones included); they span --days.");
ABSL_FLAG(uint64_t, seed, 1, "Random seed; the same flags give the same records.");
ABSL_FLAG(std::string, start, "2025-01-06T00:00:00Z",
          "RFC 3339 time whose UTC day is the first simulated day.");
ABSL_FLAG(int, days, 70, "Simulated days the events span.");
ABSL_FLAG(int, models, 3000, "Models in the catalog.");
ABSL_FLAG(int, users, 60000, "Distinct users.");
ABSL_FLAG(double, bad_fraction, 0.01,
          "Fraction of event records that are bad, spread over every rejection reason.");
ABSL_FLAG(std::string, kafka_brokers, "",
          "Kafka mode: bootstrap servers host:port[,host:port...] to produce to.");
ABSL_FLAG(std::string, events_topic, "hub.downloads", "Kafka mode: topic of the events.");
ABSL_FLAG(std::string, models_topic, "hub.models", "Kafka mode: topic of the catalog.");
ABSL_FLAG(std::string, events_format, "binary",
          "Kafka mode: value format of both topics, binary (protobuf) or json.");
ABSL_FLAG(double, rate, 0, "Kafka mode: events per second; 0 = as fast as it can.");
ABSL_FLAG(int64_t, total, 0,
          "Kafka mode: events to send; 0 = until interrupted or --events are exhausted.");
ABSL_FLAG(absl::Duration, progress_every, absl::Seconds(5),
          "Kafka mode: interval of the progress lines on stderr.");
ABSL_FLAG(std::string, kafka_property, "",
          "Kafka mode: extra librdkafka properties key=value[;key=value...] (security.protocol, "
          "sasl.*, ssl.*), applied last.");

namespace {

using hubmetrics::loadgen::TrafficGenerator;

// Set by SIGINT/SIGTERM; the produce loop checks it between messages, the
// producer while the local queue is full.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
void OnSignal(int) { g_stop = true; }

absl::StatusOr<std::unique_ptr<TrafficGenerator>> MakeGenerator() {
  hubmetrics::loadgen::TrafficOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.events = absl::GetFlag(FLAGS_events);
  auto start = hubmetrics::ParseRfc3339(absl::GetFlag(FLAGS_start));
  if (!start.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--start: ", start.status().message()));
  }
  options.start = *start;
  options.days = absl::GetFlag(FLAGS_days);
  options.models = absl::GetFlag(FLAGS_models);
  options.users = absl::GetFlag(FLAGS_users);
  options.bad_fraction = absl::GetFlag(FLAGS_bad_fraction);
  return TrafficGenerator::Create(options);
}

absl::Status RunFiles(const std::string& out, const std::string& models_out) {
  auto generator = MakeGenerator();
  if (!generator.ok()) return generator.status();

  std::ofstream models_file(models_out, std::ios::binary | std::ios::trunc);
  if (!models_file) return absl::NotFoundError(absl::StrCat("cannot open ", models_out));
  while (auto m = (*generator)->NextModel()) models_file << m->json << '\n';
  models_file.close();
  if (!models_file) return absl::DataLossError(absl::StrCat("cannot write ", models_out));

  std::ofstream events_file(out, std::ios::binary | std::ios::trunc);
  if (!events_file) return absl::NotFoundError(absl::StrCat("cannot open ", out));
  while (auto e = (*generator)->NextEvent()) events_file << e->json << '\n';
  events_file.close();
  if (!events_file) return absl::DataLossError(absl::StrCat("cannot write ", out));

  std::cerr << hubmetrics::loadgen::FormatShape((*generator)->Shape());
  return absl::OkStatus();
}

// The producer of Kafka mode: the generator's records, acknowledged before
// exit. Extra properties come from --kafka_property (key=value;key=value),
// applied after loadgen's own.
absl::StatusOr<std::unique_ptr<hubmetrics::KafkaProducer>> NewProducer(const std::string& brokers) {
  hubmetrics::KafkaSettings settings;
  settings.brokers = brokers;
  const std::string extra = absl::GetFlag(FLAGS_kafka_property);
  size_t begin = 0;
  while (begin < extra.size()) {
    size_t end = extra.find(';', begin);
    if (end == std::string::npos) end = extra.size();
    const std::string item = extra.substr(begin, end - begin);
    begin = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kafka_property: '", item, "' is not key=value"));
    }
    settings.properties.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  hubmetrics::KafkaProducerOptions options;
  options.client_id = "hubmetrics-loadgen";
  options.idempotence = true;
  options.linger = absl::Milliseconds(5);
  options.batch_messages = 100000;
  options.queue_messages = 1000000;
  options.compression = "lz4";
  // While the local queue is full: until a signal.
  options.max_queue_wait = absl::InfiniteDuration();
  options.stop = &g_stop;
  options.close_timeout = absl::ZeroDuration();  // flushed before exit
  options.on_delivery_failure = [failures = 0](const absl::Status& s) mutable {
    if (failures++ < 5) std::cerr << "loadgen: delivery failed: " << s.message() << "\n";
  };
  return hubmetrics::KafkaProducer::Create(settings, std::move(options));
}

// Queues one message (no key when `key` is empty). Fails on errors other than
// a full queue, or when a signal arrives while the queue is full.
absl::Status Produce(hubmetrics::KafkaProducer& producer, const std::string& topic,
                     const std::string& key, const std::string& value) {
  return producer.Produce(topic, hubmetrics::KafkaProducer::kAnyPartition,
                          key.empty() ? std::nullopt : std::optional<std::string_view>(key), value);
}

// The value to send for a JSON record: the record converted to binary protobuf
// (or as is in json mode); a record that has no protobuf equivalent is sent as
// its raw bytes so hubmetricsd rejects it to the DLQ.
std::string ToValue(const std::string& json, bool binary, google::protobuf::Message* scratch) {
  if (!binary) return json;
  scratch->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(json, scratch, options).ok()) return json;
  return scratch->SerializeAsString();
}

// The binary value of one event record. Good events are encoded from their
// fields (the JSON round trip is the slow part of loadgen). A bad record with
// an invalid time has no protobuf equivalent — protobuf's JSON parser would
// accept some of those times that hubmetricsd rejects, turning a bad record into
// a good one that moves the watermark — so it is sent as its raw bytes.
//
// A too_large record is encoded like a good event plus an unknown field of
// padding (protobuf's JSON parser would drop the JSON record's padding field and
// turn it into a small good event), so that the binary value is as long as the
// JSON line, just over hubmetricsd's default --max_event_bytes.
std::string EventValue(const hubmetrics::loadgen::EventRecord& e, bool binary,
                       hubmetrics::v1::DownloadEvent* scratch) {
  using hubmetrics::loadgen::BadKind;
  if (!binary || e.kind == BadKind::kInvalidTime) return e.json;
  if (e.kind != BadKind::kNone && e.kind != BadKind::kTooLarge) {
    return ToValue(e.json, binary, scratch);
  }
  scratch->Clear();
  scratch->set_model_id(e.model_id);
  scratch->set_user_id(e.user_id);
  const int64_t micros = absl::ToUnixMicros(e.time);
  scratch->mutable_time()->set_seconds(micros / 1000000 - (micros % 1000000 < 0 ? 1 : 0));
  scratch->mutable_time()->set_nanos(
      static_cast<int32_t>(((micros % 1000000) + 1000000) % 1000000 * 1000));
  if (e.kind == BadKind::kTooLarge) {
    // Field 15, unknown to DownloadEvent, of padding: the value's length is the JSON line's.
    const size_t base = scratch->ByteSizeLong() + 1 + 3;  // tag, 3-byte length (< 2 MiB)
    scratch->GetReflection()->MutableUnknownFields(scratch)->AddLengthDelimited(
        15, std::string(e.json.size() > base ? e.json.size() - base : 0, 'p'));
  }
  return scratch->SerializeAsString();
}

absl::Status RunKafka(const std::string& brokers) {
  const std::string format = absl::GetFlag(FLAGS_events_format);
  if (format != "binary" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--events_format must be binary or json, not '", format, "'"));
  }
  const bool binary = format == "binary";
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t total = absl::GetFlag(FLAGS_total);
  if (rate < 0) return absl::InvalidArgumentError("--rate must be >= 0");
  if (total < 0) return absl::InvalidArgumentError("--total must be >= 0");
  const std::string events_topic = absl::GetFlag(FLAGS_events_topic);
  const std::string models_topic = absl::GetFlag(FLAGS_models_topic);
  auto generator = MakeGenerator();
  if (!generator.ok()) return generator.status();
  auto producer_or = NewProducer(brokers);
  if (!producer_or.ok()) return producer_or.status();
  hubmetrics::KafkaProducer& producer = **producer_or;
  // Waits up to a minute for every message so far to be acknowledged (a
  // signal does not cut it short).
  auto flush = [&producer] { return producer.Flush(absl::Now() + absl::Seconds(60)); };

  // The catalog first, flushed, so that hubmetricsd attributes the first
  // events with the full catalog.
  hubmetrics::v1::ModelInfo model;
  int64_t models_sent = 0;
  while (auto m = (*generator)->NextModel()) {
    if (g_stop) break;
    if (absl::Status s =
            Produce(producer, models_topic, m->model_id, ToValue(m->json, binary, &model));
        !s.ok()) {
      if (g_stop) break;
      return s;
    }
    ++models_sent;
    producer.Poll();
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  std::cerr << absl::StrFormat("loadgen: %d catalog records sent to %s (%s)\n", models_sent,
                               models_topic, format);

  hubmetrics::v1::DownloadEvent event;
  const absl::Duration progress_every = absl::GetFlag(FLAGS_progress_every);
  const absl::Time begin = absl::Now();
  absl::Time last_report = begin;
  absl::Time last_refill = begin;
  absl::Time last_event_time = absl::InfinitePast();
  int64_t sent = 0, sent_at_last_report = 0;
  // Token bucket: at most a tenth of a second of burst.
  const double capacity = std::max(1.0, rate / 10);
  double tokens = 1;
  bool exhausted = false;
  while (!g_stop && (total == 0 || sent < total)) {
    if (rate > 0) {
      const absl::Time now = absl::Now();
      tokens = std::min(capacity, tokens + absl::ToDoubleSeconds(now - last_refill) * rate);
      last_refill = now;
      if (tokens < 1) {
        producer.Poll();
        const double wait_s = std::min(0.005, (1 - tokens) / rate);
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(wait_s * 1e6)));
        continue;
      }
      tokens -= 1;
    }
    auto e = (*generator)->NextEvent();
    if (!e) {
      exhausted = true;
      break;
    }
    if (e->kind == hubmetrics::loadgen::BadKind::kNone) last_event_time = e->time;
    // Keyed by user id: every (model, user, day) lands in one partition, which
    // the dedup role relies on (README, Scaling out). Bad records whose user
    // id is unspecified go unkeyed.
    const std::string& key =
        e->kind == hubmetrics::loadgen::BadKind::kNone ? e->user_id : std::string();
    if (absl::Status s = Produce(producer, events_topic, key, EventValue(*e, binary, &event));
        !s.ok()) {
      if (g_stop) break;
      return s;
    }
    ++sent;
    if ((sent & 255) == 0) producer.Poll();
    const absl::Time now = absl::Now();
    if (now - last_report >= progress_every) {
      std::cerr << absl::StrFormat(
          "loadgen: %d events sent (%.0f/s now, %.0f/s overall), %d acknowledged, %d failed, "
          "simulated time %s\n",
          sent, (sent - sent_at_last_report) / absl::ToDoubleSeconds(now - last_report),
          sent / std::max(1e-9, absl::ToDoubleSeconds(now - begin)),
          static_cast<int64_t>(producer.acknowledged()) - models_sent,
          static_cast<int64_t>(producer.failed()),
          last_event_time == absl::InfinitePast() ? "-"
                                                  : hubmetrics::FormatRfc3339(last_event_time));
      last_report = now;
      sent_at_last_report = sent;
    }
  }
  std::cerr << absl::StrFormat("loadgen: stopping (%s), flushing %d events...\n",
                               g_stop      ? "signal"
                               : exhausted ? "the generator's --events are exhausted"
                                           : "--total reached",
                               sent);
  const absl::Status flushed = flush();
  const double seconds = std::max(1e-9, absl::ToDoubleSeconds(absl::Now() - begin));
  std::cerr << absl::StrFormat(
      "loadgen: %d events sent to %s (%s) in %.1f s (%.0f/s), %d acknowledged, %d failed\n", sent,
      events_topic, format, seconds, sent / seconds,
      static_cast<int64_t>(producer.acknowledged()) - models_sent,
      static_cast<int64_t>(producer.failed()));
  std::cerr << hubmetrics::loadgen::FormatShape((*generator)->Shape());
  return flushed;
}

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string models_out = absl::GetFlag(FLAGS_models_out);
  const std::string brokers = absl::GetFlag(FLAGS_kafka_brokers);
  if (!brokers.empty()) {
    if (!out.empty() || !models_out.empty()) {
      return absl::InvalidArgumentError(
          "choose one output: --kafka_brokers, or --out and --models_out");
    }
    return RunKafka(brokers);
  }
  if (out.empty() || models_out.empty()) {
    return absl::InvalidArgumentError(
        "--out and --models_out are required (or --kafka_brokers for Kafka mode)");
  }
  return RunFiles(out, models_out);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Generates realistic Hub-like download events and a model catalog.\n"
      "  file mode:  loadgen --out=events.ndjson --models_out=models.ndjson [--events=N --seed=S "
      "...]\n"
      "  Kafka mode: loadgen --kafka_brokers=127.0.0.1:9092 [--events_topic=hub.downloads\n"
      "              --models_topic=hub.models --events_format=binary|json --rate=EVENTS_PER_S\n"
      "              --total=N --events=N --start=... --days=... --models=... --users=... "
      "--seed=S]");
  absl::ParseCommandLine(argc, argv);
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::cerr << "loadgen: " << status << "\n";
    return 1;
  }
  return 0;
}
