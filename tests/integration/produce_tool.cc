// Test helper: produces NDJSON lines (as loadgen writes them) to a Kafka topic,
// as JSON values or converted to binary protobuf (DownloadEvent / ModelInfo).
//
//   produce_tool --brokers=H:P --topic=T --kind=events|models --format=json|binary
//                [--partition=N] [--emitted=FILE] < lines
//   produce_tool --brokers=H:P --topic=T --partition=N --delete_before=OFFSET
//
// The second form produces nothing: it deletes the partition's records before
// OFFSET (Kafka's DeleteRecords, what retention does to old segments), so a
// test can make a topic lose data at an offset it chooses.
//
// models: the key is the record's model_id; a line "TOMBSTONE <model_id>" is a
// null value with that key. events: no key (librdkafka spreads them over the
// partitions) unless --partition. In binary mode a line that has no protobuf
// equivalent (not JSON, wrong types, bad timestamp) cannot be produced: it is
// skipped. --emitted gets exactly what was produced, for the reference: the
// lines, or in binary mode the canonical JSON of each binary value.
// Exits non-zero unless every produced message was acknowledged.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "google/protobuf/util/json_util.h"
#include "lib/kafka/kafka_producer.h"
#include "proto/hubmetrics/v1/events.pb.h"

namespace {

struct Flags {
  std::string brokers, topic, kind = "events", format = "json", emitted;
  int partition = -1;
  long long delete_before = -1;
};

bool Parse(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) return false;
    std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    if (k == "brokers")
      f->brokers = v;
    else if (k == "topic")
      f->topic = v;
    else if (k == "kind")
      f->kind = v;
    else if (k == "format")
      f->format = v;
    else if (k == "emitted")
      f->emitted = v;
    else if (k == "partition")
      f->partition = std::stoi(v);
    else if (k == "delete_before")
      f->delete_before = std::stoll(v);
    else
      return false;
  }
  return !f->brokers.empty() && !f->topic.empty() && (f->kind == "events" || f->kind == "models") &&
         (f->format == "json" || f->format == "binary");
}

// Kafka's DeleteRecords: the partition then starts at `before`.
int DeleteRecords(RdKafka::Producer* producer, const Flags& f) {
  rd_kafka_t* rk = producer->c_ptr();
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offsets, f.topic.c_str(), f.partition)->offset =
      f.delete_before;
  rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DeleteRecords(rk, &del, 1, nullptr, queue);
  rd_kafka_DeleteRecords_destroy(del);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 60000);
  int rc = 1;
  if (ev == nullptr) {
    std::cerr << "delete records: no answer within 60 s\n";
  } else if (rd_kafka_event_error(ev)) {
    std::cerr << "delete records: " << rd_kafka_event_error_string(ev) << "\n";
  } else {
    const rd_kafka_topic_partition_list_t* result =
        rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
    if (result->cnt == 1 && result->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "produce_tool: " << f.topic << " partition " << f.partition
                << " now starts at offset " << result->elems[0].offset << "\n";
      rc = 0;
    } else {
      std::cerr << "delete records: "
                << (result->cnt == 1 ? rd_kafka_err2str(result->elems[0].err) : "no result")
                << "\n";
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!Parse(argc, argv, &f)) {
    std::cerr << "usage: produce_tool --brokers=H:P --topic=T --kind=events|models "
                 "--format=json|binary [--partition=N] [--emitted=FILE] < lines\n";
    return 2;
  }
  hubmetrics::KafkaSettings settings;
  settings.brokers = f.brokers;
  hubmetrics::KafkaProducerOptions options;
  options.client_id = "hubmetrics-produce-tool";
  options.idempotence = true;
  options.linger = absl::Milliseconds(20);
  // While the local queue is full: however long (librdkafka's delivery
  // timeout frees it).
  options.max_queue_wait = absl::InfiniteDuration();
  options.close_timeout = absl::ZeroDuration();  // flushed before exit
  options.on_delivery_failure = [](const absl::Status& s) {
    std::cerr << "delivery failed: " << s.message() << "\n";
  };
  auto producer = hubmetrics::KafkaProducer::Create(settings, std::move(options));
  if (!producer.ok()) {
    std::cerr << producer.status().message() << "\n";
    return absl::IsInvalidArgument(producer.status()) ? 2 : 1;
  }
  if (f.delete_before >= 0) {
    if (f.partition < 0) {
      std::cerr << "--delete_before needs --partition\n";
      return 2;
    }
    return DeleteRecords((*producer)->rdkafka(), f);
  }
  std::ofstream emitted;
  if (!f.emitted.empty()) emitted.open(f.emitted, std::ios::binary);
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  std::string line;
  long skipped = 0, produced = 0;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::string key, value;
    bool null_value = false;
    if (f.kind == "models" && line.rfind("TOMBSTONE ", 0) == 0) {
      key = line.substr(10);
      null_value = true;
    } else {
      value = line;
      google::protobuf::Message* msg = nullptr;
      hubmetrics::v1::DownloadEvent event;
      hubmetrics::v1::ModelInfo model;
      msg = f.kind == "events" ? static_cast<google::protobuf::Message*>(&event) : &model;
      const bool parsed = google::protobuf::util::JsonStringToMessage(line, msg, opts).ok();
      if (f.kind == "models" && parsed) key = model.model_id();
      // Events are keyed by user id, as the dedup role needs (every (model,
      // user, day) in one partition).
      if (f.kind == "events" && parsed) key = event.user_id();
      if (f.format == "binary") {
        if (!parsed) {
          ++skipped;
          continue;
        }
        value = msg->SerializeAsString();
        // The reference must see what the binary value says, which can
        // differ from the line (protobuf's JSON parser accepts times the
        // JSON contract rejects): emit the canonical JSON of the message.
        google::protobuf::util::JsonPrintOptions print;
        print.preserve_proto_field_names = true;
        std::string canonical;
        if (!google::protobuf::util::MessageToJsonString(*msg, &canonical, print).ok()) {
          ++skipped;
          continue;
        }
        line = canonical;
      }
    }
    if (absl::Status s = (*producer)->Produce(
            f.topic, f.partition < 0 ? hubmetrics::KafkaProducer::kAnyPartition : f.partition,
            key.empty() ? std::nullopt : std::optional<std::string_view>(key),
            null_value ? std::nullopt : std::optional<std::string_view>(value));
        !s.ok()) {
      std::cerr << "produce: " << s.message() << "\n";
      return 1;
    }
    ++produced;
    if (emitted.is_open()) emitted << line << "\n";
    (*producer)->Poll();
  }
  // Until every message has its delivery report, however long that takes.
  absl::Status flushed;
  do {
    flushed = (*producer)->Flush(absl::Now() + absl::Seconds(1));
  } while (absl::IsDeadlineExceeded(flushed));
  const uint64_t acknowledged = (*producer)->acknowledged();
  std::cerr << "produce_tool: " << produced << " produced to " << f.topic << ", " << acknowledged
            << " acknowledged, " << (*producer)->failed() << " failed, " << skipped
            << " skipped (no binary form)\n";
  return flushed.ok() && acknowledged == static_cast<uint64_t>(produced) ? 0 : 1;
}
