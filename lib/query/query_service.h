// The read path of hubmetricsd: the MetricsBackend that the gRPC API serves.
// It parses requests (views, windows, k), resolves windows against the
// watermark, answers live views from the engine's snapshot or its live
// distributions and every other view x window on demand (OnDemandViews), and
// maps the answers to protobuf messages. The engine (Pipeline) is the write
// path only.
//
// Errors: InvalidArgument for a request outside the vocabulary of
// lib/views, with a message that lists what is allowed.
//
// Thread safety: every method may be called concurrently from any thread.
#ifndef HUBMETRICS_LIB_QUERY_QUERY_SERVICE_H_
#define HUBMETRICS_LIB_QUERY_QUERY_SERVICE_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/api/metrics_backend.h"
#include "lib/ingest/pipeline.h"
#include "lib/query/on_demand_views.h"
#include "lib/views/views.h"

namespace hubmetrics {

class QueryService final : public MetricsBackend {
 public:
  // `pipeline` is not owned and must outlive this object.
  explicit QueryService(const Pipeline* pipeline);

  absl::StatusOr<v1::Concentration> GetConcentration(
      const v1::ConcentrationRequest& request) const override;
  // Answers live windows of live views with the default ks (and invalid
  // requests) from the engine's snapshot, and the rest when the engine's lock
  // is free at once and the answer needs no computing (live distributions,
  // on-demand measures cached).
  std::optional<absl::StatusOr<v1::Concentration>> GetConcentrationNow(
      const v1::ConcentrationRequest& request) const override;
  // Live items (as GetConcentrationNow) from one snapshot; the others under
  // one Pipeline::Read, so they see one state of the engine.
  absl::StatusOr<ConcentrationAnswers> GetConcentrations(
      const v1::ConcentrationsRequest& request) const override;
  // Answers when every item is invalid or can be answered as
  // GetConcentrationNow answers, or the request is too long.
  std::optional<absl::StatusOr<ConcentrationAnswers>> GetConcentrationsNow(
      const v1::ConcentrationsRequest& request) const override;
  absl::StatusOr<v1::ConcentrationSeries> GetConcentrationSeries(
      const v1::ConcentrationSeriesRequest& request) const override;
  absl::StatusOr<v1::ShareSeries> GetShareSeries(
      const v1::ShareSeriesRequest& request) const override;
  absl::StatusOr<v1::TopEntities> GetTopEntities(
      const v1::TopEntitiesRequest& request) const override;
  absl::StatusOr<v1::EntityReport> GetEntity(const v1::EntityRequest& request) const override;
  // Both windows' counts come from OnDemandViews (exact for any view x
  // window), their concentration answers as GetConcentration's.
  absl::StatusOr<v1::ConcentrationChange> ExplainChange(
      const v1::ExplainChangeRequest& request) const override;
  v1::IngestStats GetIngestStats() const override { return pipeline_->GetIngestStats(); }
  uint64_t StateVersion() const override { return pipeline_->StateVersion(); }
  uint64_t WaitForStateVersionAbove(uint64_t seen, absl::Time deadline) const override {
    return pipeline_->WaitForStateVersionAbove(seen, deadline);
  }

 private:
  // The measures of view x window: live if kept live, else on demand. Call
  // inside Pipeline::Read.
  ConcentrationValues Measures(const Pipeline::ReadState& state, const View& view,
                               const Window& window, const std::vector<uint32_t>& ks) const;
  // Measures() when answering needs no computing (a live view x window, or
  // on-demand measures cached and still holding), else nullopt.
  std::optional<ConcentrationValues> MeasuresAtOnce(const Pipeline::ReadState& state,
                                                    const View& view, const Window& window,
                                                    const std::vector<uint32_t>& ks) const;

  const Pipeline* pipeline_;
  // Reads the pipeline's state; used only inside Pipeline::Read.
  std::unique_ptr<OnDemandViews> on_demand_;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_QUERY_QUERY_SERVICE_H_
