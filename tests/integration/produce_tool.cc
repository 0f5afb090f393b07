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
#include <string>

#include "google/protobuf/util/json_util.h"
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

struct Reports : RdKafka::DeliveryReportCb {
  void dr_cb(RdKafka::Message& m) override {
    if (m.err()) {
      ++failed;
      std::cerr << "delivery failed: " << m.errstr() << "\n";
    } else {
      ++ok;
    }
  }
  long ok = 0, failed = 0;
};

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
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  Reports reports;
  if (conf->set("bootstrap.servers", f.brokers, err) ||
      conf->set("enable.idempotence", "true", err) || conf->set("linger.ms", "20", err) ||
      conf->set("dr_cb", &reports, err)) {
    std::cerr << err << "\n";
    return 2;
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) {
    std::cerr << err << "\n";
    return 1;
  }
  if (f.delete_before >= 0) {
    if (f.partition < 0) {
      std::cerr << "--delete_before needs --partition\n";
      return 2;
    }
    return DeleteRecords(producer.get(), f);
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
    while (true) {
      RdKafka::ErrorCode e =
          producer->produce(f.topic, f.partition < 0 ? RdKafka::Topic::PARTITION_UA : f.partition,
                            RdKafka::Producer::RK_MSG_COPY, null_value ? nullptr : value.data(),
                            null_value ? 0 : value.size(), key.empty() ? nullptr : key.data(),
                            key.size(), 0, nullptr);
      if (e == RdKafka::ERR__QUEUE_FULL) {
        producer->poll(50);
        continue;
      }
      if (e) {
        std::cerr << "produce: " << RdKafka::err2str(e) << "\n";
        return 1;
      }
      break;
    }
    ++produced;
    if (emitted.is_open()) emitted << line << "\n";
    producer->poll(0);
  }
  while (producer->outq_len() > 0) producer->flush(1000);
  std::cerr << "produce_tool: " << produced << " produced to " << f.topic << ", " << reports.ok
            << " acknowledged, " << reports.failed << " failed, " << skipped
            << " skipped (no binary form)\n";
  return reports.failed == 0 && reports.ok == produced ? 0 : 1;
}
