// Fuzz target: the catalog record decoders and model validation
// (DecodeJsonModel, DecodeBinaryModel, ValidateModel, IsValidModelId; lib/events).
// Every input is given to both decoders (a JSON line fails the binary one
// quickly and the other way round, so one corpus serves both). Besides
// crashes, undefined behaviour and leaks, it aborts when:
//  - a decoder's answer is not "parses, and passes the reference validation"
//    (a slow, obvious rewrite of ValidateModel's rules), or a failure is not
//    InvalidArgument;
//  - a model accepted in one format, written by protobuf in either format,
//    does not decode to the same message (a record hub.models carries in JSON
//    and in binary must mean the same).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/events/events.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace hubmetrics::fuzz {
namespace {

// ValidateModel's rules (events.h), independently.
bool ReferenceValid(const v1::ModelInfo& m) {
  if (!ReferenceIsValidModelId(m.model_id())) return false;
  if (!m.base_model().empty() && !ReferenceIsValidModelId(m.base_model())) return false;
  if (m.has_created_at()) {
    const int64_t s = m.created_at().seconds();
    const int32_t n = m.created_at().nanos();
    if (s < -62135596800 || s > 253402300799 || n < 0 || n >= 1000000000) return false;
  }
  return true;
}

// A decoded model, written in both formats by protobuf, decodes to itself.
void CheckRoundTrips(const v1::ModelInfo& m) {
  const absl::StatusOr<v1::ModelInfo> binary = DecodeBinaryModel(m.SerializeAsString());
  FUZZ_CHECK(binary.ok(), absl::StrCat(m.ShortDebugString(), " -> ", binary.status().ToString()));
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*binary, m),
             absl::StrCat(m.ShortDebugString(), " -> ", binary->ShortDebugString()));

  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto printed = google::protobuf::util::MessageToJsonString(m, &json, options);
  FUZZ_CHECK(printed.ok(), absl::StrCat(m.ShortDebugString(), ": ", printed.ToString()));
  const absl::StatusOr<v1::ModelInfo> from_json = DecodeJsonModel(json);
  FUZZ_CHECK(from_json.ok(), absl::StrCat(json, " -> ", from_json.status().ToString()));
  // JSON carries no unknown fields (binary records keep them, nested ones included).
  v1::ModelInfo known = m;
  known.DiscardUnknownFields();
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*from_json, known),
             absl::StrCat(json, " -> ", from_json->ShortDebugString()));
}

void CheckInput(std::string_view bytes) {
  google::protobuf::LogSilencer quiet;  // protobuf logs strings that are not UTF-8

  // Binary: the oracle is protobuf's parser and the reference rules.
  v1::ModelInfo parsed;
  const bool parses = parsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  if (parses) {
    FUZZ_CHECK(IsValidModelId(parsed.model_id()) == ReferenceIsValidModelId(parsed.model_id()),
               Shown(parsed.model_id()));
    FUZZ_CHECK(IsValidModelId(parsed.base_model()) == ReferenceIsValidModelId(parsed.base_model()),
               Shown(parsed.base_model()));
    FUZZ_CHECK(ValidateModel(parsed).ok() == ReferenceValid(parsed), parsed.ShortDebugString());
  }
  const absl::StatusOr<v1::ModelInfo> binary = DecodeBinaryModel(bytes);
  FUZZ_CHECK(binary.ok() == (parses && ReferenceValid(parsed)),
             absl::StrCat(Shown(bytes), " -> ", binary.status().ToString()));
  if (binary.ok()) {
    FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*binary, parsed),
               binary->ShortDebugString());
    CheckRoundTrips(*binary);
  } else {
    FUZZ_CHECK(binary.status().code() == absl::StatusCode::kInvalidArgument,
               binary.status().ToString());
  }

  // JSON: whatever it accepts passes the reference rules and round-trips.
  const absl::StatusOr<v1::ModelInfo> json = DecodeJsonModel(bytes);
  if (json.ok()) {
    FUZZ_CHECK(ReferenceValid(*json), json->ShortDebugString());
    CheckRoundTrips(*json);
  } else {
    FUZZ_CHECK(json.status().code() == absl::StatusCode::kInvalidArgument,
               json.status().ToString());
  }
}

}  // namespace
}  // namespace hubmetrics::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hubmetrics::fuzz::CheckInput(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
