#include "lib/exporter/poller.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "lib/exporter/translate.h"
#include "lib/time/time.h"

namespace hubmetrics::exporter {
namespace {

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

std::string ViewName(const View& v, const std::string& window) {
  return absl::StrCat(v.Key(), " window ", window);
}

int ShareTop(const PollerOptions& options) {
  return std::clamp(options.share_top, 1, kMaxShareTop);
}

}  // namespace

Poller::Poller(std::shared_ptr<grpc::ChannelInterface> channel, PollerOptions options,
               prometheus::Counter* errors)
    : stub_(v1::MetricsService::NewStub(std::move(channel))),
      options_(std::move(options)),
      errors_(errors),
      families_(ToFamilies(Snapshot{}, 0)) {}

absl::Status Poller::PollOnce() {
  Snapshot snapshot;
  absl::Status first_error = absl::OkStatus();
  auto fail = [&](absl::Status s) {
    if (errors_ != nullptr) errors_->Increment();
    if (first_error.ok()) first_error = std::move(s);
  };

  v1::IngestStats stats;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.rpc_timeout);
    grpc::Status s = stub_->GetIngestStats(&ctx, v1::IngestStatsRequest(), &stats);
    if (!s.ok()) {
      // The daemon is down or unreachable: one error, not one per view.
      fail(FromGrpc(s, "GetIngestStats"));
      absl::MutexLock lock(&mu_);
      families_ = ToFamilies(snapshot, options_.top_entities);
      return first_error;
    }
  }
  snapshot.stats = stats;

  // Every concentration view x window, windows outer, in one GetConcentrations
  // (split at kMaxConcentrationsPerCall items); then, per answered one, its
  // leaderboard.
  std::vector<ViewResult> asked;
  for (const std::string& window : options_.windows) {
    for (const View& view : ConcentrationViews()) {
      asked.push_back(ViewResult{.view = view, .window = window, .concentration = {}, .top = {}});
    }
  }
  std::vector<bool> answered(asked.size(), false);
  for (size_t begin = 0; begin < asked.size(); begin += kMaxConcentrationsPerCall) {
    const size_t end = std::min(asked.size(), begin + kMaxConcentrationsPerCall);
    v1::ConcentrationsRequest req;
    for (size_t i = begin; i < end; ++i) {
      v1::ConcentrationRequest* item = req.add_items();
      *item->mutable_view() = asked[i].view.ToProto();
      item->set_window(asked[i].window);
    }
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.rpc_timeout);
    v1::ConcentrationsResponse response;
    grpc::Status s = stub_->GetConcentrations(&ctx, req, &response);
    if (!s.ok()) {
      fail(FromGrpc(
          s, absl::StrCat("GetConcentrations of ", end - begin, " concentration views x windows")));
      continue;
    }
    if (static_cast<size_t>(response.results_size()) != end - begin) {
      fail(absl::InternalError(absl::StrCat("GetConcentrations: ", response.results_size(),
                                            " results for ", end - begin, " items")));
      continue;
    }
    for (size_t i = begin; i < end; ++i) {
      v1::ConcentrationResult& r = *response.mutable_results(static_cast<int>(i - begin));
      if (r.has_concentration()) {
        asked[i].concentration = std::move(*r.mutable_concentration());
        answered[i] = true;
        continue;
      }
      // An item's error counts as a failed GetConcentration of that view would.
      const int code = r.has_error() && r.error().code() != 0 ? r.error().code()
                                                              : static_cast<int>(grpc::UNKNOWN);
      fail(absl::Status(
          static_cast<absl::StatusCode>(code),
          absl::StrCat("GetConcentrations item ", ViewName(asked[i].view, asked[i].window), ": ",
                       r.error().message())));
    }
  }
  for (size_t i = 0; i < asked.size(); ++i) {
    if (!answered[i]) continue;
    ViewResult& result = asked[i];
    if (options_.top_entities > 0) {
      v1::TopEntitiesRequest req;
      *req.mutable_view() = result.view.ToProto();
      req.set_window(result.window);
      req.set_k(static_cast<uint32_t>(std::min(options_.top_entities, kMaxTopEntities)));
      grpc::ClientContext ctx;
      SetDeadline(ctx, options_.rpc_timeout);
      v1::TopEntities top;
      grpc::Status s = stub_->GetTopEntities(&ctx, req, &top);
      if (s.ok()) {
        result.top = std::move(top);
      } else {
        fail(FromGrpc(s, absl::StrCat("GetTopEntities ", ViewName(result.view, result.window))));
      }
    }
    snapshot.views.push_back(std::move(result));
  }

  // One leaderboard per share view and window: its top N and its total are
  // one consistent answer, so "(other)" = total - top N is exact.
  for (const std::string& window : options_.share_windows) {
    for (const View& view : options_.share_views) {
      v1::TopEntitiesRequest req;
      *req.mutable_view() = view.ToProto();
      req.set_window(window);
      req.set_k(static_cast<uint32_t>(ShareTop(options_)));
      grpc::ClientContext ctx;
      SetDeadline(ctx, options_.rpc_timeout);
      ShareResult result{.view = view, .window = window, .top = {}};
      grpc::Status s = stub_->GetTopEntities(&ctx, req, &result.top);
      if (!s.ok()) {
        fail(FromGrpc(s, absl::StrCat("GetTopEntities ", ViewName(view, window))));
        continue;
      }
      snapshot.shares.push_back(std::move(result));
    }
  }
  // Week over week: the watermark's week against the one before, both named
  // (not week:current) so that the two windows are one consistent pair.
  const std::optional<absl::Time> watermark = WatermarkOf(stats);
  const int change_top = std::clamp(options_.change_top, 0, kMaxChangeTop);
  if (change_top > 0 && watermark.has_value()) {
    const IsoWeek current = IsoWeek::Containing(DayOf(*watermark));
    for (const View& view : ConcentrationViews()) {
      v1::ExplainChangeRequest req;
      *req.mutable_view() = view.ToProto();
      req.set_from_window(absl::StrCat("week:", current.Plus(-1).Label()));
      req.set_to_window(absl::StrCat("week:", current.Label()));
      req.set_k(static_cast<uint32_t>(change_top));
      grpc::ClientContext ctx;
      SetDeadline(ctx, options_.rpc_timeout);
      ChangeResult result{.view = view, .change = {}};
      grpc::Status s = stub_->ExplainChange(&ctx, req, &result.change);
      if (!s.ok()) {
        fail(FromGrpc(s, absl::StrCat("ExplainChange ", view.Key())));
        continue;
      }
      snapshot.changes.push_back(std::move(result));
    }
  }
  snapshot.hhi_change_alert_bound = options_.hhi_change_alert_bound;
  snapshot.up = first_error.ok();
  std::vector<prometheus::MetricFamily> families =
      ToFamilies(snapshot, options_.top_entities, ShareTop(options_));
  absl::MutexLock lock(&mu_);
  families_ = std::move(families);
  return first_error;
}

int ConcentrationCallsPerPoll(const PollerOptions& options) {
  const size_t items = options.windows.size() * ConcentrationViews().size();
  return static_cast<int>((items + kMaxConcentrationsPerCall - 1) / kMaxConcentrationsPerCall);
}

int RpcsPerPoll(const PollerOptions& options) {
  const int views = static_cast<int>(options.windows.size() * ConcentrationViews().size());
  return 1 + ConcentrationCallsPerPoll(options) + (options.top_entities > 0 ? views : 0) +
         static_cast<int>(options.share_windows.size() * options.share_views.size()) +
         (options.change_top > 0 ? static_cast<int>(ConcentrationViews().size()) : 0);
}

std::vector<prometheus::MetricFamily> Poller::Collect() const {
  absl::MutexLock lock(&mu_);
  return families_;
}

std::shared_ptr<grpc::Channel> NewDaemonChannel(
    const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(
      target, credentials != nullptr ? std::move(credentials) : grpc::InsecureChannelCredentials(),
      args);
}

}  // namespace hubmetrics::exporter
