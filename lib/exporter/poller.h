// Poller: asks hubmetricsd's MetricsService for every configured view and window
// and keeps the resulting Prometheus families, ready for a scrape.
//
// Why polling (not WatchConcentration): it is simple, its load on the daemon is
// bounded and known — RpcsPerPoll(): one GetIngestStats; one GetConcentrations
// for every concentration view x window together (split in calls of at most
// kMaxConcentrationsPerCall items: ConcentrationCallsPerPoll()), then per
// answered concentration view x window one GetTopEntities (when top_entities
// > 0); per share view x share window one GetTopEntities; per concentration
// view one ExplainChange when change_top > 0 and the daemon has a watermark —
// whatever the event rate — and a Prometheus scrape never waits on the
// daemon: it reads the last snapshot. Share views are
// mostly not live in the daemon: each is computed on request from its
// per-model counts, and cached until the next batch changes them.
//
// Windows are sent as configured: the daemon itself resolves "week:current"
// to its watermark's week (and answers it empty before the first event, like
// a trailing window).
//
// Each poll builds a complete new set of families and swaps it in whole, so a
// series whose labels disappeared (an entity that fell out of the top N) is gone
// from the next scrape and a scrape never sees half of one poll and half of another.
//
// On a failed poll (the daemon cannot be reached or an RPC fails) the snapshot
// keeps only hubmetrics_up = 0 and the views that did answer: stale values that
// look current would mislead a dashboard, while a gap plus hubmetrics_up = 0 is
// what the alert rules and panels expect. Each failed RPC, and each item of a
// GetConcentrations answered with an error (that view and window alone is
// dropped), adds one to the `errors` counter given at construction.
//
// Thread safety: PollOnce() is called from one thread at a time (the poll loop);
// Collect() may be called concurrently from any thread (the HTTP server's).
#ifndef HUBMETRICS_LIB_EXPORTER_POLLER_H_
#define HUBMETRICS_LIB_EXPORTER_POLLER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "lib/exporter/translate.h"
#include "lib/views/views.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/metric_family.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

namespace hubmetrics::exporter {

struct PollerOptions {
  // Validated windows of the concentration views (ConcentrationViews(); see
  // ParseWindows), as exported in the `window` label.
  std::vector<std::string> windows;
  // Leaderboard entries per view and window; clamped to 0..kMaxTopEntities.
  int top_entities = 10;
  // The views and windows of the attribute families (ParseShareViews,
  // ParseWindows); none: no share RPCs.
  std::vector<View> share_views;
  std::vector<std::string> share_windows;
  // Entities exported by name per share view and window (BoundShares); clamped
  // to 1..kMaxShareTop.
  int share_top = kDefaultShareTop;
  // Top movers per concentration view of the week-over-week change (one
  // ExplainChange per concentration view and poll); 0: no change RPCs.
  // Clamped to 0..kMaxChangeTop.
  int change_top = 0;
  // Exported as hubmetrics_hhi_change_alert_bound when set.
  std::optional<double> hhi_change_alert_bound;
  // Deadline of each RPC.
  absl::Duration rpc_timeout = absl::Seconds(5);
};

// The GetConcentrations calls of one poll with `options` (0 without windows).
int ConcentrationCallsPerPoll(const PollerOptions& options);
// The RPCs one successful poll makes with `options`.
int RpcsPerPoll(const PollerOptions& options);

class Poller final : public prometheus::Collectable {
 public:
  // `channel` is shared; `errors` must outlive the Poller (may be null: not counted).
  Poller(std::shared_ptr<grpc::ChannelInterface> channel, PollerOptions options,
         prometheus::Counter* errors);

  // Queries the daemon once and replaces the snapshot. Returns OK when every RPC
  // succeeded, else the first failure (with the RPC and view in its message).
  absl::Status PollOnce();

  // The families of the last poll (before the first: hubmetrics_up 0 only).
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::unique_ptr<v1::MetricsService::Stub> stub_;
  const PollerOptions options_;
  prometheus::Counter* const errors_;

  mutable absl::Mutex mu_;
  std::vector<prometheus::MetricFamily> families_ ABSL_GUARDED_BY(mu_);
};

// Channel arguments for the daemon: reconnect within seconds after a daemon
// restart instead of gRPC's default back-off of up to two minutes.
// `credentials`: TLS / mTLS (lib/tls builds them from the --tls_* flags); null:
// plaintext.
std::shared_ptr<grpc::Channel> NewDaemonChannel(
    const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

}  // namespace hubmetrics::exporter

#endif  // HUBMETRICS_LIB_EXPORTER_POLLER_H_
