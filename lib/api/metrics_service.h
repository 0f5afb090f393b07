// The gRPC edge of hubmetricsd: hubmetrics.v1.MetricsService over a
// MetricsBackend.
//
// Errors: every backend absl::Status is returned to the client with the gRPC
// code of the same meaning (ToGrpcStatus) and its message unchanged; the edge
// adds no validation of its own, so a request the backend rejects fails with
// the backend's INVALID_ARGUMENT message.
//
// WatchConcentration: the current value at once; then, whenever the backend's
// state version moves and the resulting Concentration differs from the last
// one sent (byte for byte), the new value — at most one message per 100 ms, so
// a busy ingest cannot flood a client. The stream ends when the client cancels
// (noticed within ~100 ms), when BeginShutdown() is called (status
// UNAVAILABLE: reconnect to another replica or later), or with the backend's
// status if a later query fails.
//
// Thread safety: all methods may be called concurrently (gRPC runs each call on
// its own thread). Lifetime: `backend` is not owned and must outlive this
// object, which must outlive the grpc::Server it is registered with.
#ifndef HUBMETRICS_LIB_API_METRICS_SERVICE_H_
#define HUBMETRICS_LIB_API_METRICS_SERVICE_H_

#include <atomic>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/metrics_backend.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

namespace hubmetrics {

// The gRPC status with the same code (numeric meaning) and message as `status`.
grpc::Status ToGrpcStatus(const absl::Status& status);

class MetricsServiceImpl final : public v1::MetricsService::Service {
 public:
  // Minimum time between two messages of one WatchConcentration stream.
  static constexpr absl::Duration kWatchMinInterval = absl::Milliseconds(100);

  explicit MetricsServiceImpl(const MetricsBackend* backend) : backend_(backend) {}

  // Makes every open and future WatchConcentration stream end (UNAVAILABLE)
  // within ~100 ms, so that grpc::Server::Shutdown need not wait for them.
  // Unary calls are unaffected. Irreversible.
  void BeginShutdown() { shutting_down_.store(true); }

  grpc::Status GetConcentration(grpc::ServerContext* context,
                                const v1::ConcentrationRequest* request,
                                v1::Concentration* response) override;
  grpc::Status GetConcentrationSeries(grpc::ServerContext* context,
                                      const v1::ConcentrationSeriesRequest* request,
                                      v1::ConcentrationSeries* response) override;
  grpc::Status GetTopEntities(grpc::ServerContext* context, const v1::TopEntitiesRequest* request,
                              v1::TopEntities* response) override;
  grpc::Status GetEntity(grpc::ServerContext* context, const v1::EntityRequest* request,
                         v1::EntityReport* response) override;
  grpc::Status WatchConcentration(grpc::ServerContext* context,
                                  const v1::ConcentrationRequest* request,
                                  grpc::ServerWriter<v1::Concentration>* writer) override;
  grpc::Status GetIngestStats(grpc::ServerContext* context, const v1::IngestStatsRequest* request,
                              v1::IngestStats* response) override;

 private:
  const MetricsBackend* const backend_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_API_METRICS_SERVICE_H_
