#include "lib/api/metrics_service.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace hubmetrics {
namespace {

// Spelled out rather than cast: the two enums agree today, and a silent cast
// would hide it if either ever grew a code the other lacks.
grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return grpc::StatusCode::OK;
    case absl::StatusCode::kCancelled:
      return grpc::StatusCode::CANCELLED;
    case absl::StatusCode::kUnknown:
      return grpc::StatusCode::UNKNOWN;
    case absl::StatusCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case absl::StatusCode::kDeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case absl::StatusCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case absl::StatusCode::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case absl::StatusCode::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case absl::StatusCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return grpc::StatusCode::ABORTED;
    case absl::StatusCode::kOutOfRange:
      return grpc::StatusCode::OUT_OF_RANGE;
    case absl::StatusCode::kUnimplemented:
      return grpc::StatusCode::UNIMPLEMENTED;
    case absl::StatusCode::kInternal:
      return grpc::StatusCode::INTERNAL;
    case absl::StatusCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case absl::StatusCode::kDataLoss:
      return grpc::StatusCode::DATA_LOSS;
    case absl::StatusCode::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    default:
      return grpc::StatusCode::UNKNOWN;
  }
}

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// A batch's answers into its response: each error with the gRPC code and
// message a GetConcentration of the item alone would end with.
grpc::Status Reply(absl::StatusOr<ConcentrationAnswers> result,
                   v1::ConcentrationsResponse* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->mutable_results()->Reserve(static_cast<int>(result->size()));
  for (absl::StatusOr<v1::Concentration>& answer : *result) {
    v1::ConcentrationResult* out = response->add_results();
    if (answer.ok()) {
      *out->mutable_concentration() = *std::move(answer);
    } else {
      const grpc::Status status = ToGrpcStatus(answer.status());
      out->mutable_error()->set_code(static_cast<int32_t>(status.error_code()));
      out->mutable_error()->set_message(status.error_message());
    }
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(ToGrpcCode(status.code()), std::string(status.message()));
}

MetricsServiceImpl::MetricsServiceImpl(const MetricsBackend* backend,
                                       const MetricsServiceOptions& options)
    : backend_(backend), options_(options) {}

v1::ApiStats MetricsServiceImpl::Stats() const {
  v1::ApiStats out;
  out.set_watch_streams(static_cast<uint32_t>(std::max(0, watch_streams_.load())));
  out.set_max_watch_streams(static_cast<uint32_t>(std::max(0, options_.max_watch_streams)));
  out.set_watch_streams_refused(watch_streams_refused_.load());
  out.set_queued_calls(static_cast<uint32_t>(std::max(0, queued_calls_.load())));
  out.set_max_queued_calls(static_cast<uint32_t>(std::max(0, options_.max_queued_calls)));
  out.set_queued_calls_refused(queued_calls_refused_.load());
  return out;
}

template <typename Response, typename Query>
grpc::ServerUnaryReactor* MetricsServiceImpl::AnswerOnBlockingThread(
    grpc::CallbackServerContext* context, Response* response, Query query) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // A place in the queue is taken before the check, so concurrent calls cannot
  // all pass it; it is given back when the call starts (or is refused).
  if (queued_calls_.fetch_add(1) >= options_.max_queued_calls) {
    queued_calls_.fetch_sub(1);
    queued_calls_refused_.fetch_add(1);
    reactor->Finish(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many queries waiting: ", options_.max_queued_calls,
                     " calls already wait for one of the server's ", kBlockingQueryThreads,
                     " query threads (limit --max_queued_calls); retry with backoff")));
    return reactor;
  }
  // The request and response stay valid until Finish(): gRPC frees them after.
  blocking_queries_.Schedule(
      [this, context, reactor, response, query = std::move(query)]() mutable {
        queued_calls_.fetch_sub(1);
        if (context->IsCancelled() || context->deadline() < std::chrono::system_clock::now()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                       "the call ended before a thread was free to answer it"));
          return;
        }
        reactor->Finish(Reply(query(), response));
      });
  return reactor;
}

template <typename Response, typename Answer, typename Query>
grpc::ServerUnaryReactor* MetricsServiceImpl::AnswerNowOrOnBlockingThread(
    grpc::CallbackServerContext* context, Response* response,
    std::optional<absl::StatusOr<Answer>> now, Query query) {
  if (!now) return AnswerOnBlockingThread(context, response, std::move(query));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(Reply(*std::move(now), response));
  return reactor;
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetConcentration(
    grpc::CallbackServerContext* context, const v1::ConcentrationRequest* request,
    v1::Concentration* response) {
  return AnswerNowOrOnBlockingThread(
      context, response, backend_->GetConcentrationNow(*request),
      [this, request] { return backend_->GetConcentration(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetConcentrations(
    grpc::CallbackServerContext* context, const v1::ConcentrationsRequest* request,
    v1::ConcentrationsResponse* response) {
  return AnswerNowOrOnBlockingThread(
      context, response, backend_->GetConcentrationsNow(*request),
      [this, request] { return backend_->GetConcentrations(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetConcentrationSeries(
    grpc::CallbackServerContext* context, const v1::ConcentrationSeriesRequest* request,
    v1::ConcentrationSeries* response) {
  return AnswerOnBlockingThread(
      context, response, [this, request] { return backend_->GetConcentrationSeries(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetShareSeries(grpc::CallbackServerContext* context,
                                                             const v1::ShareSeriesRequest* request,
                                                             v1::ShareSeries* response) {
  return AnswerOnBlockingThread(context, response,
                                [this, request] { return backend_->GetShareSeries(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetTopEntities(grpc::CallbackServerContext* context,
                                                             const v1::TopEntitiesRequest* request,
                                                             v1::TopEntities* response) {
  return AnswerOnBlockingThread(context, response,
                                [this, request] { return backend_->GetTopEntities(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetEntity(grpc::CallbackServerContext* context,
                                                        const v1::EntityRequest* request,
                                                        v1::EntityReport* response) {
  return AnswerOnBlockingThread(context, response,
                                [this, request] { return backend_->GetEntity(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::ExplainChange(grpc::CallbackServerContext* context,
                                                            const v1::ExplainChangeRequest* request,
                                                            v1::ConcentrationChange* response) {
  return AnswerOnBlockingThread(context, response,
                                [this, request] { return backend_->ExplainChange(*request); });
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetIngestStats(
    grpc::CallbackServerContext* context, const v1::IngestStatsRequest* /*request*/,
    v1::IngestStats* response) {
  return AnswerOnBlockingThread(context, response, [this]() -> absl::StatusOr<v1::IngestStats> {
    v1::IngestStats stats = backend_->GetIngestStats();
    *stats.mutable_api() = Stats();
    return stats;
  });
}

grpc::Status MetricsServiceImpl::WatchConcentration(grpc::ServerContext* context,
                                                    const v1::ConcentrationRequest* request,
                                                    grpc::ServerWriter<v1::Concentration>* writer) {
  // How long one wait may block before cancellation and shutdown are checked again.
  constexpr absl::Duration kPoll = absl::Milliseconds(100);
  const grpc::Status client_gone(grpc::StatusCode::CANCELLED, "watch cancelled by the client");

  // As for queued calls: the place is taken first, then checked.
  if (watch_streams_.fetch_add(1) >= options_.max_watch_streams) {
    watch_streams_.fetch_sub(1);
    watch_streams_refused_.fetch_add(1);
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many watches: ", options_.max_watch_streams,
                     " WatchConcentration streams are open on this server (limit "
                     "--max_watch_streams); close one, poll GetConcentration instead, or retry "
                     "later"));
  }
  struct Release {
    std::atomic<int>* open;
    ~Release() { open->fetch_sub(1); }
  } release{&watch_streams_};

  // The version is read before the value, so any change made after the value
  // was computed moves the version past `seen` and is picked up below.
  uint64_t seen = backend_->StateVersion();
  absl::StatusOr<v1::Concentration> value = backend_->GetConcentration(*request);
  if (!value.ok()) return ToGrpcStatus(value.status());
  std::string last_sent = value->SerializeAsString();
  absl::Time last_sent_at = absl::Now();
  if (!writer->Write(*value)) return client_gone;

  while (true) {
    if (context->IsCancelled()) return client_gone;
    if (shutting_down_.load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is shutting down; start the watch again (on another "
                          "replica, or once this one is back)");
    }
    const absl::Time now = absl::Now();
    if (const absl::Time earliest = last_sent_at + kWatchMinInterval; now < earliest) {
      absl::SleepFor(earliest - now);  // at most kWatchMinInterval <= kPoll
      continue;
    }
    const uint64_t version = backend_->WaitForStateVersionAbove(seen, now + kPoll);
    if (version <= seen) continue;
    seen = version;
    value = backend_->GetConcentration(*request);
    if (!value.ok()) return ToGrpcStatus(value.status());
    // Messages here hold no maps, so equal values serialize to equal bytes.
    std::string bytes = value->SerializeAsString();
    if (bytes == last_sent) continue;  // the version moved, but not this view and window
    last_sent_at = absl::Now();
    if (!writer->Write(*value)) return client_gone;
    last_sent = std::move(bytes);
  }
}

}  // namespace hubmetrics
