// The poller against a fake MetricsService served over real gRPC on 127.0.0.1.
#include "lib/exporter/poller.h"

#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "lib/exporter/translate.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace hubmetrics::exporter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Answers every concentration view with hhi = (index of the view in
// ConcentrationViews() order + 1) / 16 so the test can tell views apart, and
// every leaderboard with kListed entities "<level>-<generation>-<i>" with
// downloads kListed - i (whatever k asked for); records what was asked.
class FakeMetricsService final : public v1::MetricsService::Service {
 public:
  static constexpr uint64_t kListed = 150;
  static constexpr uint64_t kTotal = kListed * (kListed + 1) / 2;

  grpc::Status GetIngestStats(grpc::ServerContext*, const v1::IngestStatsRequest*,
                              v1::IngestStats* out) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    out->set_unique_downloads(11);
    out->mutable_watermark()->set_seconds(1741091696);  // 2025-03-04T12:34:56Z: 2025-W10
    return grpc::Status::OK;
  }
  // No GetConcentration: the poller asks every concentration view in batches
  // (one call unless there are more items than one call takes).
  grpc::Status GetConcentrations(grpc::ServerContext*, const v1::ConcentrationsRequest* req,
                                 v1::ConcentrationsResponse* out) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    batch_sizes_.push_back(req->items_size());
    if (!batch_failure_.ok()) return batch_failure_;
    for (const v1::ConcentrationRequest& item : req->items()) {
      windows_.insert(item.window());
      v1::ConcentrationResult* r = out->add_results();
      if (fail_levels_.contains(item.view().level())) {
        r->mutable_error()->set_code(grpc::StatusCode::INTERNAL);
        r->mutable_error()->set_message("broken view");
        continue;
      }
      v1::Concentration* c = r->mutable_concentration();
      *c->mutable_view() = item.view();
      c->set_window(item.window());
      c->set_hhi(HhiOf(item.view()));
      c->set_total_downloads(11);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetTopEntities(grpc::ServerContext*, const v1::TopEntitiesRequest* req,
                              v1::TopEntities* out) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    windows_.insert(req->window());
    top_k_.insert(req->k());
    const v1::View& v = req->view();
    top_views_.insert(
        absl::StrCat(v.level(), "/", v.filter(), "/", v.attribution(), "/", v.sample()));
    if (fail_levels_.contains(v.level())) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "broken view");
    }
    // Deliberately more than asked: the exporter must still bound its output.
    out->set_total_downloads(kTotal);
    out->set_entities(kListed);
    for (uint64_t i = 0; i < kListed; ++i) {
      auto* e = out->add_top();
      e->set_entity(absl::StrCat(v.level(), "-", generation_, "-", i));
      e->set_downloads(kListed - i);
      e->set_rank(i + 1);
      e->set_share(static_cast<double>(kListed - i) / kTotal);
    }
    return grpc::Status::OK;
  }

  static double HhiOf(const v1::View& v) {
    const auto& views = ConcentrationViews();
    for (size_t i = 0; i < views.size(); ++i) {
      if (views[i].LevelLabel() == v.level() && FilterName(views[i].filter) == v.filter() &&
          AttributionName(views[i].attribution) == v.attribution()) {
        return static_cast<double>(i + 1) / 16;
      }
    }
    return -1;
  }

  void set_fail_levels(std::set<std::string> levels) {
    absl::MutexLock lock(&mu_);
    fail_levels_ = std::move(levels);
  }
  // While not OK, every GetConcentrations call fails with it.
  void set_batch_failure(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    batch_failure_ = std::move(status);
  }
  std::vector<int> batch_sizes() {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  void set_generation(int g) {
    absl::MutexLock lock(&mu_);
    generation_ = g;
  }
  std::set<std::string> windows() {
    absl::MutexLock lock(&mu_);
    return windows_;
  }
  std::set<uint32_t> top_k() {
    absl::MutexLock lock(&mu_);
    return top_k_;
  }
  std::set<std::string> top_views() {
    absl::MutexLock lock(&mu_);
    return top_views_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> fail_levels_ ABSL_GUARDED_BY(mu_);
  grpc::Status batch_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> windows_ ABSL_GUARDED_BY(mu_);
  std::set<uint32_t> top_k_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> top_views_ ABSL_GUARDED_BY(mu_);
};

// The share views of these tests: org_type and size at samples all and head.
std::vector<View> TestShareViews() {
  absl::StatusOr<std::vector<View>> views =
      ParseShareViews("org_type,size", "all,head", "all", "direct");
  EXPECT_TRUE(views.ok()) << views.status();
  return views.ok() ? *views : std::vector<View>{};
}

// Concentration views of `level`.
size_t ViewsOfLevel(Level level) {
  size_t n = 0;
  for (const View& v : ConcentrationViews()) n += v.level == level ? 1 : 0;
  return n;
}

class PollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    errors_ = &prometheus::BuildCounter().Name("errors_total").Register(registry_).Add({});
    options_ = PollerOptions{.windows = {"week:current", "trailing:4"},
                             .top_entities = 10,
                             .share_views = TestShareViews(),
                             .share_windows = {"all", "week:current"},
                             .share_top = kShareTop,
                             .change_top = 0,
                             .hhi_change_alert_bound = std::nullopt,
                             .rpc_timeout = absl::Seconds(5)};
    poller_ = std::make_unique<Poller>(NewDaemonChannel(absl::StrCat("127.0.0.1:", port_)),
                                       options_, errors_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::string Text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, poller_->Collect());
    return out.str();
  }
  size_t SeriesOf(std::string_view name) const {
    for (const auto& f : poller_->Collect()) {
      if (f.name == name) return f.metric.size();
    }
    return 0;
  }

  // Shares by name per share view and window in these tests.
  static constexpr int kShareTop = 3;

  // Series of one concentration family, and of one attribute family, when
  // every RPC succeeds.
  size_t ViewSeries() const { return ConcentrationViews().size() * options_.windows.size(); }
  size_t ShareSeries() const {
    return options_.share_views.size() * options_.share_windows.size() * (kShareTop + 1);
  }

  FakeMetricsService service_;
  PollerOptions options_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  prometheus::Registry registry_;
  prometheus::Counter* errors_ = nullptr;
  std::unique_ptr<Poller> poller_;
};

TEST_F(PollerTest, BeforeTheFirstPollOnlyUpZero) {
  EXPECT_EQ(Text(),
            "# HELP hubmetrics_up 1 when the exporter's last poll of hubmetricsd fully "
            "succeeded, 0 while the daemon cannot be reached or answers with errors.\n"
            "# TYPE hubmetrics_up gauge\nhubmetrics_up 0\n");
}

TEST_F(PollerTest, ExportsEveryViewAndWindowAsConfigured) {
  ASSERT_TRUE(poller_->PollOnce().ok());
  // The daemon resolves week:current itself: the exporter sends the word.
  EXPECT_EQ(service_.windows(), (std::set<std::string>{"week:current", "trailing:4", "all"}));
  EXPECT_EQ(service_.top_k(), (std::set<uint32_t>{10, kShareTop}));
  EXPECT_EQ(service_.calls(), RpcsPerPoll(options_));
  // Every concentration view x window in one GetConcentrations.
  EXPECT_EQ(ConcentrationCallsPerPoll(options_), 1);
  EXPECT_EQ(service_.batch_sizes(), std::vector<int>{static_cast<int>(ViewSeries())});
  EXPECT_EQ(RpcsPerPoll(options_),
            1 + 1 + static_cast<int>(ViewSeries()) +
                static_cast<int>(options_.share_views.size() * options_.share_windows.size()));
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("hubmetrics_up 1\n"));
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), ViewSeries());
  EXPECT_EQ(SeriesOf("hubmetrics_gini"), ViewSeries());
  EXPECT_EQ(SeriesOf("hubmetrics_top_entity_share"), ViewSeries() * 10u);
  // The view's own value ends up under the view's labels (ConcentrationViews
  // index 5 -> developer/all/recursive, hhi 6/16), with the configured window.
  ASSERT_EQ(ConcentrationViews()[5].Key(), "developer/all/recursive/all");
  EXPECT_THAT(text, HasSubstr("hubmetrics_hhi{level=\"developer\",filter=\"all\",attribution="
                              "\"recursive\",window=\"week:current\"} 0.375\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_events_total{outcome=\"unique\"} 11\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_watermark_timestamp_seconds 1741091696\n"));
  EXPECT_EQ(errors_->Value(), 0);
}

TEST_F(PollerTest, ExportsTheTopSharesOfEveryShareViewAndTheRest) {
  ASSERT_TRUE(poller_->PollOnce().ok());
  // Every share view was asked with its own sample.
  const std::set<std::string> asked = service_.top_views();
  for (const View& v : options_.share_views) {
    EXPECT_TRUE(asked.contains(v.Key())) << v.Key();
  }
  EXPECT_TRUE(asked.contains("size/all/direct/head"));
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), ShareSeries());
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_downloads"), ShareSeries());
  const std::string text = Text();
  const std::string labels =
      "level=\"size\",filter=\"all\",attribution=\"direct\",sample=\"head\","
      "window=\"week:current\"";
  const uint64_t listed = FakeMetricsService::kListed;
  const uint64_t total = FakeMetricsService::kTotal;
  EXPECT_THAT(text, HasSubstr(absl::StrCat("hubmetrics_attribute_downloads{", labels,
                                           ",entity=\"size-0-0\"} ", listed, "\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("hubmetrics_attribute_downloads{", labels,
                                           ",entity=\"size-0-2\"} ", listed - 2, "\n")));
  EXPECT_THAT(text, Not(HasSubstr("entity=\"size-0-3\"")));
  // Everything past the top 3, exactly.
  const uint64_t rest = total - listed - (listed - 1) - (listed - 2);
  EXPECT_THAT(text, HasSubstr(absl::StrCat("hubmetrics_attribute_downloads{", labels,
                                           ",entity=\"(other)\"} ", rest, "\n")));
}

TEST_F(PollerTest, EntitiesThatLeaveTheTopDisappear) {
  ASSERT_TRUE(poller_->PollOnce().ok());
  EXPECT_THAT(Text(), HasSubstr("entity=\"model-0-3\""));
  EXPECT_THAT(Text(), HasSubstr("entity=\"org_type-0-2\""));
  service_.set_generation(1);
  ASSERT_TRUE(poller_->PollOnce().ok());
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("entity=\"model-1-3\""));
  EXPECT_THAT(text, HasSubstr("entity=\"org_type-1-2\""));
  EXPECT_THAT(text, Not(HasSubstr("entity=\"model-0-")));
  EXPECT_THAT(text, Not(HasSubstr("entity=\"org_type-0-")));
  EXPECT_EQ(SeriesOf("hubmetrics_top_entity_share"), ViewSeries() * 10u);
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), ShareSeries());
}

TEST_F(PollerTest, AFailingViewMakesUpZeroAndKeepsTheOthers) {
  service_.set_fail_levels({"country"});
  const absl::Status s = poller_->PollOnce();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("GetConcentrations item country/"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("broken view"));
  EXPECT_THAT(Text(), HasSubstr("hubmetrics_up 0\n"));
  const size_t failed = ViewsOfLevel(Level::kCountry) * options_.windows.size();
  ASSERT_GT(failed, 0u);
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), ViewSeries() - failed);
  EXPECT_EQ(errors_->Value(), static_cast<double>(failed));
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), ShareSeries());
}

TEST_F(PollerTest, AFailedGetConcentrationsDropsTheConcentrationViewsOnly) {
  service_.set_batch_failure(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"));
  const absl::Status s = poller_->PollOnce();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(s.message()), HasSubstr("GetConcentrations"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("queue full"));
  EXPECT_THAT(Text(), HasSubstr("hubmetrics_up 0\n"));
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), 0u);
  EXPECT_EQ(SeriesOf("hubmetrics_top_entity_share"), 0u);  // no leaderboard asked without it
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), ShareSeries());
  EXPECT_EQ(errors_->Value(), 1);  // one failed RPC
  service_.set_batch_failure(grpc::Status::OK);
  ASSERT_TRUE(poller_->PollOnce().ok());
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), ViewSeries());
}

TEST_F(PollerTest, MoreViewsAndWindowsThanOneCallTakesAreSplitAtTheLimit) {
  PollerOptions options = options_;
  options.windows.clear();
  // Enough windows for more than one call's items.
  const size_t per_window = ConcentrationViews().size();
  const size_t windows = kMaxConcentrationsPerCall / per_window + 2;
  for (size_t n = 1; n <= windows; ++n) options.windows.push_back(absl::StrCat("trailing:", n));
  options.top_entities = 0;
  options.share_views.clear();
  Poller poller(NewDaemonChannel(absl::StrCat("127.0.0.1:", port_)), options, errors_);
  ASSERT_TRUE(poller.PollOnce().ok());
  const int items = static_cast<int>(windows * per_window);
  EXPECT_EQ(service_.batch_sizes(),
            (std::vector<int>{static_cast<int>(kMaxConcentrationsPerCall),
                              items - static_cast<int>(kMaxConcentrationsPerCall)}));
  EXPECT_EQ(ConcentrationCallsPerPoll(options), 2);
  EXPECT_EQ(service_.calls(), RpcsPerPoll(options));
  size_t hhi = 0;
  for (const auto& f : poller.Collect()) {
    if (f.name == "hubmetrics_hhi") hhi = f.metric.size();
  }
  EXPECT_EQ(hhi, static_cast<size_t>(items));
}

TEST_F(PollerTest, AFailingShareViewDropsOnlyItsSeries) {
  service_.set_fail_levels({"size"});
  const absl::Status s = poller_->PollOnce();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("GetTopEntities size/"));
  EXPECT_THAT(Text(), HasSubstr("hubmetrics_up 0\n"));
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), ViewSeries());
  // Half the share views are size views.
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), ShareSeries() / 2);
  EXPECT_EQ(errors_->Value(),
            static_cast<double>(options_.share_views.size() / 2 * options_.share_windows.size()));
  EXPECT_THAT(Text(), Not(HasSubstr("level=\"size\"")));
}

TEST_F(PollerTest, DaemonDownDropsTheViewsAndKeepsAnswering) {
  ASSERT_TRUE(poller_->PollOnce().ok());
  ASSERT_GT(SeriesOf("hubmetrics_hhi"), 0u);
  ASSERT_GT(SeriesOf("hubmetrics_attribute_share"), 0u);
  server_->Shutdown();
  server_.reset();
  const absl::Status s = poller_->PollOnce();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("GetIngestStats"));
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("hubmetrics_up 0\n"));
  EXPECT_EQ(SeriesOf("hubmetrics_hhi"), 0u);
  EXPECT_EQ(SeriesOf("hubmetrics_top_entity_share"), 0u);
  EXPECT_EQ(SeriesOf("hubmetrics_attribute_share"), 0u);
  EXPECT_EQ(SeriesOf("hubmetrics_events_total"), 0u);
  EXPECT_EQ(errors_->Value(), 1);  // one failed RPC, not one per view
  EXPECT_FALSE(poller_->PollOnce().ok());
  EXPECT_EQ(errors_->Value(), 2);
}

TEST_F(PollerTest, BeforeTheFirstEventEveryWindowIsAskedAndEmpty) {
  // A daemon with no watermark yet answers every window, empty (week:current
  // and trailing windows cover no week yet).
  class Empty final : public v1::MetricsService::Service {
   public:
    grpc::Status GetIngestStats(grpc::ServerContext*, const v1::IngestStatsRequest*,
                                v1::IngestStats*) override {
      return grpc::Status::OK;
    }
    grpc::Status GetConcentrations(grpc::ServerContext*, const v1::ConcentrationsRequest* req,
                                   v1::ConcentrationsResponse* out) override {
      absl::MutexLock lock(&mu_);
      for (const v1::ConcentrationRequest& item : req->items()) {
        windows_.insert(item.window());
        out->add_results()->mutable_concentration()->set_window(item.window());
      }
      return grpc::Status::OK;
    }
    grpc::Status GetTopEntities(grpc::ServerContext*, const v1::TopEntitiesRequest* req,
                                v1::TopEntities*) override {
      absl::MutexLock lock(&mu_);
      windows_.insert(req->window());
      return grpc::Status::OK;
    }
    std::set<std::string> windows() {
      absl::MutexLock lock(&mu_);
      return windows_;
    }

   private:
    absl::Mutex mu_;
    std::set<std::string> windows_ ABSL_GUARDED_BY(mu_);
  } empty;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&empty);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  Poller poller(NewDaemonChannel(absl::StrCat("127.0.0.1:", port)), options_, nullptr);
  EXPECT_TRUE(poller.PollOnce().ok());
  EXPECT_EQ(empty.windows(), (std::set<std::string>{"week:current", "trailing:4", "all"}));
  size_t hhi = 0;
  size_t shares = 0;
  for (const auto& f : poller.Collect()) {
    if (f.name == "hubmetrics_hhi") hhi = f.metric.size();
    if (f.name == "hubmetrics_attribute_share") {
      shares = f.metric.size();
      for (const auto& m : f.metric) {
        EXPECT_EQ(m.label.back().value, kOtherEntity);  // only the rest, at 0
        EXPECT_EQ(m.gauge.value, 0);
      }
    }
    EXPECT_NE(f.name, "hubmetrics_watermark_timestamp_seconds");
  }
  EXPECT_EQ(hhi, ViewSeries());
  EXPECT_EQ(shares, options_.share_views.size() * options_.share_windows.size());
  server->Shutdown();
}

}  // namespace
}  // namespace hubmetrics::exporter
