// What the gRPC API needs from the engine: answers to validated-or-not
// requests, as protobuf messages, and a change signal for streaming.
//
// The backend validates requests itself (views, windows, k) and returns
// InvalidArgument with a message that lists what is allowed; the API edge maps
// absl status codes one to one to gRPC codes.
//
// Thread safety: every method may be called concurrently from any thread.
#ifndef HUBMETRICS_LIB_API_METRICS_BACKEND_H_
#define HUBMETRICS_LIB_API_METRICS_BACKEND_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/hubmetrics/v1/metrics.pb.h"

namespace hubmetrics {

// GetConcentrations' answer: one per request item, in order, each what
// GetConcentration of the item alone would give (an answer or its error).
using ConcentrationAnswers = std::vector<absl::StatusOr<v1::Concentration>>;

class MetricsBackend {
 public:
  virtual ~MetricsBackend() = default;

  // The queries (all but the *Now methods and the version methods) may wait
  // for the batch being applied, for as long as applying it takes.
  virtual absl::StatusOr<v1::Concentration> GetConcentration(
      const v1::ConcentrationRequest& request) const = 0;
  // What GetConcentration(request) answers, when that can be given without
  // waiting for ingest or for a computation (an invalid request, a value
  // published by the last batch, or one already computed while the engine's
  // state is free to read at once); nullopt when only GetConcentration can
  // answer. Never blocks.
  virtual std::optional<absl::StatusOr<v1::Concentration>> GetConcentrationNow(
      const v1::ConcentrationRequest& request) const = 0;
  // Every item of `request` answered as GetConcentration answers it, in
  // order; an item's error is that item's, the others are answered. Items
  // GetConcentrationNow would answer are answered so (never waiting); the
  // others from one state of the engine. Fails as a whole only when the
  // request has more items than the API allows (1024, metrics.proto;
  // InvalidArgument).
  virtual absl::StatusOr<ConcentrationAnswers> GetConcentrations(
      const v1::ConcentrationsRequest& request) const = 0;
  // What GetConcentrations(request) answers, when every item can be answered
  // without waiting for ingest (as GetConcentrationNow), or the request fails
  // as a whole; nullopt when at least one item needs GetConcentrations. Never
  // blocks.
  virtual std::optional<absl::StatusOr<ConcentrationAnswers>> GetConcentrationsNow(
      const v1::ConcentrationsRequest& request) const = 0;
  virtual absl::StatusOr<v1::ConcentrationSeries> GetConcentrationSeries(
      const v1::ConcentrationSeriesRequest& request) const = 0;
  virtual absl::StatusOr<v1::ShareSeries> GetShareSeries(
      const v1::ShareSeriesRequest& request) const = 0;
  virtual absl::StatusOr<v1::TopEntities> GetTopEntities(
      const v1::TopEntitiesRequest& request) const = 0;
  virtual absl::StatusOr<v1::EntityReport> GetEntity(const v1::EntityRequest& request) const = 0;
  // The ΔHHI decomposition of a view between two windows (ConcentrationChange).
  virtual absl::StatusOr<v1::ConcentrationChange> ExplainChange(
      const v1::ExplainChangeRequest& request) const = 0;
  virtual v1::IngestStats GetIngestStats() const = 0;

  // A number that grows whenever any view may have changed.
  virtual uint64_t StateVersion() const = 0;
  // Blocks until StateVersion() > `seen` or `deadline` passes; returns the
  // current version either way.
  virtual uint64_t WaitForStateVersionAbove(uint64_t seen, absl::Time deadline) const = 0;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_API_METRICS_BACKEND_H_
