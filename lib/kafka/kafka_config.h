// Kafka client settings of hubmetricsd: the brokers plus pass-through
// librdkafka properties (security protocol, SASL, SSL files, timeouts) from a
// config file and from repeated --kafka_property flags, so the daemon can talk
// to a real cluster without code changes.
//
// Thread safety: plain values; the functions are pure apart from reading the
// config file.
#ifndef HUBMETRICS_LIB_KAFKA_KAFKA_CONFIG_H_
#define HUBMETRICS_LIB_KAFKA_KAFKA_CONFIG_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace RdKafka {
class Conf;
}

namespace hubmetrics {

using KafkaProperty = std::pair<std::string, std::string>;

struct KafkaSettings {
  // bootstrap.servers, e.g. "127.0.0.1:9092" or "b1:9093,b2:9093".
  std::string brokers;
  // Applied in order after hubmetrics' own defaults, so they win (except the
  // few settings exactly-once depends on, which NewKafkaConf enforces).
  std::vector<KafkaProperty> properties;
};

// Parses "key=value" lines: '#' starts a comment line, blank lines are
// skipped, whitespace around key and value is trimmed. `origin` names the
// source in errors ("FILE line N" or "--kafka_property"). InvalidArgument for
// a line without '=' or with an empty key.
absl::StatusOr<std::vector<KafkaProperty>> ParseKafkaProperties(std::string_view text,
                                                                std::string_view origin);

// The properties of `config_file` (may be empty: none) followed by
// `key_values` ("key=value" each). NotFound / PermissionDenied when the file
// cannot be read.
absl::StatusOr<std::vector<KafkaProperty>> LoadKafkaProperties(
    const std::string& config_file, const std::vector<std::string>& key_values);

// A librdkafka global conf: bootstrap.servers, then `defaults`, then the
// user's properties, then `enforced` (which the user may not override: a
// user value that differs is an InvalidArgument error naming the key). Each
// rejected key or value is an InvalidArgument naming the key and saying why.
absl::StatusOr<std::unique_ptr<RdKafka::Conf>> NewKafkaConf(
    const KafkaSettings& settings, const std::vector<KafkaProperty>& defaults,
    const std::vector<KafkaProperty>& enforced);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_KAFKA_KAFKA_CONFIG_H_
