// The traffic model of loadgen: a synthetic model catalog and a stream of raw
// download events shaped like the Hugging Face Hub (docs/DEFINITIONS.md, "The paper"), plus
// the awkward records a real feed carries (bad records of every rejection
// reason, catalog edge cases, re-published catalog records).
//
// The catalog's licenses, parameter counts, pipeline tags and derivations
// (base_model, base_relation) depend on a model's popularity the way they do
// on the Hub, so that the shares weighted by downloads (what hubmetrics
// reports) look like the Hub's: small NLP encoders dominate the downloads,
// LLMs and derivatives are more of the long tail. Some records lack a field
// or carry a pipeline tag outside hubmetrics' modality table.
//
// Generation is separate from output: the generator yields records one by one
// as JSON lines (the protobuf JSON mapping of ModelInfo / DownloadEvent), and
// the caller writes them to files, Kafka, or wherever.
//
// Determinism: the same TrafficOptions give the same records, byte for byte,
// on every platform: randomness comes from std::mt19937_64 through our own
// distributions (std:: distributions differ between standard libraries). The
// catalog and the events use separate random streams, so interleaving
// NextModel() and NextEvent() calls does not change either sequence.
//
// Thread safety: a TrafficGenerator is not thread-safe; use it from one thread.
#ifndef HUBMETRICS_SERVICES_LOADGEN_TRAFFIC_H_
#define HUBMETRICS_SERVICES_LOADGEN_TRAFFIC_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hubmetrics::loadgen {

struct TrafficOptions {
  uint64_t seed = 1;
  // Event records to produce, bad ones included.
  int64_t events = 200000;
  // First simulated day (events start at midnight UTC of this instant's day).
  absl::Time start = absl::FromCivil(absl::CivilSecond(2025, 1, 6), absl::UTCTimeZone());
  // Simulated days the events span.
  int days = 70;
  // Catalog size (models with a catalog record; a few more models get
  // downloads without one).
  int models = 3000;
  int users = 60000;
  // Fraction of the event records that are bad (spread over every rejection reason).
  double bad_fraction = 0.01;
};

// Why a bad event record is bad; the names are docs/DEFINITIONS.md's rejection reasons.
enum class BadKind : uint8_t {
  kNone = 0,  // a good event (accepted by hubmetricsd)
  kMalformed,
  kNotObject,
  kMissingField,
  kInvalidModelId,
  kInvalidTime,
  kFuture,
  kTooLate,
  // A well-formed event padded with an unknown field to just over hubmetricsd's
  // default --max_event_bytes (64 KiB). An eighth of the bad records, at most
  // kMaxTooLargeRecords per run (about 4 MB), chosen from a random stream of
  // their own: the other records are exactly what they were before this kind.
  kTooLarge,
};
inline constexpr int kNumBadKinds = 9;
inline constexpr int64_t kMaxTooLargeRecords = 64;
// Bytes of a too_large record: kTooLargeMinBytes plus up to 1023.
inline constexpr int64_t kTooLargeMinBytes = 64 * 1024 + 1;
std::string_view BadKindName(BadKind kind);  // "ok", "malformed", ..., "too_late", "too_large"

struct ModelRecord {
  std::string model_id;
  std::string json;  // one ModelInfo JSON object, no newline
};

struct EventRecord {
  // What hubmetricsd must do with it. For good and too_large events,
  // model_id/user_id/time are what the record says; for other bad ones they
  // are unspecified.
  BadKind kind = BadKind::kNone;
  std::string model_id;
  std::string user_id;
  absl::Time time;
  std::string json;  // one line, no newline (not necessarily valid JSON)
};

// The shape of the traffic yielded so far, computed from the good events (as
// hubmetricsd would count them) and the final catalog.
struct TrafficShape {
  int64_t events = 0;  // records yielded, good and bad
  int64_t good_events = 0;
  int64_t unique_downloads = 0;
  int64_t duplicates = 0;
  std::array<int64_t, kNumBadKinds> bad_by_kind{};
  int64_t models_with_downloads = 0;
  int64_t catalog_models = 0;
  int64_t catalog_records = 0;
  // Share of unique downloads of the 200 most downloaded models and of the 50
  // most downloaded developers (direct attribution, final catalog).
  double top200_model_share = 0;
  double top50_developer_share = 0;
  // Among catalog models and models with downloads: fraction with fewer than
  // 200 unique downloads, and the median model's unique downloads.
  double fraction_under_200 = 0;
  int64_t median_model_downloads = 0;
  // Among unique downloads of models with a known parameter count: shares of
  // those with fewer than 200M, 500M and 1B parameters.
  double under_200m_share = 0;
  double under_500m_share = 0;
  double under_1b_share = 0;
  // Shares of the unique downloads by the values of hubmetrics' levels size,
  // modality, task, license and derivation (what the service reports for
  // them: direct attribution, the final catalog, models without a catalog
  // record under "unknown"); size in bucket order, the others largest first.
  using Shares = std::vector<std::pair<std::string, double>>;
  Shares by_size;
  Shares by_modality;
  Shares by_task;
  Shares by_license;
  Shares by_derivation;
  double duplicate_fraction() const {
    return good_events == 0 ? 0.0 : static_cast<double>(duplicates) / good_events;
  }
};

class TrafficGenerator {
 public:
  // InvalidArgument when an option is out of range (events < 0, days < 1,
  // models < 100, users < 100, bad_fraction outside [0, 0.5]).
  static absl::StatusOr<std::unique_ptr<TrafficGenerator>> Create(const TrafficOptions& options);
  ~TrafficGenerator();
  TrafficGenerator(const TrafficGenerator&) = delete;
  TrafficGenerator& operator=(const TrafficGenerator&) = delete;

  // The catalog records in publication order (later records for a model id
  // replace earlier ones); nullopt once all have been yielded.
  std::optional<ModelRecord> NextModel();
  // The event records in (roughly) time order; nullopt after options.events.
  std::optional<EventRecord> NextEvent();

  // The shape of what NextEvent() has yielded so far (and of the whole catalog).
  TrafficShape Shape() const;

  struct Impl;

 private:
  explicit TrafficGenerator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A human-readable report of `shape` (several lines), for stderr.
std::string FormatShape(const TrafficShape& shape);

}  // namespace hubmetrics::loadgen

#endif  // HUBMETRICS_SERVICES_LOADGEN_TRAFFIC_H_
