// Fuzz target: the binary DownloadEvent decoder (DecodeBinaryEventView and
// DecodeBinaryEvent, lib/events), a CodedInputStream reader with a fast path
// for the canonical layout. Its contract is to accept exactly what protobuf's
// own DownloadEvent::ParseFromArray accepts and then apply the checks of
// events.h; this target is the differential test of
// lib/events/decode_binary_diff_test.cc with libFuzzer choosing the inputs.
// For every input it aborts when:
//  - the decoder and the oracle (ParseFromArray + the checks) disagree on the
//    outcome, the reason, the fields, or the detail of a malformed or
//    invalid_time rejection;
//  - the zero-copy and the owning decoder disagree;
//  - the model id callback runs other than once for a record that passes the
//    syntax and presence checks (never for one that does not);
//  - an accepted event, serialized again by protobuf, decodes differently.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "lib/events/events.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace hubmetrics::fuzz {
namespace {

// The decoder as it was before the fast path: protobuf parses, then the checks
// of DecodeBinaryEvent (events.h). The same oracle as the unit test's.
DecodeResult OracleDecode(std::string_view bytes, v1::DownloadEvent* event) {
  google::protobuf::LogSilencer quiet;  // protobuf logs every string field that is not UTF-8
  if (!event->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return {std::nullopt,
            Rejection{RejectReason::kMalformed,
                      absl::StrCat("not a valid binary DownloadEvent (", bytes.size(), " bytes)")}};
  }
  if (event->model_id().empty() || event->user_id().empty() || !event->has_time()) {
    return {std::nullopt, Rejection{RejectReason::kMissingField, ""}};
  }
  if (!IsValidModelId(event->model_id())) {
    return {std::nullopt, Rejection{RejectReason::kInvalidModelId, ""}};
  }
  const int64_t seconds = event->time().seconds();
  const int32_t nanos = event->time().nanos();
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 || nanos >= 1000000000) {
    return {std::nullopt,
            Rejection{RejectReason::kInvalidTime,
                      absl::StrCat("invalid time {seconds: ", seconds, ", nanos: ", nanos,
                                   "}: expected years 0001..9999 and nanos in [0, 1e9)")}};
  }
  return {DecodedEvent{event->model_id(), event->user_id(),
                       absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos)},
          std::nullopt};
}

std::string Describe(const DecodeResult& r) {
  if (r.event) {
    return absl::StrCat("event{", Shown(r.event->model_id), ", ", Shown(r.event->user_id), ", ",
                        absl::FormatTime(r.event->time), "}");
  }
  return absl::StrCat(AV(RejectReasonName(r.rejection->reason)), ": ", r.rejection->detail);
}

// Same outcome; details compared only where `want` has one (the oracle leaves
// the wording of missing_field and invalid_model_id to the decoder).
bool Agree(const DecodeResult& got, const DecodeResult& want) {
  if (got.event.has_value() != want.event.has_value()) return false;
  if (want.event) {
    return got.event->model_id == want.event->model_id &&
           got.event->user_id == want.event->user_id && got.event->time == want.event->time;
  }
  return got.rejection->reason == want.rejection->reason &&
         (want.rejection->detail.empty() || got.rejection->detail == want.rejection->detail);
}

void CheckBytes(std::string_view bytes) {
  int calls = 0;
  DecodeViewResult view = DecodeBinaryEventView(bytes, [&](std::string_view id) {
    ++calls;
    return IsValidModelId(id);
  });
  FUZZ_CHECK(view.event.has_value() != view.rejection.has_value(), "exactly one of the two");
  DecodeResult copied;
  if (view.event) {
    copied.event = DecodedEvent{std::string(view.event->model_id), std::string(view.event->user_id),
                                view.event->time};
  } else {
    copied.rejection = view.rejection;
  }
  const DecodeResult owning = DecodeBinaryEvent(bytes);
  FUZZ_CHECK(Agree(owning, copied) && Agree(copied, owning),
             absl::StrCat("view: ", Describe(copied), " owning: ", Describe(owning)));

  v1::DownloadEvent parsed;
  const DecodeResult oracle = OracleDecode(bytes, &parsed);
  FUZZ_CHECK(Agree(owning, oracle), absl::StrCat(Shown(bytes), ": decoder ", Describe(owning),
                                                 ", ParseFromArray ", Describe(oracle)));

  // The model id check comes after syntax and presence, before the time check.
  const bool reached_check =
      owning.event || (owning.rejection->reason != RejectReason::kMalformed &&
                       owning.rejection->reason != RejectReason::kNotObject &&
                       owning.rejection->reason != RejectReason::kMissingField);
  FUZZ_CHECK(calls == (reached_check ? 1 : 0), absl::StrCat("callback calls: ", calls));
  if (!owning.event) {
    FUZZ_CHECK(!owning.rejection->detail.empty(), "empty detail");
    return;
  }
  // protobuf's serialization of what it parsed (the canonical layout, which the
  // decoder's fast path reads) decodes to the same event.
  const std::string canonical = parsed.SerializeAsString();
  const DecodeResult again = DecodeBinaryEvent(canonical);
  FUZZ_CHECK(Agree(again, owning),
             absl::StrCat(Shown(canonical), " -> ", Describe(again), ", was ", Describe(owning)));
}

}  // namespace
}  // namespace hubmetrics::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hubmetrics::fuzz::CheckBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
