// hubmetrics-exporter: the Prometheus sidecar of hubmetricsd.
//
// Polls the daemon's gRPC MetricsService every --poll_interval and serves the
// result on http://--listen/metrics in the Prometheus text format (prometheus-cpp
// Exposer). Polling rather than WatchConcentration because it is simple and its
// load is bounded: one GetIngestStats plus one GetConcentration and one
// GetTopEntities per view x window per interval (12 views x 3 windows by default:
// 73 small RPCs every 5 s), independent of the event rate; a scrape reads the
// last snapshot and never waits on the daemon. See lib/exporter/poller.h for what
// happens while the daemon is down (hubmetrics_up 0, the exporter keeps serving).
//
// /metrics is served by civetweb (inside prometheus-cpp's Exposer), one worker
// thread per open connection: --web_threads bounds how many clients it serves
// at once and --web_request_timeout how long an idle or slow connection may
// hold a thread, so that a few clients that connect and send nothing cannot
// block Prometheus' scrapes.
//
// /metrics is plain HTTP. civetweb could serve HTTPS, but Debian 12's is built
// for the OpenSSL 1.1 API and loads libssl at run time: it calls
// SSL_get_peer_certificate, which OpenSSL 3 no longer exports, through a null
// pointer on every HTTPS connection (the process dies). Where /metrics must be
// encrypted, a TLS-terminating proxy in front of a loopback --listen does it
// (README, "TLS").
//
// Stops on SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/base/log.h"
#include "lib/exporter/poller.h"
#include "lib/exporter/translate.h"
#include "lib/tls/client_flags.h"
#include "lib/tls/tls.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "gRPC address of hubmetricsd.");
ABSL_FLAG(std::string, listen, "127.0.0.1:9464", "HOST:PORT to serve /metrics on.");
ABSL_FLAG(std::string, windows, "week:current,trailing:4,trailing:52",
          "Comma-separated windows to export for each of the 12 views: week:current (the ISO week "
          "of the daemon's watermark), week:YYYY-Www, trailing:N, all. At most 16.");
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(5),
          "How often to ask the daemon (0.1s..1h). Scrapes between polls see the last answer.");
ABSL_FLAG(int, top_entities, 10,
          "Leaderboard entries (hubmetrics_top_entity_share) per view and window, 0..100.");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(5), "Deadline of each RPC to the daemon.");
ABSL_FLAG(int, web_threads, 16,
          "Connections /metrics serves at once, 1..1024 (one thread each). An open connection "
          "holds its thread until it has been answered or --web_request_timeout passed, so this "
          "must exceed the scrapers, probes and other clients connected at the same time. "
          "Default 16.");
ABSL_FLAG(absl::Duration, web_request_timeout, absl::Seconds(10),
          "Longest wait for each read or write of a /metrics connection (the request, the "
          "answer) before it is closed and its thread freed: how long an idle or stalled client "
          "can hold a thread. Default 10s.");

namespace hubmetrics {
namespace {

void PollLoop(exporter::Poller* poller, absl::Duration interval, absl::Notification* stop) {
  bool was_up = true;
  bool first = true;
  while (true) {
    const absl::Time start = absl::Now();
    const absl::Status s = poller->PollOnce();
    if (!s.ok() && (was_up || first)) {
      LogWarning("hubmetricsd poll failed (hubmetrics_up=0, retrying every %s): %s",
                 absl::FormatDuration(interval), s.ToString());
    } else if (s.ok() && (!was_up || first)) {
      LogInfo("hubmetricsd poll succeeded (hubmetrics_up=1)");
    }
    was_up = s.ok();
    first = false;
    if (stop->WaitForNotificationWithTimeout(interval - (absl::Now() - start))) return;
  }
}

int Run() {
  absl::StatusOr<std::vector<std::string>> windows =
      exporter::ParseWindows(absl::GetFlag(FLAGS_windows));
  if (!windows.ok()) {
    LogError("%s", windows.status().message());
    return 2;
  }
  const int top = absl::GetFlag(FLAGS_top_entities);
  if (top < 0 || top > exporter::kMaxTopEntities) {
    LogError("--top_entities=%d: must be between 0 and %d (it bounds label cardinality)", top,
             exporter::kMaxTopEntities);
    return 2;
  }
  const absl::Duration interval = absl::GetFlag(FLAGS_poll_interval);
  if (interval < absl::Milliseconds(100) || interval > absl::Hours(1)) {
    LogError("--poll_interval=%s: must be between 100ms and 1h", absl::FormatDuration(interval));
    return 2;
  }
  const absl::Duration rpc_timeout = absl::GetFlag(FLAGS_rpc_timeout);
  if (rpc_timeout <= absl::ZeroDuration()) {
    LogError("--rpc_timeout must be positive");
    return 2;
  }

  const int web_threads = absl::GetFlag(FLAGS_web_threads);
  if (web_threads < 1 || web_threads > 1024) {
    LogError("--web_threads=%d: must be between 1 and 1024", web_threads);
    return 2;
  }
  const absl::Duration web_timeout = absl::GetFlag(FLAGS_web_request_timeout);
  if (web_timeout < absl::Milliseconds(100) || web_timeout > absl::Minutes(10)) {
    LogError("--web_request_timeout=%s: must be between 100ms and 10m",
             absl::FormatDuration(web_timeout));
    return 2;
  }
  const tls::ClientTlsFiles daemon_tls = tls::ClientTlsFilesFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tls::ChannelCredentials(daemon_tls);
  if (!credentials.ok()) {
    LogError("%s", credentials.status().message());
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter& errors =
      prometheus::BuildCounter()
          .Name("hubmetrics_exporter_scrape_errors_total")
          .Help("RPCs to hubmetricsd that failed (timeouts, daemon down, errors).")
          .Register(*registry)
          .Add({});
  auto poller = std::make_shared<exporter::Poller>(
      exporter::NewDaemonChannel(absl::GetFlag(FLAGS_target), *std::move(credentials)),
      exporter::PollerOptions{.windows = *windows, .top_entities = top, .rpc_timeout = rpc_timeout},
      &errors);

  // civetweb's options (prometheus-cpp passes them through). Keep-alive off
  // (civetweb's default, said here because it matters): an idle kept-alive
  // connection would hold a thread between scrapes.
  const std::string listen = absl::GetFlag(FLAGS_listen);
  std::vector<std::string> web_options = {
      "listening_ports",    listen,
      "num_threads",        absl::StrCat(web_threads),
      "request_timeout_ms", absl::StrCat(absl::ToInt64Milliseconds(web_timeout)),
      "enable_keep_alive",  "no"};
  // prometheus-cpp (civetweb) reports a port it cannot bind by throwing; this is
  // the only place it can, and it ends here as an exit code.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(web_options);
  } catch (const std::exception& e) {
    LogError("cannot listen on %s (--listen): %s", listen, e.what());
    return 1;
  }
  exposer->RegisterCollectable(poller);
  exposer->RegisterCollectable(registry);
  LogInfo("hubmetrics-exporter serving http://%s/metrics, polling %s (%s) every %s", listen,
          absl::GetFlag(FLAGS_target),
          !daemon_tls.tls()         ? "plaintext"
          : daemon_tls.cert.given() ? "mTLS"
                                    : "TLS",
          absl::FormatDuration(interval));

  absl::Notification stop;
  std::thread loop(PollLoop, poller.get(), interval, &stop);
  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("stopping on signal %d", sig);
  stop.Notify();
  loop.join();
  exposer.reset();
  return 0;
}

}  // namespace
}  // namespace hubmetrics

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "hubmetrics-exporter --target=127.0.0.1:50051 --listen=127.0.0.1:9464 "
      "[--windows=week:current,trailing:4,trailing:52] [--poll_interval=5s] [--top_entities=10]\n"
      "[--tls_ca_file=CA.pem [--tls_cert_file=CLIENT.pem --tls_key_file=CLIENT.key]]\n"
      "Serves hubmetricsd's concentration measures and ingest counters on /metrics.");
  absl::ParseCommandLine(argc, argv);
  return hubmetrics::Run();
}
