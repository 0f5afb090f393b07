// hubmetrics-exporter: the Prometheus sidecar of hubmetricsd.
//
// Polls the daemon's gRPC MetricsService every --poll_interval and serves the
// result on http(s)://--listen/metrics in the Prometheus text format (prometheus-cpp's
// TextSerializer). Polling rather than WatchConcentration because it is simple and its
// load is bounded: one GetIngestStats, one GetConcentration and one GetTopEntities
// per concentration view x --windows, and one GetTopEntities per share view
// (--share_levels x --share_samples x --share_filters x --share_attributions) x
// --share_windows per interval, independent of the event rate (the count is logged
// at start); a scrape reads the last snapshot and never waits on the daemon. See
// lib/exporter/poller.h for what happens while the daemon is down (hubmetrics_up 0,
// the exporter keeps serving).
//
// The views and their words come from lib/views (the concentration views are the
// daemon's live ones: lib/exporter/translate.h, ConcentrationViews()); the
// families are listed in lib/exporter/translate.h.
//
// /metrics is served by libmicrohttpd (lib/exporter/metrics_http_server.h) on
// one event-loop thread: an open connection costs a socket, not a thread, so
// idle clients cannot delay Prometheus' scrapes. --web_max_connections bounds
// the open connections (one more is closed at once) and --web_idle_timeout
// closes a connection that sends nothing.
//
// With --web_tls_cert_file and --web_tls_key_file /metrics is HTTPS only (GnuTLS);
// with --web_tls_client_ca_file too, a scrape must present a client certificate
// of that CA (mTLS). These are independent of --tls_*, which secure the polls
// of the daemon.
//
// Stops on SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/base/log.h"
#include "lib/exporter/metrics_http_server.h"
#include "lib/exporter/poller.h"
#include "lib/exporter/translate.h"
#include "lib/tls/client_flags.h"
#include "lib/tls/tls.h"
#include "lib/views/views.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "gRPC address of hubmetricsd.");
ABSL_FLAG(std::string, listen, "127.0.0.1:9464", "HOST:PORT to serve /metrics on.");
ABSL_FLAG(std::string, windows, "week:current,trailing:4,trailing:52",
          absl::StrCat("Comma-separated windows of the concentration families (hubmetrics_hhi, "
                       "..., hubmetrics_top_entity_share), each exported for every one of the ",
                       hubmetrics::exporter::ConcentrationViews().size(),
                       " live views (level x filter x attribution, sample all): ",
                       std::string(hubmetrics::WindowWords()), ". At most ",
                       hubmetrics::exporter::kMaxWindows, "."));
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(5),
          "How often to ask the daemon (0.1s..1h). Scrapes between polls see the last answer.");
ABSL_FLAG(int, top_entities, 10,
          "Leaderboard entries (hubmetrics_top_entity_share) per view and window, 0..100.");
ABSL_FLAG(
    std::string, share_levels, hubmetrics::exporter::DefaultShareLevels(),
    absl::StrCat("Comma-separated levels of the attribute families (hubmetrics_attribute_share "
                 "and hubmetrics_attribute_downloads): ",
                 hubmetrics::LevelWords(),
                 ". The default is every level but model and developer, whose entities are "
                 "ids without bound."));
ABSL_FLAG(std::string, share_samples, "all,head",
          absl::StrCat("Comma-separated samples of the attribute families: ",
                       hubmetrics::exporter::SampleWords(), "."));
ABSL_FLAG(std::string, share_filters, "all",
          absl::StrCat("Comma-separated filters of the attribute families: ",
                       hubmetrics::exporter::FilterWords(), "."));
ABSL_FLAG(std::string, share_attributions, "direct",
          absl::StrCat("Comma-separated attributions of the attribute families: ",
                       hubmetrics::exporter::AttributionWords(), "."));
ABSL_FLAG(std::string, share_windows, "all,trailing:52,week:current",
          absl::StrCat("Comma-separated windows of the attribute families: ",
                       std::string(hubmetrics::WindowWords()), ". At most ",
                       hubmetrics::exporter::kMaxWindows,
                       ". Each share view x window is one GetTopEntities per poll, computed by "
                       "the daemon on request and cached until its next batch."));
ABSL_FLAG(int, share_top, hubmetrics::exporter::kDefaultShareTop,
          absl::StrCat("Entities exported by name per share view and window (the largest), 1..",
                       hubmetrics::exporter::kMaxShareTop,
                       "; all the others are summed into entity=\"",
                       std::string(hubmetrics::exporter::kOtherEntity),
                       "\", so each view and window has at most this + 1 series per attribute "
                       "family."));
ABSL_FLAG(int, change_top, hubmetrics::exporter::kDefaultChangeTop,
          absl::StrCat("Top movers per concentration view of the week-over-week HHI change "
                       "(hubmetrics_hhi_change_contribution, part=top_mover), 0..",
                       hubmetrics::exporter::kMaxChangeTop,
                       "; 0: no change families (one ExplainChange per view and poll otherwise)."));
ABSL_FLAG(double, hhi_change_alert_bound, 0.01,
          "Exported as hubmetrics_hhi_change_alert_bound: the alert HubmetricsHhiMovedThisWeek "
          "fires when a view's |week-over-week HHI change| is above it (0..1).");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(5), "Deadline of each RPC to the daemon.");
ABSL_FLAG(int, web_max_connections, 64,
          "Connections /metrics keeps open at once, 1..65536. One more is closed at once (the "
          "client sees it closed, it does not wait), so this must exceed the scrapers, probes "
          "and other clients connected at the same time. An open connection costs a socket, not "
          "a thread. Default 64.");
ABSL_FLAG(absl::Duration, web_idle_timeout, absl::Seconds(10),
          "A /metrics connection that sends nothing (or does not read its answer) for this long "
          "is closed, 1s..1h, whole seconds. Default 10s.");
ABSL_FLAG(std::string, web_tls_cert_file, "",
          "PEM certificate chain (leaf first) of /metrics: given (with --web_tls_key_file), "
          "/metrics is served over HTTPS only. Default empty: plain HTTP.");
ABSL_FLAG(std::string, web_tls_key_file, "",
          "PEM private key (unencrypted) of --web_tls_cert_file. Default empty.");
ABSL_FLAG(std::string, web_tls_client_ca_file, "",
          "PEM CA certificates: given, a scrape must present a client certificate that chains "
          "to one of them (mTLS; others are answered 403). Needs --web_tls_cert_file and "
          "--web_tls_key_file. Default empty: no client certificate asked for.");

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
  absl::StatusOr<std::vector<std::string>> share_windows =
      exporter::ParseWindows(absl::GetFlag(FLAGS_share_windows), "share_windows");
  if (!share_windows.ok()) {
    LogError("%s", share_windows.status().message());
    return 2;
  }
  absl::StatusOr<std::vector<View>> share_views = exporter::ParseShareViews(
      absl::GetFlag(FLAGS_share_levels), absl::GetFlag(FLAGS_share_samples),
      absl::GetFlag(FLAGS_share_filters), absl::GetFlag(FLAGS_share_attributions));
  if (!share_views.ok()) {
    LogError("%s", share_views.status().message());
    return 2;
  }
  const int change_top = absl::GetFlag(FLAGS_change_top);
  if (change_top < 0 || change_top > exporter::kMaxChangeTop) {
    LogError(
        "--change_top=%d: must be between 0 (no change families) and %d (it bounds label "
        "cardinality)",
        change_top, exporter::kMaxChangeTop);
    return 2;
  }
  const double alert_bound = absl::GetFlag(FLAGS_hhi_change_alert_bound);
  if (!(alert_bound >= 0 && alert_bound <= 1)) {
    LogError("--hhi_change_alert_bound=%g: must be between 0 and 1 (HHI is on the 0..1 scale)",
             alert_bound);
    return 2;
  }
  const int share_top = absl::GetFlag(FLAGS_share_top);
  if (share_top < 1 || share_top > exporter::kMaxShareTop) {
    LogError("--share_top=%d: must be between 1 and %d (it bounds label cardinality)", share_top,
             exporter::kMaxShareTop);
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

  exporter::MetricsHttpServerOptions web{
      .listen = absl::GetFlag(FLAGS_listen),
      .max_connections = absl::GetFlag(FLAGS_web_max_connections),
      .idle_timeout = absl::GetFlag(FLAGS_web_idle_timeout),
  };
  if (web.max_connections < 1 || web.max_connections > exporter::kMaxWebConnections) {
    LogError("--web_max_connections=%d: must be between 1 and %d", web.max_connections,
             exporter::kMaxWebConnections);
    return 2;
  }
  if (web.idle_timeout < absl::Seconds(1) || web.idle_timeout > absl::Hours(1)) {
    LogError("--web_idle_timeout=%s: must be between 1s and 1h",
             absl::FormatDuration(web.idle_timeout));
    return 2;
  }
  exporter::MetricsTlsFiles web_tls;
  web_tls.cert.path = absl::GetFlag(FLAGS_web_tls_cert_file);
  web_tls.key.path = absl::GetFlag(FLAGS_web_tls_key_file);
  web_tls.client_ca.path = absl::GetFlag(FLAGS_web_tls_client_ca_file);
  if (absl::Status s = exporter::ReadMetricsTlsFiles(web_tls, &web); !s.ok()) {
    LogError("%s", s.message());
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
  exporter::PollerOptions poll{.windows = *std::move(windows),
                               .top_entities = top,
                               .share_views = *std::move(share_views),
                               .share_windows = *std::move(share_windows),
                               .share_top = share_top,
                               .change_top = change_top,
                               .hhi_change_alert_bound = alert_bound,
                               .rpc_timeout = rpc_timeout};
  const std::string poll_summary = absl::StrFormat(
      "%d concentration views x %d windows (%d GetConcentrations), %d share views x %d windows: "
      "%d RPCs per poll",
      exporter::ConcentrationViews().size(), poll.windows.size(),
      exporter::ConcentrationCallsPerPoll(poll), poll.share_views.size(), poll.share_windows.size(),
      exporter::RpcsPerPoll(poll));
  auto poller = std::make_shared<exporter::Poller>(
      exporter::NewDaemonChannel(absl::GetFlag(FLAGS_target), *std::move(credentials)),
      std::move(poll), &errors);

  absl::StatusOr<std::unique_ptr<exporter::MetricsHttpServer>> server =
      exporter::MetricsHttpServer::Start(std::move(web), {poller, registry});
  if (!server.ok()) {
    LogError("%s", server.status().message());
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const std::string listen = absl::GetFlag(FLAGS_listen);
  LogInfo("hubmetrics-exporter serving %s://%s/metrics%s, polling %s (%s) every %s (%s)",
          (*server)->tls() ? "https" : "http", listen,
          (*server)->mtls() ? " (client certificates required)" : "", absl::GetFlag(FLAGS_target),
          !daemon_tls.tls()         ? "plaintext"
          : daemon_tls.cert.given() ? "mTLS"
                                    : "TLS",
          absl::FormatDuration(interval), poll_summary);

  absl::Notification stop;
  std::thread loop(PollLoop, poller.get(), interval, &stop);
  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("stopping on signal %d", sig);
  stop.Notify();
  loop.join();
  server->reset();
  return 0;
}

}  // namespace
}  // namespace hubmetrics

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "hubmetrics-exporter --target=127.0.0.1:50051 --listen=127.0.0.1:9464 "
      "[--windows=week:current,trailing:4,trailing:52] [--poll_interval=5s] [--top_entities=10]\n"
      "[--share_levels=org_type,size,... --share_samples=all,head --share_filters=all "
      "--share_attributions=direct --share_windows=all,trailing:52,week:current "
      "--share_top=10]\n"
      "[--tls_ca_file=CA.pem [--tls_cert_file=CLIENT.pem --tls_key_file=CLIENT.key]]\n"
      "[--web_tls_cert_file=SERVER.pem --web_tls_key_file=SERVER.key "
      "[--web_tls_client_ca_file=CA.pem]]\n"
      "Serves hubmetricsd's concentration measures, attribute shares and ingest counters on "
      "/metrics.");
  absl::ParseCommandLine(argc, argv);
  return hubmetrics::Run();
}
