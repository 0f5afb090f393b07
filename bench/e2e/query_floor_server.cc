// query_floor_server: the least a gRPC server on this machine can do per
// GetConcentration call, so that query_load's latency against hubmetricsd can
// be read against a floor measured in the same conditions (the same client,
// the same background load), as consume_ceiling is the ceiling of ingest.
//
// It answers GetConcentration and GetConcentrations at once with a fixed
// answer of the shape hubmetricsd gives (the request's view and window, week
// bounds, totals, HHI, Gini, three top-k shares, a watermark), and nothing
// else: no state, no lock, no allocation beyond gRPC's own. It runs gRPC's
// asynchronous API on one completion queue drained by one thread, the
// cheapest way gRPC C++ serves a call (one thread wakes per call, where the
// callback API hands each call between threads several times). Every other
// method of MetricsService goes unanswered until its deadline.
//
//   query_floor_server --listen=127.0.0.1:50099 --seconds=60
//
// Prints "listening on HOST:PORT" once it accepts calls; stops by itself after
// --seconds (bounded, like every load tool here), or on SIGTERM / SIGINT.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT to listen on (port 0: any free port).");
ABSL_FLAG(double, seconds, 600, "Stop after this many seconds.");

namespace {

namespace v1 = hubmetrics::v1;

std::atomic<bool> g_stop{false};
// Set before the server shuts down: no call of a method is requested anew.
bool g_draining = false;

void OnSignal(int) { g_stop.store(true); }

// The fixed answer to one question: sizes like hubmetricsd's.
void Answer(const v1::ConcentrationRequest& request, v1::Concentration* out) {
  *out->mutable_view() = request.view();
  out->set_window(request.window());
  out->set_first_week("2025-W08");
  out->set_last_week("2025-W11");
  out->set_total_downloads(1874389);
  out->set_entities(2999);
  out->set_hhi(0.0123456789);
  out->set_gini(0.876543210);
  constexpr uint32_t kKs[] = {1, 10, 100};
  constexpr double kShares[] = {0.0612, 0.2468, 0.6543};
  for (int i = 0; i < 3; ++i) {
    v1::TopShare* share = out->add_top_shares();
    share->set_k(kKs[i]);
    share->set_share(kShares[i]);
  }
  out->mutable_watermark()->set_seconds(1742083200);
}

// Every item of a GetConcentrations call answered with the fixed answer.
void AnswerEach(const v1::ConcentrationsRequest& request, v1::ConcentrationsResponse* out) {
  for (const v1::ConcentrationRequest& item : request.items()) {
    Answer(item, out->add_results()->mutable_concentration());
  }
}

// One call in flight on the completion queue; its tag is itself.
class Call {
 public:
  virtual ~Call() = default;
  // The queue returned this call's tag: `ok` false when the server shuts down.
  virtual void Proceed(bool ok) = 0;
};

// A unary call of one method: requested from the service when made, answered
// with `answer` when it arrives (a call of the same method is requested anew
// then), deleted when its answer is written.
template <typename Request, typename Response>
class UnaryCall final : public Call {
 public:
  using RequestMethod = void (v1::MetricsService::AsyncService::*)(
      grpc::ServerContext*, Request*, grpc::ServerAsyncResponseWriter<Response>*,
      grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);
  using AnswerFunction = void (*)(const Request&, Response*);

  UnaryCall(v1::MetricsService::AsyncService* service, grpc::ServerCompletionQueue* cq,
            RequestMethod method, AnswerFunction answer)
      : service_(service), cq_(cq), method_(method), answer_(answer), writer_(&context_) {
    (service_->*method_)(&context_, &request_, &writer_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (!ok || answered_) {
      delete this;
      return;
    }
    if (!g_draining) new UnaryCall(service_, cq_, method_, answer_);
    answered_ = true;
    answer_(request_, &response_);
    writer_.Finish(response_, grpc::Status::OK, this);
  }

 private:
  v1::MetricsService::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const RequestMethod method_;
  const AnswerFunction answer_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_;
  bool answered_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The least a gRPC server does per GetConcentration call: a floor for query_load's "
      "latency. Usage: query_floor_server --listen=HOST:PORT --seconds=S");
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  v1::MetricsService::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "query_floor_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  new UnaryCall<v1::ConcentrationRequest, v1::Concentration>(
      &service, cq.get(), &v1::MetricsService::AsyncService::RequestGetConcentration, Answer);
  new UnaryCall<v1::ConcentrationsRequest, v1::ConcentrationsResponse>(
      &service, cq.get(), &v1::MetricsService::AsyncService::RequestGetConcentrations, AnswerEach);
  // One thread serves every call, and stops at the deadline or on a signal.
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  void* tag = nullptr;
  bool ok = false;
  while (!g_stop.load() && std::chrono::system_clock::now() < deadline) {
    const auto wake = std::chrono::system_clock::now() + std::chrono::milliseconds(100);
    if (cq->AsyncNext(&tag, &ok, wake) == grpc::CompletionQueue::GOT_EVENT) {
      static_cast<Call*>(tag)->Proceed(ok);
    }
  }
  g_draining = true;
  server->Shutdown(std::chrono::system_clock::now());
  cq->Shutdown();
  while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
  return 0;
}
