#include "lib/kafka/kafka_config.h"

#include <librdkafka/rdkafkacpp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hubmetrics {
namespace {

std::string Trim(std::string_view s) {
  return std::string(absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size())));
}

// Properties whose values are secrets: never echoed in errors.
bool Secret(std::string_view key) {
  return key.find("password") != std::string_view::npos ||
         key.find("secret") != std::string_view::npos ||
         key.find("sasl.jaas") != std::string_view::npos;
}

}  // namespace

absl::StatusOr<std::vector<KafkaProperty>> ParseKafkaProperties(std::string_view text,
                                                                std::string_view origin) {
  std::vector<KafkaProperty> out;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_no;
    const std::string line = Trim(std::string_view(raw.data(), raw.size()));
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    const std::string where =
        absl::StrCat(absl::string_view(origin.data(), origin.size()), " line ", line_no);
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected key=value (a librdkafka property), got no '='"));
    }
    std::string key = Trim(std::string_view(line).substr(0, eq));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty property name before '='"));
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

absl::StatusOr<std::vector<KafkaProperty>> LoadKafkaProperties(
    const std::string& config_file, const std::vector<std::string>& key_values) {
  std::vector<KafkaProperty> out;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) {
      const int err = errno;
      std::string message =
          absl::StrCat("cannot read --kafka_config ", config_file, ": ", std::strerror(err));
      return err == EACCES ? absl::PermissionDeniedError(message) : absl::NotFoundError(message);
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    auto parsed = ParseKafkaProperties(buffer.str(), config_file);
    if (!parsed.ok()) return parsed.status();
    out = *std::move(parsed);
  }
  for (const std::string& kv : key_values) {
    if (Trim(kv).empty()) continue;
    auto parsed = ParseKafkaProperties(kv, "--kafka_property");
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kafka_property=", Secret(kv) ? "<hidden>" : kv,
                       ": expected key=value (a librdkafka property)"));
    }
    out.insert(out.end(), parsed->begin(), parsed->end());
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RdKafka::Conf>> NewKafkaConf(
    const KafkaSettings& settings, const std::vector<KafkaProperty>& defaults,
    const std::vector<KafkaProperty>& enforced) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto set = [&](const std::string& key, const std::string& value,
                 std::string_view origin_sv) -> absl::Status {
    const absl::string_view origin(origin_sv.data(), origin_sv.size());
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", key, "=",
                                                     Secret(key) ? "<hidden>" : value, " (", origin,
                                                     ") rejected by librdkafka: ", err));
    }
    return absl::OkStatus();
  };
  if (settings.brokers.empty()) {
    return absl::InvalidArgumentError("--kafka_brokers is empty");
  }
  if (auto s = set("bootstrap.servers", settings.brokers, "--kafka_brokers"); !s.ok()) return s;
  for (const auto& [k, v] : defaults) {
    if (auto s = set(k, v, "hubmetrics default"); !s.ok()) return s;
  }
  for (const auto& [k, v] : settings.properties) {
    for (const auto& [ek, ev] : enforced) {
      if (ek == k && ev != v) {
        return absl::InvalidArgumentError(
            absl::StrCat("Kafka property ", k, "=", v, " cannot be changed: hubmetrics needs ", k,
                         "=", ev, " for exactly-once ingest (offsets are stored with the state)"));
      }
    }
    if (auto s = set(k, v, "--kafka_config/--kafka_property"); !s.ok()) return s;
  }
  for (const auto& [k, v] : enforced) {
    if (auto s = set(k, v, "required by hubmetrics"); !s.ok()) return s;
  }
  return conf;
}

}  // namespace hubmetrics
