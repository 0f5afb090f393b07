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
// GetConcentrations: the backend's answers item by item, each error mapped
// to its gRPC code and message exactly as a failed GetConcentration's (the
// call itself is OK); it fails as a whole only with the backend's error for
// the whole request (too many items) or a refusal of the limits below.
//
// Threads: the unary methods use gRPC's callback API. A GetConcentration the
// backend can answer now (GetConcentrationNow), and a GetConcentrations whose
// every item it can (GetConcentrationsNow), is answered on the gRPC thread
// that received it; every other unary call — which may wait for the batch
// being applied — runs on this service's own kBlockingQueryThreads threads, so
// a waiting query never holds up the answers that need not wait. A call whose
// client has gone (cancelled, deadline passed) while it waited for one of
// those threads ends CANCELLED without being computed. WatchConcentration runs
// on a thread of gRPC's synchronous server for as long as the stream lasts.
//
// Limits (MetricsServiceOptions): at most max_watch_streams streams are open
// at once, and at most max_queued_calls unary calls wait for a blocking-query
// thread. A call over either limit ends at once with RESOURCE_EXHAUSTED, a
// message naming the limit and the hubmetricsd flag that raises it, and is
// counted; GetIngestStats reports the counts (IngestStats.api). Without them a
// client opening streams in a loop, or a burst of slow queries, would grow
// threads or the queue (and its memory) without bound.
//
// Thread safety: all methods may be called concurrently. Lifetime: `backend`
// is not owned and must outlive this object, which must outlive the
// grpc::Server it is registered with (the server's Wait() returns only once
// every call has finished, so no task of this service runs after it).
#ifndef HUBMETRICS_LIB_API_METRICS_SERVICE_H_
#define HUBMETRICS_LIB_API_METRICS_SERVICE_H_

#include <atomic>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/metrics_backend.h"
#include "lib/base/thread_pool.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

namespace hubmetrics {

// The gRPC status with the same code (numeric meaning) and message as `status`.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct MetricsServiceOptions {
  // WatchConcentration streams open at once, at most (hubmetricsd
  // --max_watch_streams). Each holds a thread of gRPC's synchronous server (about
  // 100 KB of memory with its stack in use) and wakes every 100 ms, for as long
  // as its client stays. Larger: more dashboards and services may follow views
  // live; smaller: less memory and CPU a misbehaving client can take. At least 1.
  int max_watch_streams = 256;
  // Unary calls waiting for one of the kBlockingQueryThreads threads, at most
  // (hubmetricsd --max_queued_calls); the calls being answered do not count. A
  // queued call holds its request and a gRPC call object (a few KB). They wait
  // while ingest applies a batch (milliseconds) or behind slow series; a queue
  // this long means the clients ask faster than answers come, and refusing at
  // once tells them to back off instead of letting every call's deadline pass
  // in the queue. Larger: bursts ride through; smaller: less memory and a
  // shorter worst-case wait. At least 1.
  int max_queued_calls = 1024;
};

// Unary methods on the callback API; WatchConcentration synchronous.
using MetricsServiceBase = v1::MetricsService::WithCallbackMethod_GetConcentration<
    v1::MetricsService::WithCallbackMethod_GetConcentrations<
        v1::MetricsService::WithCallbackMethod_GetConcentrationSeries<
            v1::MetricsService::WithCallbackMethod_GetShareSeries<
                v1::MetricsService::WithCallbackMethod_GetTopEntities<
                    v1::MetricsService::WithCallbackMethod_GetEntity<
                        v1::MetricsService::WithCallbackMethod_ExplainChange<
                            v1::MetricsService::WithCallbackMethod_GetIngestStats<
                                v1::MetricsService::Service>>>>>>>>;

class MetricsServiceImpl final : public MetricsServiceBase {
 public:
  // Minimum time between two messages of one WatchConcentration stream.
  static constexpr absl::Duration kWatchMinInterval = absl::Milliseconds(100);
  // Threads for the unary calls that may wait for ingest. They all wait for
  // the same batch, so more threads would only wait side by side; fewer would
  // queue a cheap GetIngestStats behind a slow series.
  static constexpr int kBlockingQueryThreads = 4;

  explicit MetricsServiceImpl(const MetricsBackend* backend,
                              const MetricsServiceOptions& options = {});

  // Makes every open and future WatchConcentration stream end (UNAVAILABLE)
  // within ~100 ms, so that grpc::Server::Shutdown need not wait for them.
  // Unary calls are unaffected. Irreversible.
  void BeginShutdown() { shutting_down_.store(true); }

  // The limits, what is open or queued now, and what was refused since start.
  v1::ApiStats Stats() const;

  grpc::ServerUnaryReactor* GetConcentration(grpc::CallbackServerContext* context,
                                             const v1::ConcentrationRequest* request,
                                             v1::Concentration* response) override;
  grpc::ServerUnaryReactor* GetConcentrations(grpc::CallbackServerContext* context,
                                              const v1::ConcentrationsRequest* request,
                                              v1::ConcentrationsResponse* response) override;
  grpc::ServerUnaryReactor* GetConcentrationSeries(grpc::CallbackServerContext* context,
                                                   const v1::ConcentrationSeriesRequest* request,
                                                   v1::ConcentrationSeries* response) override;
  grpc::ServerUnaryReactor* GetShareSeries(grpc::CallbackServerContext* context,
                                           const v1::ShareSeriesRequest* request,
                                           v1::ShareSeries* response) override;
  grpc::ServerUnaryReactor* GetTopEntities(grpc::CallbackServerContext* context,
                                           const v1::TopEntitiesRequest* request,
                                           v1::TopEntities* response) override;
  grpc::ServerUnaryReactor* GetEntity(grpc::CallbackServerContext* context,
                                      const v1::EntityRequest* request,
                                      v1::EntityReport* response) override;
  grpc::ServerUnaryReactor* ExplainChange(grpc::CallbackServerContext* context,
                                          const v1::ExplainChangeRequest* request,
                                          v1::ConcentrationChange* response) override;
  grpc::Status WatchConcentration(grpc::ServerContext* context,
                                  const v1::ConcentrationRequest* request,
                                  grpc::ServerWriter<v1::Concentration>* writer) override;
  grpc::ServerUnaryReactor* GetIngestStats(grpc::CallbackServerContext* context,
                                           const v1::IngestStatsRequest* request,
                                           v1::IngestStats* response) override;

 private:
  // Finishes the call with `query`'s answer, computed on a blocking-query
  // thread; `response` is where the answer goes.
  template <typename Response, typename Query>
  grpc::ServerUnaryReactor* AnswerOnBlockingThread(grpc::CallbackServerContext* context,
                                                   Response* response, Query query);
  // Finishes the call on the gRPC thread with `now` when the backend answered
  // without waiting (it returned a value), else as AnswerOnBlockingThread.
  template <typename Response, typename Answer, typename Query>
  grpc::ServerUnaryReactor* AnswerNowOrOnBlockingThread(grpc::CallbackServerContext* context,
                                                        Response* response,
                                                        std::optional<absl::StatusOr<Answer>> now,
                                                        Query query);

  const MetricsBackend* const backend_;
  const MetricsServiceOptions options_;
  std::atomic<bool> shutting_down_{false};
  // Open WatchConcentration streams; calls scheduled on blocking_queries_ and
  // not started yet; and what the limits refused.
  std::atomic<int> watch_streams_{0};
  std::atomic<int> queued_calls_{0};
  std::atomic<uint64_t> watch_streams_refused_{0};
  std::atomic<uint64_t> queued_calls_refused_{0};
  ThreadPool blocking_queries_{kBlockingQueryThreads, "hm-query"};
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_API_METRICS_SERVICE_H_
