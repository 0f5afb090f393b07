// The gRPC server of hubmetricsd: hubmetrics.v1.MetricsService, the standard
// health service grpc.health.v1.Health and server reflection (so grpcurl and
// Kubernetes gRPC probes work without the protos).
//
// Health: "" and "hubmetrics.v1.MetricsService" report SERVING from Start()
// on; SetServing(false) turns both to NOT_SERVING (e.g. while draining), and
// Shutdown() turns them off for good.
//
// Lifetime: `backend` is not owned and must outlive the GrpcServer. The
// destructor calls Shutdown().
//
// Thread safety: port() and SetServing() may be called from any thread at any
// time; Shutdown() may be called from any thread, more than once.
#ifndef HUBMETRICS_LIB_API_GRPC_SERVER_H_
#define HUBMETRICS_LIB_API_GRPC_SERVER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/metrics_backend.h"
#include "lib/api/metrics_service.h"

namespace hubmetrics {

struct GrpcServerOptions {
  // Real-time priority (SCHED_FIFO, 1..99) of gRPC's threads: those that read
  // requests, answer a GetConcentration the live snapshot can answer, run
  // WatchConcentration streams and write responses. Every other unary call
  // still runs on the API's time-shared hm-query threads.
  //
  // On a machine that ingest, a broker or other services keep busy, a waking
  // gRPC thread then takes a core at once instead of waiting behind them for
  // the end of their slice, up to a scheduler tick (docs/BENCHMARKS.md: the
  // median call during ingest on 2 cores 0.3 ms against 1.2 ms time-shared).
  // The cost: these threads run ahead of ingest, so a query flood slows ingest
  // first, and once they want more than the kernel's real-time share (95% of
  // each second, sched_rt_runtime_us) they are throttled for the rest of it.
  //
  // Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least the value: Start()
  // fails with PermissionDenied without it. Default 0: time-shared, like every
  // other thread.
  int realtime_priority = 0;

  // How the listening port authenticates (grpc::SslServerCredentials for TLS,
  // with a client CA for mTLS; lib/tls builds them from the --tls_* flags).
  // Exactly one port is opened with them: a TLS server has no plaintext port
  // a client could fall back to.
  //
  // TLS keeps the API's answers and the clients' questions private on a
  // shared network and, with client certificates, limits it to the holders
  // of a certificate of the deployment's CA. The cost: certificates to issue,
  // mount and rotate (a restart reads new files), a handshake per connection
  // (clients keep theirs open) and plaintext tools (grpcurl -plaintext, a
  // Kubernetes gRPC probe, which cannot do TLS) no longer connect. Default
  // null: plaintext, for loopback or a network that is already private.
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;
  // The API's limits on open watches and queued calls (MetricsServiceOptions).
  MetricsServiceOptions service = {};
};

class GrpcServer {
 public:
  // The service name the health service reports on, besides "".
  static constexpr char kServiceName[] = "hubmetrics.v1.MetricsService";

  // Binds `listen_address` ("HOST:PORT"; port 0 picks a free port, see port())
  // and starts serving on gRPC's own threads. Errors: InvalidArgument for an
  // empty address; Unavailable, naming the address, if it cannot be bound (port
  // in use, or not an address of this machine). The port is bound exclusively
  // (no SO_REUSEPORT), so a second daemon on the same port fails here instead
  // of silently sharing the traffic. PermissionDenied or InvalidArgument when
  // options.realtime_priority cannot be given (see GrpcServerOptions).
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const std::string& listen_address,
                                                           const MetricsBackend* backend,
                                                           const GrpcServerOptions& options = {});

  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;
  ~GrpcServer();

  // The bound port (the selected one when the address asked for port 0).
  int port() const { return port_; }

  // What the health service answers for "" and kServiceName. No effect after
  // Shutdown().
  void SetServing(bool serving);

  // Stops accepting calls, ends open WatchConcentration streams (UNAVAILABLE)
  // and waits for running calls for at most `grace`, then cancels them.
  // Returns once every call has finished. Later calls do nothing.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  GrpcServer(std::unique_ptr<MetricsServiceImpl> service, int port)
      : service_(std::move(service)), port_(port) {}

  // Declared before server_ so that it outlives it.
  const std::unique_ptr<MetricsServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;  // set once by Start()
  const int port_;

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_API_GRPC_SERVER_H_
