// Fuzz target: the NDJSON DownloadEvent decoder (DecodeJsonEventView and
// DecodeJsonEvent, lib/events). Besides crashes, undefined behaviour and leaks,
// it checks what events.h promises for every input:
//  - the zero-copy and the owning decoder give the same result;
//  - the model id callback runs exactly once for every record that passes the
//    syntax and presence checks (accepted, invalid_model_id, invalid_time),
//    never otherwise, and the decision is IsValidModelId's (checked against a
//    slow reference);
//  - an accepted event has a valid model id, a user id and a time in years
//    0001..9999, and written back as canonical JSON, or as a binary
//    DownloadEvent, decodes to the same event;
//  - a rejection has a detail of bounded size (it goes to logs and DLQ headers).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "lib/events/events.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace hubmetrics::fuzz {
namespace {

constexpr size_t kMaxDetailBytes = 1024;

bool SameResult(const DecodeResult& a, const DecodeResult& b) {
  if (a.event.has_value() != b.event.has_value()) return false;
  if (a.event) {
    return a.event->model_id == b.event->model_id && a.event->user_id == b.event->user_id &&
           a.event->time == b.event->time;
  }
  return a.rejection->reason == b.rejection->reason && a.rejection->detail == b.rejection->detail;
}

std::string Describe(const DecodeResult& r) {
  if (r.event) {
    return absl::StrCat("event{", Shown(r.event->model_id), ", ", Shown(r.event->user_id), ", ",
                        absl::FormatTime(r.event->time), "}");
  }
  return absl::StrCat(AV(RejectReasonName(r.rejection->reason)), ": ", r.rejection->detail);
}

void CheckLine(std::string_view line) {
  int calls = 0;
  bool callback_answer = false;
  DecodeViewResult view = DecodeJsonEventView(line, [&](std::string_view id) {
    ++calls;
    FUZZ_CHECK(IsValidModelId(id) == ReferenceIsValidModelId(id), Shown(id));
    callback_answer = IsValidModelId(id);
    return callback_answer;
  });
  // Copied before the next decode: the view points into the thread's parser.
  DecodeResult copied;
  if (view.event) {
    copied.event = DecodedEvent{std::string(view.event->model_id), std::string(view.event->user_id),
                                view.event->time};
  } else {
    copied.rejection = view.rejection;
  }
  FUZZ_CHECK(view.event.has_value() != view.rejection.has_value(), "exactly one of the two");

  const DecodeResult owning = DecodeJsonEvent(line);
  FUZZ_CHECK(SameResult(copied, owning),
             absl::StrCat("view: ", Describe(copied), " owning: ", Describe(owning)));

  // The model id check comes after syntax and presence, before the time check.
  const bool reached_check =
      copied.event || (copied.rejection->reason != RejectReason::kMalformed &&
                       copied.rejection->reason != RejectReason::kNotObject &&
                       copied.rejection->reason != RejectReason::kMissingField);
  FUZZ_CHECK(calls == (reached_check ? 1 : 0), absl::StrCat("callback calls: ", calls));
  if (!copied.event) {
    FUZZ_CHECK(!copied.rejection->detail.empty(), "empty detail");
    FUZZ_CHECK(copied.rejection->detail.size() <= kMaxDetailBytes, copied.rejection->detail);
    if (copied.rejection->reason == RejectReason::kInvalidModelId) {
      FUZZ_CHECK(!callback_answer, "rejected a model id the callback accepted");
    }
    return;
  }

  const DecodedEvent& e = *copied.event;
  static const absl::Time kMin =
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kEnd =
      absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  FUZZ_CHECK(IsValidModelId(e.model_id), Describe(owning));
  FUZZ_CHECK(!e.user_id.empty(), Describe(owning));
  FUZZ_CHECK(e.time >= kMin && e.time < kEnd, Describe(owning));

  // Canonical JSON of the same event decodes to it.
  const std::string canonical =
      absl::StrCat("{\"model_id\":", JsonQuote(e.model_id), ",\"user_id\":", JsonQuote(e.user_id),
                   ",\"time\":", JsonQuote(FormatRfc3339(e.time)), "}");
  const DecodeResult again = DecodeJsonEvent(canonical);
  FUZZ_CHECK(SameResult(owning, again),
             absl::StrCat(Shown(canonical), " -> ", Describe(again), ", was ", Describe(owning)));

  // So does the binary DownloadEvent of it (JSON strings are valid UTF-8).
  v1::DownloadEvent proto;
  proto.set_model_id(e.model_id);
  proto.set_user_id(e.user_id);
  const int64_t seconds = absl::ToUnixSeconds(e.time);
  proto.mutable_time()->set_seconds(seconds);
  proto.mutable_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(e.time - absl::FromUnixSeconds(seconds))));
  const DecodeResult binary = DecodeBinaryEvent(proto.SerializeAsString());
  FUZZ_CHECK(SameResult(owning, binary),
             absl::StrCat("binary: ", Describe(binary), ", JSON: ", Describe(owning)));
}

}  // namespace
}  // namespace hubmetrics::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hubmetrics::fuzz::CheckLine(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
