#include "lib/api/grpc_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "lib/base/thread_priority.h"

namespace hubmetrics {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const std::string& listen_address,
                                                              const MetricsBackend* backend,
                                                              const GrpcServerOptions& options) {
  if (listen_address.empty()) {
    return absl::InvalidArgumentError(
        "the gRPC listen address is empty; give HOST:PORT, e.g. 127.0.0.1:50051");
  }
  // Before any real-time scope: its hm-query threads stay time-shared.
  auto service = std::make_unique<MetricsServiceImpl>(backend, options.service);
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  // gRPC starts its threads here (at its first use in the process, and when
  // the server starts); under RunAtRealtimePriority they inherit the priority.
  auto build_and_start = [&] {
    // Both are process-wide switches that the next ServerBuilder picks up.
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(
        listen_address,
        options.credentials != nullptr ? options.credentials : grpc::InsecureServerCredentials(),
        &port);
    // gRPC sets SO_REUSEPORT by default on Linux: two servers could then bind
    // the same port and split its traffic without an error.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
  };
  if (options.realtime_priority == 0) {
    build_and_start();
  } else if (absl::Status s = RunAtRealtimePriority(options.realtime_priority, build_and_start);
             !s.ok()) {
    if (server != nullptr) server->Shutdown();
    return absl::Status(s.code(), absl::StrCat("gRPC threads: ", s.message()));
  }
  if (server == nullptr || port == 0) {
    if (server != nullptr) server->Shutdown();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on '", listen_address,
        "': the port is in use (another hubmetricsd?) or the host is not an address of this "
        "machine; free the port or choose another address (HOST:PORT, port 0 picks a free one)"));
  }
  std::unique_ptr<GrpcServer> out(new GrpcServer(std::move(service), port));
  out->server_ = std::move(server);
  out->SetServing(true);
  return out;
}

GrpcServer::~GrpcServer() { Shutdown(); }

void GrpcServer::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;  // cannot happen: enabled in Start()
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
}

void GrpcServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  service_->BeginShutdown();
  // Sets every health status to NOT_SERVING, refuses new calls, waits for
  // running ones until the deadline, then cancels them.
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

}  // namespace hubmetrics
