// Decoding and validation of raw download events and catalog records, and the
// keyed hash that replaces user ids before anything is stored.
//
// Every record ends as either a ValidEvent or a Rejection with one reason from
// the closed list below; nothing is silently dropped. Reason names are part of
// the public contract (DLQ `reason` header, IngestStats, metrics labels).
//
// Thread safety: the free functions are pure; UserHasher is immutable after
// construction and safe to share; EventValidator is not thread-safe (it
// tracks the watermark) and belongs to the single ingest thread.
#ifndef HUBMETRICS_LIB_EVENTS_EVENTS_H_
#define HUBMETRICS_LIB_EVENTS_EVENTS_H_

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/events.pb.h"

namespace hubmetrics {

enum class RejectReason : uint8_t {
  kMalformed = 0,       // not parseable as JSON / protobuf, or a field of the wrong type
  kNotObject = 1,       // valid JSON, but not an object
  kMissingField = 2,    // model_id, user_id or time absent or empty
  kInvalidModelId = 3,  // not a Hub repo id
  kInvalidTime = 4,     // not an RFC 3339 time in years 0001..9999
  kFuture = 5,          // more than max_future_skew ahead of the wall clock
  kTooLate = 6,         // day more than lateness_days before the watermark's day
  kTooLarge = 7,        // record longer than the byte limit (checked before anything else)
};
inline constexpr int kNumRejectReasons = 8;

// "malformed", "not_object", "missing_field", "invalid_model_id", "invalid_time",
// "future", "too_late", "too_large".
std::string_view RejectReasonName(RejectReason r);
std::optional<RejectReason> RejectReasonFromName(std::string_view name);

// An event as decoded, before the checks that depend on time.
struct DecodedEvent {
  std::string model_id;
  std::string user_id;
  absl::Time time;
};

// The same without copies: the ids point into the decoded bytes (binary, and
// JSON lines of the common shape) or into the thread's JSON parser (other
// JSON). They are valid while those bytes are and, for JSON, until the next
// DecodeJsonEventView() on the same thread.
struct DecodedEventView {
  std::string_view model_id;
  std::string_view user_id;
  absl::Time time;
};

struct Rejection {
  RejectReason reason;
  std::string detail;  // for logs and DLQ; never contains the user id
};

// The default longest event record (an NDJSON line without its newline, or a
// Kafka value), in bytes. A real DownloadEvent is a few hundred bytes (a model
// id is at most 193); 64 KiB leaves room for fields a newer producer adds while
// bounding what one record costs to read, keep, decode and dead-letter, and
// stays well under Kafka's default 1 MB message size, so a rejected record
// still fits in the DLQ whole.
inline constexpr uint64_t kDefaultMaxEventBytes = 64 * 1024;

// too_large when `size` (the record's length in bytes) is over `max_bytes`;
// checked before decoding, so a record's size decides before its content does.
// The detail gives both numbers, never the content.
std::optional<Rejection> CheckEventSize(uint64_t size, uint64_t max_bytes);

// Decodes one NDJSON line (the protobuf JSON mapping of DownloadEvent; unknown
// fields ignored; surrounding whitespace allowed). Checks field presence,
// model id and time syntax. Returns the event or the Rejection.
//
// Exactly one of `event` and `rejection` is set. The first failing check, in
// this order, gives the reason: not JSON (trailing garbage included) ->
// malformed; not an object -> not_object; model_id, user_id or time present
// with a non-string value -> malformed; one of them absent, null or "" ->
// missing_field; model_id not IsValidModelId -> invalid_model_id; time not
// ParseRfc3339-able (or with characters outside the RFC 3339 alphabet) ->
// invalid_time. A repeated key counts with its last value. Details name the
// field and quote (escaped, truncated) the model id or time, never the user id.
struct DecodeResult {
  std::optional<DecodedEvent> event;
  std::optional<Rejection> rejection;
};
DecodeResult DecodeJsonEvent(std::string_view line);
// The same for a binary protobuf DownloadEvent: not parseable -> malformed;
// then the same presence and model id checks (time unset -> missing_field), and
// a Timestamp outside years 0001..9999 or with nanos outside [0, 1e9) ->
// invalid_time.
//
// "Parseable" is exactly what protobuf's own DownloadEvent::ParseFromArray
// accepts (the unit test checks it against protobuf on generated inputs):
// unknown fields (groups included, nested at most 100 deep) are skipped, a
// known field with another wire type counts as an unknown field, the last
// value of a repeated field wins, repeated `time` submessages merge, and
// model_id and user_id must be valid UTF-8 in every occurrence.
DecodeResult DecodeBinaryEvent(std::string_view bytes);

// True when `id` is a valid Hub repo id: "name" (legacy, no namespace) or
// "namespace/name"; each part 1..96 ASCII characters of [A-Za-z0-9_.-], starting
// and ending with [A-Za-z0-9_]; no "--" or ".." anywhere; not ending in ".git".
bool IsValidModelId(std::string_view id);

// Zero-copy versions of the two above, with the same results (see
// DecodedEventView for how long the ids stay valid). The model id check is
// `is_valid_model_id`, called once for every event that reaches it (so once
// for every event returned): a caller that keeps the ids it has already seen
// pass answers those from memory, and learns the id's entry in the same
// lookup. It must agree with IsValidModelId.
struct DecodeViewResult {
  std::optional<DecodedEventView> event;
  std::optional<Rejection> rejection;
};
DecodeViewResult DecodeJsonEventView(
    std::string_view line,
    absl::FunctionRef<bool(std::string_view)> is_valid_model_id = IsValidModelId);
DecodeViewResult DecodeBinaryEventView(
    std::string_view bytes,
    absl::FunctionRef<bool(std::string_view)> is_valid_model_id = IsValidModelId);

// Bounds of a catalog record (ModelInfo). model_id and base_model are bounded
// by the Hub repo-id rules (at most 96 + 1 + 96 bytes); developer, country,
// org_type, pipeline_tag, license and base_relation by kMaxCatalogFieldBytes each (real values
// are tens of bytes; the bound keeps hostile records from growing the catalog,
// its RocksDB copy and the metric labels built from developer and country); the
// whole record (JSON line or binary value, unknown fields included) by
// kMaxCatalogRecordBytes, checked before it is parsed.
inline constexpr size_t kMaxCatalogFieldBytes = 256;
inline constexpr size_t kMaxCatalogRecordBytes = 16 * 1024;

// Decodes one catalog record (ModelInfo) from JSON or binary. The record must
// be at most kMaxCatalogRecordBytes; model_id must be valid; base_model, when
// set, must be valid too; the other string fields at most kMaxCatalogFieldBytes.
// InvalidArgument says what is wrong (the model id and the field, when known).
absl::StatusOr<v1::ModelInfo> DecodeJsonModel(std::string_view line);
absl::StatusOr<v1::ModelInfo> DecodeBinaryModel(std::string_view bytes);
absl::Status ValidateModel(const v1::ModelInfo& m);

// The keyed PRF of user ids: SipHash-2-4 with a 128-bit secret key. Two
// different users of the same model on the same day collide with probability
// about 2^-64 per pair; that is the only way a unique download can be missed.
using UserHash = uint64_t;
class UserHasher {
 public:
  explicit UserHasher(const std::array<uint8_t, 16>& key) : key_(key) {}
  UserHash Hash(std::string_view user_id) const;
  // Identifies the key without revealing it: stored with the state, so that
  // state is never extended under another key (every user would count again).
  uint64_t KeyFingerprint() const;

  // Loads the key from `path`: 32 hex digits (a trailing newline allowed).
  // NotFound / PermissionDenied / ... when the file cannot be read;
  // FailedPrecondition when group or others may access it (it must be 0600
  // or stricter); InvalidArgument naming the expected format (never the
  // contents) otherwise.
  static absl::StatusOr<UserHasher> FromKeyFile(const std::string& path);
  // Loads `path` if it exists; else creates it with a random key, mode 0600.
  // Creation is atomic (a reader sees no key file or a whole one), and when
  // several processes race, all end with the key of the first one published.
  // An existing but invalid file is an error, never replaced: hashes already
  // stored under it would silently stop matching.
  static absl::StatusOr<UserHasher> LoadOrCreateKeyFile(const std::string& path);

 private:
  std::array<uint8_t, 16> key_;
};

// SipHash-2-4 of `data` under `key` (the reference algorithm; exposed for tests).
uint64_t SipHash24(const std::array<uint8_t, 16>& key, std::string_view data);

// How event records are encoded: NDJSON lines or binary DownloadEvent values.
enum class EventFormat { kJson, kBinary };

struct ValidatorOptions {
  // Events whose day is more than this many days before the watermark's day are too_late.
  int lateness_days = 3;
  // Events more than this far ahead of the wall clock are future.
  absl::Duration max_future_skew = absl::Hours(1);
};

// The time checks, which depend on watermarks. Accept() either rejects the
// event or accepts it and advances the watermarks. Duplicates are accepted
// events: they advance them too.
//
// Lateness is judged per source partition (`partition`; -1 for a file): an
// event is too_late when its day is more than lateness_days before the day of
// the largest event time accepted from ITS partition. Partitions are read at
// different speeds — a consumer catching up on a backlog may read one of them
// days ahead of another — so one global watermark would reject good events of
// the slower partitions; per partition, what is too_late depends only on the
// order within each partition, as in Kafka Streams' stream time. Dedup state
// may be dropped for days before OldestAcceptedDay() (the smallest per-partition
// horizon, never decreasing); an event of such a day is too_late from any
// partition, since it could no longer be deduplicated.
class EventValidator {
 public:
  // `watermark`: the largest accepted event time so far; `partitions`: the
  // largest per partition (both from the stored state).
  // `floor`: the OldestAcceptedDay() reached before (dedup days before it
  // are gone).
  EventValidator(ValidatorOptions options, const Clock* clock, std::optional<absl::Time> watermark,
                 absl::flat_hash_map<int32_t, absl::Time> partitions = {},
                 Day floor = std::numeric_limits<Day>::min());

  std::optional<Rejection> Accept(absl::Time time, int32_t partition = -1) {
    return Accept(time, partition, clock_->Now());
  }
  // The same, with the wall clock read once by the caller for a batch of
  // events (it is the clock's reading when they were read, not later; a
  // clock read per event was a few percent of the ingest thread).
  std::optional<Rejection> Accept(absl::Time time, int32_t partition, absl::Time now);
  std::optional<Rejection> Accept(const DecodedEvent& e, int32_t partition = -1) {
    return Accept(e.time, partition);
  }
  // Partitions the source will deliver: until each of them has delivered an
  // event, OldestAcceptedDay() stays where it is (a partition read later
  // than the others, as a consumer catching up does, must not find its days
  // already dropped).
  void ExpectPartitions(std::span<const int32_t> partitions);

  // The largest accepted event time of any partition (what queries report).
  std::optional<absl::Time> watermark() const { return watermark_; }
  // absl::InfinitePast() for an expected partition that has delivered nothing.
  const absl::flat_hash_map<int32_t, absl::Time>& partition_watermarks() const {
    return partitions_;
  }
  // Events with day < this are too_late from every partition; INT32_MIN
  // before the first event.
  Day OldestAcceptedDay() const { return floor_; }
  const ValidatorOptions& options() const { return options_; }

 private:
  void RaiseFloor();

  ValidatorOptions options_;
  const Clock* clock_;
  std::optional<absl::Time> watermark_;
  // now + max_future_skew for the last `now` passed to Accept (callers pass
  // one `now` for a whole batch).
  absl::Time limit_for_ = absl::InfinitePast();
  absl::Time future_limit_ = absl::InfinitePast();
  absl::flat_hash_map<int32_t, absl::Time> partitions_;
  Day floor_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_EVENTS_EVENTS_H_
