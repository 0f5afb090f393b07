// Tests of the gRPC edge over a real in-process server on 127.0.0.1:0.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "lib/api/grpc_server.h"
#include "lib/api/metrics_backend.h"
#include "lib/base/status_macros.h"
#include "lib/base/thread_priority.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

namespace hubmetrics {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// A backend whose answers, failures and version the test sets.
class FakeMetricsBackend final : public MetricsBackend {
 public:
  // Every query but GetIngestStats returns `status` while it is not OK.
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  // What GetConcentration answers (with the request's view and window copied in).
  void SetValue(const v1::Concentration& value) {
    absl::MutexLock lock(&mu_);
    value_ = value;
  }
  void BumpVersion() {
    absl::MutexLock lock(&mu_);
    ++version_;
  }
  void SetStats(const v1::IngestStats& stats) {
    absl::MutexLock lock(&mu_);
    stats_ = stats;
  }
  // Whether GetConcentrationNow answers (as GetConcentration would) or
  // returns nullopt; off by default.
  void SetAnswersNow(bool answers_now) {
    absl::MutexLock lock(&mu_);
    answers_now_ = answers_now;
  }
  // While held, GetTopEntities waits (as a query waits for a batch).
  void HoldTopEntities(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_top_entities_ = hold;
  }
  // Calls of GetConcentration and GetTopEntities so far, and how many
  // GetTopEntities are held now.
  int concentration_calls() const {
    absl::MutexLock lock(&mu_);
    return concentration_calls_;
  }
  int batch_calls() const {
    absl::MutexLock lock(&mu_);
    return batch_calls_;
  }
  int top_entities_calls() const {
    absl::MutexLock lock(&mu_);
    return top_entities_calls_;
  }
  int held_top_entities() const {
    absl::MutexLock lock(&mu_);
    return held_;
  }
  // Calls of WaitForStateVersionAbove so far, and how many are blocked in it now.
  int wait_calls() const {
    absl::MutexLock lock(&mu_);
    return wait_calls_;
  }
  int waiters() const {
    absl::MutexLock lock(&mu_);
    return waiters_;
  }

  absl::StatusOr<v1::Concentration> GetConcentration(
      const v1::ConcentrationRequest& request) const override {
    absl::MutexLock lock(&mu_);
    ++concentration_calls_;
    return Answer(request);
  }
  std::optional<absl::StatusOr<v1::Concentration>> GetConcentrationNow(
      const v1::ConcentrationRequest& request) const override {
    absl::MutexLock lock(&mu_);
    if (!answers_now_) return std::nullopt;
    return Answer(request);
  }
  // Items answered as GetConcentration (or GetConcentrationNow) answers
  // them; more than kMaxItems fail the whole call, as the engine's do.
  static constexpr int kMaxItems = 1024;
  absl::StatusOr<ConcentrationAnswers> GetConcentrations(
      const v1::ConcentrationsRequest& request) const override {
    absl::MutexLock lock(&mu_);
    ++batch_calls_;
    return Answers(request);
  }
  std::optional<absl::StatusOr<ConcentrationAnswers>> GetConcentrationsNow(
      const v1::ConcentrationsRequest& request) const override {
    absl::MutexLock lock(&mu_);
    if (!answers_now_ && request.items_size() <= kMaxItems) return std::nullopt;
    return Answers(request);
  }
  absl::StatusOr<v1::ConcentrationSeries> GetConcentrationSeries(
      const v1::ConcentrationSeriesRequest& request) const override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(Check(request.view()));
    v1::ConcentrationSeries out;
    for (const std::string& week : {request.from_week(), request.to_week()}) {
      v1::Concentration* p = out.add_points();
      *p = value_;
      *p->mutable_view() = request.view();
      p->set_window("week:" + week);
    }
    return out;
  }
  absl::StatusOr<v1::ShareSeries> GetShareSeries(
      const v1::ShareSeriesRequest& request) const override {
    if (request.view().level() != "developer") {
      return absl::InvalidArgumentError("fake: only developer");
    }
    v1::ShareSeries out;
    out.set_from_week(request.from_week());
    return out;
  }
  absl::StatusOr<v1::ConcentrationChange> ExplainChange(
      const v1::ExplainChangeRequest& request) const override {
    if (request.from_window().empty()) return absl::InvalidArgumentError("fake: from_window");
    v1::ConcentrationChange out;
    *out.mutable_view() = request.view();
    out.mutable_before()->set_window(request.from_window());
    out.mutable_after()->set_window(request.to_window());
    out.add_top_movers()->set_entity("a");
    return out;
  }
  absl::StatusOr<v1::TopEntities> GetTopEntities(
      const v1::TopEntitiesRequest& request) const override {
    absl::MutexLock lock(&mu_);
    ++top_entities_calls_;
    ++held_;
    auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_top_entities_; };
    mu_.Await(absl::Condition(&released));
    --held_;
    RETURN_IF_ERROR(Check(request.view()));
    v1::TopEntities out;
    *out.mutable_view() = request.view();
    out.set_window(request.window());
    out.set_total_downloads(value_.total_downloads());
    for (uint32_t i = 0; i < request.k(); ++i) {
      v1::EntityShare* e = out.add_top();
      e->set_entity(absl::StrCat("entity-", i));
      e->set_rank(i + 1);
    }
    return out;
  }
  absl::StatusOr<v1::EntityReport> GetEntity(const v1::EntityRequest& request) const override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(Check(request.view()));
    v1::EntityReport out;
    *out.mutable_view() = request.view();
    out.set_window(request.window());
    out.mutable_entity()->set_entity(request.entity());
    out.mutable_entity()->set_downloads(7);
    return out;
  }
  v1::IngestStats GetIngestStats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }
  uint64_t StateVersion() const override {
    absl::MutexLock lock(&mu_);
    return version_;
  }
  uint64_t WaitForStateVersionAbove(uint64_t seen, absl::Time deadline) const override {
    absl::MutexLock lock(&mu_);
    ++wait_calls_;
    ++waiters_;
    auto moved = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return version_ > seen; };
    mu_.AwaitWithDeadline(absl::Condition(&moved), deadline);
    --waiters_;
    return version_;
  }

 private:
  absl::StatusOr<v1::Concentration> Answer(const v1::ConcentrationRequest& request) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(Check(request.view()));
    v1::Concentration out = value_;
    *out.mutable_view() = request.view();
    out.set_window(request.window());
    return out;
  }
  absl::StatusOr<ConcentrationAnswers> Answers(const v1::ConcentrationsRequest& request) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (request.items_size() > kMaxItems) return absl::InvalidArgumentError("fake: too many items");
    ConcentrationAnswers out;
    for (const v1::ConcentrationRequest& item : request.items()) out.push_back(Answer(item));
    return out;
  }
  // A stand-in for the engine's validation: only the level is checked.
  absl::Status Check(const v1::View& view) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!failure_.ok()) return failure_;
    if (view.level() != "model" && view.level() != "developer" && view.level() != "country") {
      return absl::InvalidArgumentError("level must be one of model, developer, country");
    }
    return absl::OkStatus();
  }
  mutable absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  v1::Concentration value_ ABSL_GUARDED_BY(mu_);
  v1::IngestStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 1;
  mutable int wait_calls_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool answers_now_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_top_entities_ ABSL_GUARDED_BY(mu_) = false;
  mutable int concentration_calls_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int batch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int top_entities_calls_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int held_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::Concentration Value(uint64_t total) {
  v1::Concentration c;
  c.set_total_downloads(total);
  c.set_entities(3);
  c.set_hhi(0.5);
  c.set_gini(0.25);
  v1::TopShare* t = c.add_top_shares();
  t->set_k(1);
  t->set_share(0.75);
  c.mutable_watermark()->set_seconds(1741000000);
  return c;
}

v1::ConcentrationRequest Request(const std::string& level = "model") {
  v1::ConcentrationRequest r;
  r.mutable_view()->set_level(level);
  r.mutable_view()->set_filter("all");
  r.mutable_view()->set_attribution("direct");
  r.set_window("trailing:4");
  r.add_top_k(1);
  return r;
}

// What the edge must deliver for Request() when the backend holds `value`.
v1::Concentration Expected(uint64_t total) {
  v1::Concentration c = Value(total);
  *c.mutable_view() = Request().view();
  c.set_window(Request().window());
  return c;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_.SetValue(Value(100));
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start("127.0.0.1:0", &backend_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::MetricsService::NewStub(channel_);
  }

  // A context that turns a hang into a failed test.
  static void Limit(grpc::ClientContext* ctx, absl::Duration d = absl::Seconds(20)) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
  }

  FakeMetricsBackend backend_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MetricsService::Stub> stub_;
};

TEST_F(ApiTest, UnaryCallsPassRequestsAndAnswersThrough) {
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::Concentration got;
    ASSERT_TRUE(stub_->GetConcentration(&ctx, Request(), &got).ok());
    EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(100))) << got.DebugString();
  }
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::ConcentrationSeriesRequest req;
    *req.mutable_view() = Request().view();
    req.set_from_week("2025-W01");
    req.set_to_week("2025-W02");
    v1::ConcentrationSeries got;
    ASSERT_TRUE(stub_->GetConcentrationSeries(&ctx, req, &got).ok());
    ASSERT_EQ(got.points_size(), 2);
    EXPECT_EQ(got.points(0).window(), "week:2025-W01");
    EXPECT_EQ(got.points(1).window(), "week:2025-W02");
    EXPECT_EQ(got.points(1).total_downloads(), 100u);
  }
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::ShareSeriesRequest req;
    req.mutable_view()->set_level("developer");
    req.set_from_week("2025-W03");
    v1::ShareSeries got;
    ASSERT_TRUE(stub_->GetShareSeries(&ctx, req, &got).ok());
    EXPECT_EQ(got.from_week(), "2025-W03");
    grpc::ClientContext bad;
    Limit(&bad);
    req.mutable_view()->set_level("size");
    EXPECT_EQ(stub_->GetShareSeries(&bad, req, &got).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::ExplainChangeRequest req;
    req.mutable_view()->set_level("developer");
    req.set_from_window("week:2025-W01");
    req.set_to_window("week:2025-W02");
    v1::ConcentrationChange got;
    ASSERT_TRUE(stub_->ExplainChange(&ctx, req, &got).ok());
    EXPECT_EQ(got.before().window(), "week:2025-W01");
    EXPECT_EQ(got.after().window(), "week:2025-W02");
    ASSERT_EQ(got.top_movers_size(), 1);
    grpc::ClientContext bad;
    Limit(&bad);
    req.clear_from_window();
    EXPECT_EQ(stub_->ExplainChange(&bad, req, &got).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::TopEntitiesRequest req;
    *req.mutable_view() = Request().view();
    req.set_k(3);
    v1::TopEntities got;
    ASSERT_TRUE(stub_->GetTopEntities(&ctx, req, &got).ok());
    ASSERT_EQ(got.top_size(), 3);
    EXPECT_EQ(got.top(2).entity(), "entity-2");
    EXPECT_EQ(got.top(2).rank(), 3u);
  }
  {
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::EntityRequest req;
    *req.mutable_view() = Request().view();
    req.set_entity("org/some-model");
    v1::EntityReport got;
    ASSERT_TRUE(stub_->GetEntity(&ctx, req, &got).ok());
    EXPECT_EQ(got.entity().entity(), "org/some-model");
    EXPECT_EQ(got.entity().downloads(), 7u);
  }
  {
    v1::IngestStats stats;
    stats.set_events_read(12);
    stats.set_rejected(2);
    v1::RejectCount* r = stats.add_rejected_by_reason();
    r->set_reason("too_late");
    r->set_count(2);
    stats.set_source_exhausted(true);
    backend_.SetStats(stats);
    // Stats have no failure mode: even a failing backend answers them.
    backend_.FailWith(absl::UnavailableError("down"));
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::IngestStats got;
    ASSERT_TRUE(stub_->GetIngestStats(&ctx, v1::IngestStatsRequest(), &got).ok());
    // The edge adds its own limits and counts (the defaults, nothing refused).
    EXPECT_EQ(got.api().max_watch_streams(), 256u);
    EXPECT_EQ(got.api().max_queued_calls(), 1024u);
    EXPECT_EQ(got.api().watch_streams_refused() + got.api().queued_calls_refused(), 0u);
    got.clear_api();
    EXPECT_TRUE(MessageDifferencer::Equals(got, stats)) << got.DebugString();
  }
}

TEST_F(ApiTest, EveryBackendStatusCodeMapsToTheSameGrpcCodeWithItsMessage) {
  // The oracle: the gRPC status code documentation, code by code.
  const std::vector<std::pair<absl::StatusCode, grpc::StatusCode>> table = {
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [absl_code, grpc_code] : table) {
    const std::string message = absl::StrCat("backend says ", absl::StatusCodeToString(absl_code));
    backend_.FailWith(absl::Status(absl_code, message));
    std::vector<std::pair<std::string, grpc::Status>> got;
    for (const bool now : {false, true}) {
      backend_.SetAnswersNow(now);
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::Concentration out;
      got.emplace_back(now ? "GetConcentration (now)" : "GetConcentration",
                       stub_->GetConcentration(&ctx, Request(), &out));
    }
    // A batch's item carries the error the single call ends with; the call is OK.
    for (const bool now : {false, true}) {
      backend_.SetAnswersNow(now);
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::ConcentrationsRequest req;
      *req.add_items() = Request();
      v1::ConcentrationsResponse out;
      ASSERT_TRUE(stub_->GetConcentrations(&ctx, req, &out).ok());
      ASSERT_EQ(out.results_size(), 1);
      ASSERT_TRUE(out.results(0).has_error()) << out.DebugString();
      got.emplace_back(now ? "GetConcentrations item (now)" : "GetConcentrations item",
                       grpc::Status(static_cast<grpc::StatusCode>(out.results(0).error().code()),
                                    out.results(0).error().message()));
    }
    {
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::ConcentrationSeriesRequest req;
      v1::ConcentrationSeries out;
      got.emplace_back("GetConcentrationSeries", stub_->GetConcentrationSeries(&ctx, req, &out));
    }
    {
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::TopEntitiesRequest req;
      v1::TopEntities out;
      got.emplace_back("GetTopEntities", stub_->GetTopEntities(&ctx, req, &out));
    }
    {
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::EntityRequest req;
      v1::EntityReport out;
      got.emplace_back("GetEntity", stub_->GetEntity(&ctx, req, &out));
    }
    {
      grpc::ClientContext ctx;
      Limit(&ctx);
      std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
          stub_->WatchConcentration(&ctx, Request());
      v1::Concentration out;
      EXPECT_FALSE(reader->Read(&out));
      got.emplace_back("WatchConcentration", reader->Finish());
    }
    for (const auto& [rpc, status] : got) {
      EXPECT_EQ(status.error_code(), grpc_code) << rpc << " " << message;
      EXPECT_EQ(status.error_message(), message) << rpc;
    }
  }
}

TEST_F(ApiTest, GetConcentrationUsesTheEngineOnlyWhenTheBackendCannotAnswerNow) {
  for (const bool now : {true, false}) {
    backend_.SetAnswersNow(now);
    const int before = backend_.concentration_calls();
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::Concentration got;
    ASSERT_TRUE(stub_->GetConcentration(&ctx, Request(), &got).ok());
    EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(100))) << got.DebugString();
    EXPECT_EQ(backend_.concentration_calls() - before, now ? 0 : 1) << "now=" << now;
  }
}

TEST_F(ApiTest, GetConcentrationsAnswersEachItemAsGetConcentrationInOrder) {
  v1::ConcentrationsRequest req;
  *req.add_items() = Request("model");
  *req.add_items() = Request("galaxy");  // invalid: an error of its own
  *req.add_items() = Request("developer");
  *req.add_items() = Request("country");
  *req.add_items() = Request("model");
  for (const bool now : {true, false}) {
    backend_.SetAnswersNow(now);
    const int before = backend_.batch_calls();
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::ConcentrationsResponse got;
    const grpc::Status status = stub_->GetConcentrations(&ctx, req, &got);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // Answered on the gRPC thread when the backend can answer every item now.
    EXPECT_EQ(backend_.batch_calls() - before, now ? 0 : 1) << "now=" << now;
    ASSERT_EQ(got.results_size(), req.items_size());
    for (int i = 0; i < req.items_size(); ++i) {
      grpc::ClientContext single_ctx;
      Limit(&single_ctx);
      v1::Concentration single;
      const grpc::Status single_status =
          stub_->GetConcentration(&single_ctx, req.items(i), &single);
      const v1::ConcentrationResult& r = got.results(i);
      if (single_status.ok()) {
        ASSERT_TRUE(r.has_concentration()) << "item " << i << ": " << r.DebugString();
        EXPECT_TRUE(MessageDifferencer::Equals(r.concentration(), single)) << "item " << i;
      } else {
        ASSERT_TRUE(r.has_error()) << "item " << i;
        EXPECT_EQ(r.error().code(), static_cast<int32_t>(single_status.error_code()));
        EXPECT_EQ(r.error().message(), single_status.error_message());
      }
    }
    EXPECT_EQ(got.results(1).error().code(), static_cast<int32_t>(grpc::INVALID_ARGUMENT));
    EXPECT_THAT(got.results(1).error().message(), HasSubstr("model, developer, country"));
    EXPECT_EQ(got.results(2).concentration().view().level(), "developer");
  }
}

TEST_F(ApiTest, AnEmptyBatchIsAnEmptyAnswerAndOneOverTheLimitFailsAsAWhole) {
  for (const bool now : {true, false}) {
    backend_.SetAnswersNow(now);
    {
      grpc::ClientContext ctx;
      Limit(&ctx);
      v1::ConcentrationsResponse got;
      ASSERT_TRUE(stub_->GetConcentrations(&ctx, v1::ConcentrationsRequest(), &got).ok());
      EXPECT_EQ(got.results_size(), 0);
    }
    v1::ConcentrationsRequest req;
    for (int i = 0; i <= FakeMetricsBackend::kMaxItems; ++i) *req.add_items() = Request();
    grpc::ClientContext ctx;
    Limit(&ctx);
    v1::ConcentrationsResponse got;
    const grpc::Status status = stub_->GetConcentrations(&ctx, req, &got);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), "fake: too many items");
    EXPECT_EQ(got.results_size(), 0);
  }
}

// Sends `n` GetTopEntities that the backend holds; waits until it holds them all.
class HeldCalls {
 public:
  HeldCalls(v1::MetricsService::Stub* stub, int n, absl::Duration deadline) {
    for (int i = 0; i < n; ++i) {
      calls_.push_back(std::make_unique<Call>());
      Call* c = calls_.back().get();
      c->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
      c->request.mutable_view()->set_level("model");
      c->request.set_k(1);
      stub->async()->GetTopEntities(&c->ctx, &c->request, &c->response, [c](grpc::Status s) {
        c->status = std::move(s);
        c->done.Notify();
      });
    }
  }
  // Waits for every call's end; their statuses.
  std::vector<grpc::Status> Wait() {
    std::vector<grpc::Status> out;
    for (auto& c : calls_) {
      c->done.WaitForNotification();
      out.push_back(c->status);
    }
    return out;
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::TopEntitiesRequest request;
    v1::TopEntities response;
    grpc::Status status;
    absl::Notification done;
  };
  std::vector<std::unique_ptr<Call>> calls_;
};

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

TEST_F(ApiTest, QueriesWaitingForTheEngineDoNotHoldUpAnswersGivenNow) {
  backend_.SetAnswersNow(true);
  backend_.HoldTopEntities(true);
  // Every blocking-query thread busy, and one more call queued behind them.
  const int n = MetricsServiceImpl::kBlockingQueryThreads + 1;
  HeldCalls held(stub_.get(), n, absl::Seconds(20));
  ASSERT_TRUE(WaitUntil(
      [&] { return backend_.held_top_entities() == MetricsServiceImpl::kBlockingQueryThreads; }));
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    Limit(&ctx, absl::Seconds(5));
    v1::Concentration got;
    const grpc::Status s = stub_->GetConcentration(&ctx, Request(), &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(100)));
  }
  backend_.HoldTopEntities(false);
  for (const grpc::Status& s : held.Wait()) EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(backend_.top_entities_calls(), n);
}

TEST_F(ApiTest, ACallWhoseClientLeftWhileItWaitedForAThreadIsNotComputed) {
  backend_.HoldTopEntities(true);
  const int busy = MetricsServiceImpl::kBlockingQueryThreads;
  HeldCalls held(stub_.get(), busy, absl::Seconds(20));
  ASSERT_TRUE(WaitUntil([&] { return backend_.held_top_entities() == busy; }));
  // Queued behind the held calls; its deadline passes while it waits.
  HeldCalls late(stub_.get(), 1, absl::Milliseconds(100));
  const std::vector<grpc::Status> late_status = late.Wait();
  EXPECT_EQ(late_status[0].error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server's deadline for the call is the client's plus the time the
  // request took to arrive: let that pass too before a thread frees up.
  absl::SleepFor(absl::Milliseconds(100));
  backend_.HoldTopEntities(false);
  for (const grpc::Status& s : held.Wait()) EXPECT_TRUE(s.ok()) << s.error_message();
  // The server saw the late call end: shutting down waits for every call.
  server_->Shutdown();
  EXPECT_EQ(backend_.top_entities_calls(), busy);
}

// A MetricsServiceImpl with the given limits on its own loopback server, so
// that the test can read the service's counts (Stats()) while calls are held.
class LimitedServer {
 public:
  LimitedServer(const MetricsBackend* backend, MetricsServiceOptions options)
      : service_(backend, options) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    EXPECT_GT(port, 0);
    stub_ = v1::MetricsService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  ~LimitedServer() {
    service_.BeginShutdown();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    server_->Wait();
  }
  MetricsServiceImpl& service() { return service_; }
  v1::MetricsService::Stub* stub() { return stub_.get(); }

 private:
  MetricsServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::MetricsService::Stub> stub_;
};

grpc::Status TopEntitiesCall(v1::MetricsService::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::TopEntitiesRequest req;
  req.mutable_view()->set_level("model");
  req.set_k(1);
  v1::TopEntities out;
  return stub->GetTopEntities(&ctx, req, &out);
}

TEST(ApiLimitsTest, ACallOverTheQueueLimitIsRefusedAtOnceAndCountedThenCallsAreAcceptedAgain) {
  FakeMetricsBackend backend;
  backend.SetValue(Value(100));
  backend.SetAnswersNow(true);
  constexpr int kMaxQueued = 2;
  LimitedServer server(&backend, MetricsServiceOptions{.max_queued_calls = kMaxQueued});
  backend.HoldTopEntities(true);
  // Released however the test ends, before the server waits for the calls.
  absl::Cleanup release = [&] { backend.HoldTopEntities(false); };
  // Every query thread busy with a held call, then the queue full. One call at
  // a time: a call counts as queued until a thread takes it.
  const int threads = MetricsServiceImpl::kBlockingQueryThreads;
  std::vector<std::unique_ptr<HeldCalls>> running;
  for (int i = 1; i <= threads; ++i) {
    running.push_back(std::make_unique<HeldCalls>(server.stub(), 1, absl::Seconds(20)));
    ASSERT_TRUE(WaitUntil([&] { return backend.held_top_entities() == i; }));
  }
  std::vector<std::unique_ptr<HeldCalls>> queued;
  for (int i = 1; i <= kMaxQueued; ++i) {
    queued.push_back(std::make_unique<HeldCalls>(server.stub(), 1, absl::Seconds(20)));
    ASSERT_TRUE(WaitUntil([&] { return server.service().Stats().queued_calls() == uint32_t(i); }));
  }

  // Call N+1 (and a stats call, which takes the same queue) is refused, and says why.
  const grpc::Status refused = TopEntitiesCall(server.stub());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_queued_calls"));
  EXPECT_THAT(refused.error_message(), HasSubstr(absl::StrCat(kMaxQueued)));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::IngestStats stats;
    EXPECT_EQ(server.stub()->GetIngestStats(&ctx, v1::IngestStatsRequest(), &stats).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_EQ(server.service().Stats().queued_calls_refused(), 2u);
  // Answers that need no query thread are not held up by the full queue.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::Concentration got;
    EXPECT_TRUE(server.stub()->GetConcentration(&ctx, Request(), &got).ok());
  }
  v1::ConcentrationsRequest batch;
  *batch.add_items() = Request();
  *batch.add_items() = Request("developer");
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::ConcentrationsResponse got;
    EXPECT_TRUE(server.stub()->GetConcentrations(&ctx, batch, &got).ok());
    EXPECT_EQ(got.results_size(), 2);
  }
  // A batch that needs a query thread takes the queue like any other call.
  backend.SetAnswersNow(false);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::ConcentrationsResponse got;
    const grpc::Status s = server.stub()->GetConcentrations(&ctx, batch, &got);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("--max_queued_calls"));
  }
  backend.SetAnswersNow(true);
  EXPECT_EQ(server.service().Stats().queued_calls_refused(), 3u);
  EXPECT_EQ(backend.top_entities_calls(), threads);  // the refused call never reached it
  EXPECT_EQ(backend.batch_calls(), 0);

  backend.HoldTopEntities(false);
  for (auto* calls : {&running, &queued}) {
    for (auto& c : *calls) {
      for (const grpc::Status& s : c->Wait()) EXPECT_TRUE(s.ok()) << s.error_message();
    }
  }
  // Accepted again once the queue has drained; the stats report the limit and the refusals.
  EXPECT_TRUE(TopEntitiesCall(server.stub()).ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::IngestStats stats;
  ASSERT_TRUE(server.stub()->GetIngestStats(&ctx, v1::IngestStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.api().max_queued_calls(), uint32_t{kMaxQueued});
  EXPECT_EQ(stats.api().queued_calls_refused(), 3u);
  EXPECT_EQ(stats.api().queued_calls(), 0u);
  EXPECT_EQ(stats.api().watch_streams_refused(), 0u);
  EXPECT_EQ(backend.top_entities_calls(), threads + kMaxQueued + 1);
}

TEST(ApiLimitsTest, AWatchOverTheStreamLimitIsRefusedAndCountedThenAcceptedOnceOneEnds) {
  FakeMetricsBackend backend;
  backend.SetValue(Value(100));
  constexpr int kMaxWatches = 2;
  LimitedServer server(&backend, MetricsServiceOptions{.max_watch_streams = kMaxWatches});
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader;
    v1::Concentration first;
  };
  auto open = [&](Watch* w) {
    w->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    w->reader = server.stub()->WatchConcentration(&w->ctx, Request());
    return w->reader->Read(&w->first);
  };
  // A stream counts from before its first message: these two are open.
  Watch a, b;
  ASSERT_TRUE(open(&a));
  ASSERT_TRUE(open(&b));
  EXPECT_EQ(server.service().Stats().watch_streams(), uint32_t{kMaxWatches});

  Watch c;
  EXPECT_FALSE(open(&c));
  const grpc::Status refused = c.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_watch_streams"));
  EXPECT_THAT(refused.error_message(), HasSubstr(absl::StrCat(kMaxWatches)));
  v1::ApiStats api = server.service().Stats();
  EXPECT_EQ(api.watch_streams_refused(), 1u);
  EXPECT_EQ(api.max_watch_streams(), uint32_t{kMaxWatches});
  EXPECT_EQ(api.queued_calls_refused(), 0u);

  // The open streams are unaffected: they still deliver changes.
  backend.SetValue(Value(101));
  backend.BumpVersion();
  v1::Concentration got;
  ASSERT_TRUE(a.reader->Read(&got));
  EXPECT_EQ(got.total_downloads(), 101u);

  // Once a stream ends, a new one is accepted.
  a.ctx.TryCancel();
  while (a.reader->Read(&got)) {
  }
  EXPECT_EQ(a.reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(WaitUntil([&] { return server.service().Stats().watch_streams() == 1u; }));
  Watch d;
  ASSERT_TRUE(open(&d));
  EXPECT_EQ(d.first.total_downloads(), 101u);
  EXPECT_EQ(server.service().Stats().watch_streams_refused(), 1u);
  b.ctx.TryCancel();
  d.ctx.TryCancel();
}

TEST(ApiLimitsTest, GrpcServerPassesTheLimitsToTheService) {
  FakeMetricsBackend backend;
  backend.SetValue(Value(100));
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(
      "127.0.0.1:0", &backend, GrpcServerOptions{.service = {.max_watch_streams = 1}});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::MetricsService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext first_ctx;
  first_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto first = stub->WatchConcentration(&first_ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(first->Read(&got));
  grpc::ClientContext second_ctx;
  second_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto second = stub->WatchConcentration(&second_ctx, Request());
  EXPECT_FALSE(second->Read(&got));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::IngestStats stats;
  ASSERT_TRUE(stub->GetIngestStats(&ctx, v1::IngestStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.api().max_watch_streams(), 1u);
  EXPECT_EQ(stats.api().watch_streams(), 1u);
  EXPECT_EQ(stats.api().watch_streams_refused(), 1u);
  EXPECT_EQ(stats.api().max_queued_calls(), 1024u);  // the default
  first_ctx.TryCancel();
}

TEST_F(ApiTest, WatchWithInvalidRequestFailsAtOnce) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request("galaxy"));
  v1::Concentration out;
  EXPECT_FALSE(reader->Read(&out));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model, developer, country"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(ApiTest, WatchSendsTheCurrentValueAtOnceThenEachChange) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(100))) << got.DebugString();

  backend_.SetValue(Value(101));
  backend_.BumpVersion();
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(101))) << got.DebugString();

  backend_.SetValue(Value(250));
  backend_.BumpVersion();
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_TRUE(MessageDifferencer::Equals(got, Expected(250))) << got.DebugString();
  ctx.TryCancel();
}

TEST_F(ApiTest, WatchSendsNothingWhenTheVersionMovesButTheValueDoesNot) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(reader->Read(&got));
  ASSERT_EQ(got.total_downloads(), 100u);
  // Version moves several times, spread over more than the rate limit, value unchanged.
  for (int i = 0; i < 4; ++i) {
    backend_.BumpVersion();
    absl::SleepFor(absl::Milliseconds(80));
  }
  backend_.SetValue(Value(102));
  backend_.BumpVersion();
  // A duplicate of the first value would arrive first.
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.total_downloads(), 102u);
  ctx.TryCancel();
}

TEST_F(ApiTest, WatchSendsAtMostOneMessagePer100Ms) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(reader->Read(&got));
  std::vector<absl::Time> received = {absl::Now()};
  std::vector<uint64_t> totals = {got.total_downloads()};

  // A new value every ~2 ms for 1.2 s: far more changes than may be sent.
  const absl::Duration busy = absl::Milliseconds(1200);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    const absl::Time end = absl::Now() + busy;
    for (uint64_t total = 1000; absl::Now() < end; ++total) {
      backend_.SetValue(Value(total));
      backend_.BumpVersion();
      absl::SleepFor(absl::Milliseconds(2));
    }
    done = true;
  });
  while (!done.load() && reader->Read(&got)) {
    received.push_back(absl::Now());
    totals.push_back(got.total_downloads());
  }
  writer.join();
  ctx.TryCancel();
  while (reader->Read(&got)) {
  }

  // Without a limit this would be hundreds; with it, about 12.
  EXPECT_GE(received.size(), 5u);
  EXPECT_LE(received.size(), 16u);
  for (size_t i = 1; i < received.size(); ++i) {
    // Sent >= 100 ms apart; receive times may shift by loopback scheduling
    // jitter, hence the slack.
    EXPECT_GE(received[i] - received[i - 1], absl::Milliseconds(85)) << "message " << i;
    EXPECT_GT(totals[i], totals[i - 1]) << "message " << i;
  }
}

TEST_F(ApiTest, WatchEndsWhenTheClientCancels) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(reader->Read(&got));
  // The open watch polls the backend...
  const int calls_before = backend_.wait_calls();
  absl::SleepFor(absl::Milliseconds(350));
  EXPECT_GT(backend_.wait_calls(), calls_before);

  ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&got));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // ...and stops once the client is gone: no call for 400 ms (it polls every 100 ms).
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  int last = backend_.wait_calls();
  absl::Time stable_since = absl::Now();
  bool stopped = false;
  while (absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    if (const int calls = backend_.wait_calls(); calls != last) {
      last = calls;
      stable_since = absl::Now();
    } else if (absl::Now() - stable_since >= absl::Milliseconds(400) && backend_.waiters() == 0) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped) << "the server kept watching after the client cancelled";
}

TEST_F(ApiTest, ShutdownEndsOpenWatchesPromptly) {
  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      stub_->WatchConcentration(&ctx, Request());
  v1::Concentration got;
  ASSERT_TRUE(reader->Read(&got));
  const absl::Time start = absl::Now();
  server_->Shutdown(absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3)) << "shutdown waited for the watch deadline";
  EXPECT_FALSE(reader->Read(&got));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  server_->Shutdown();  // a second call does nothing
}

// grpc.health.v1.Health/Check by hand: HealthCheckRequest{string service = 1},
// HealthCheckResponse{ServingStatus status = 1} with UNKNOWN 0, SERVING 1,
// NOT_SERVING 2 (grpc/src/proto/grpc/health/v1/health.proto).
grpc::Status HealthCheck(grpc::Channel* channel, const std::string& service, int* status) {
  google::protobuf::UnknownFieldSet request;
  request.AddLengthDelimited(1, service);
  std::string bytes;
  request.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer in(&slice, 1);
  grpc::ByteBuffer out;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status s = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel,
      grpc::internal::RpcMethod("/grpc.health.v1.Health/Check",
                                grpc::internal::RpcMethod::NORMAL_RPC),
      &ctx, in, &out);
  if (!s.ok()) return s;
  std::vector<grpc::Slice> slices;
  (void)out.Dump(&slices);
  std::string response;
  for (const grpc::Slice& sl : slices) response.append(sl.begin(), sl.end());
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(response)) return grpc::Status(grpc::StatusCode::DATA_LOSS, "bad");
  *status = 0;
  for (int i = 0; i < fields.field_count(); ++i) {
    if (fields.field(i).number() == 1) *status = static_cast<int>(fields.field(i).varint());
  }
  return s;
}

TEST_F(ApiTest, HealthAnswersServingUntilToldOtherwise) {
  constexpr int kServing = 1;
  constexpr int kNotServing = 2;
  for (const std::string service : {"", "hubmetrics.v1.MetricsService"}) {
    int status = -1;
    ASSERT_TRUE(HealthCheck(channel_.get(), service, &status).ok()) << "'" << service << "'";
    EXPECT_EQ(status, kServing) << "'" << service << "'";
  }
  int status = -1;
  EXPECT_EQ(HealthCheck(channel_.get(), "no.such.Service", &status).error_code(),
            grpc::StatusCode::NOT_FOUND);

  server_->SetServing(false);
  for (const std::string service : {"", "hubmetrics.v1.MetricsService"}) {
    ASSERT_TRUE(HealthCheck(channel_.get(), service, &status).ok());
    EXPECT_EQ(status, kNotServing) << "'" << service << "'";
  }
  server_->SetServing(true);
  ASSERT_TRUE(HealthCheck(channel_.get(), "", &status).ok());
  EXPECT_EQ(status, kServing);
}

TEST_F(ApiTest, ReflectionListsTheMetricsService) {
  // The reflection messages are the ones the gRPC reflection library
  // registered in the generated pool; reached through protobuf reflection.
  namespace pb = google::protobuf;
  const pb::Descriptor* req_type = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
      "grpc.reflection.v1alpha.ServerReflectionRequest");
  const pb::Descriptor* resp_type = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
      "grpc.reflection.v1alpha.ServerReflectionResponse");
  ASSERT_NE(req_type, nullptr);
  ASSERT_NE(resp_type, nullptr);
  std::unique_ptr<pb::Message> request(
      pb::MessageFactory::generated_factory()->GetPrototype(req_type)->New());
  std::unique_ptr<pb::Message> response(
      pb::MessageFactory::generated_factory()->GetPrototype(resp_type)->New());
  request->GetReflection()->SetString(request.get(), req_type->FindFieldByName("list_services"),
                                      "*");

  grpc::ClientContext ctx;
  Limit(&ctx);
  std::unique_ptr<grpc::ClientReaderWriter<pb::Message, pb::Message>> stream(
      grpc::internal::ClientReaderWriterFactory<pb::Message, pb::Message>::Create(
          channel_.get(),
          grpc::internal::RpcMethod(
              "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              grpc::internal::RpcMethod::BIDI_STREAMING),
          &ctx));
  ASSERT_TRUE(stream->Write(*request));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(stream->Read(response.get()));
  EXPECT_TRUE(stream->Finish().ok());

  const pb::FieldDescriptor* list_field = resp_type->FindFieldByName("list_services_response");
  ASSERT_TRUE(response->GetReflection()->HasField(*response, list_field))
      << response->DebugString();
  const pb::Message& list = response->GetReflection()->GetMessage(*response, list_field);
  const pb::FieldDescriptor* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const pb::Message& s = list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(s.GetReflection()->GetString(s, s.GetDescriptor()->FindFieldByName("name")));
  }
  EXPECT_THAT(names, ::testing::Contains("hubmetrics.v1.MetricsService"));
}

TEST(GrpcServerTest, APortInUseIsUnavailableAndNamesTheAddress) {
  FakeMetricsBackend backend;
  absl::StatusOr<std::unique_ptr<GrpcServer>> first = GrpcServer::Start("127.0.0.1:0", &backend);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<GrpcServer>> second = GrpcServer::Start(address, &backend);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(address));
}

TEST(GrpcServerTest, AnEmptyAddressIsInvalid) {
  FakeMetricsBackend backend;
  EXPECT_EQ(GrpcServer::Start("", &backend).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcServerTest, ARealtimePriorityOutOfRangeIsInvalidAndServesNothing) {
  FakeMetricsBackend backend;
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start("127.0.0.1:0", &backend, GrpcServerOptions{.realtime_priority = 100});
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("1..99"));
}

TEST(GrpcServerTest, ARealtimeServerAnswersAndLeavesTheCallerTimeShared) {
  FakeMetricsBackend backend;
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start("127.0.0.1:0", &backend, GrpcServerOptions{.realtime_priority = 2});
  if (server.status().code() == absl::StatusCode::kPermissionDenied) {
    GTEST_SKIP() << "real-time scheduling not permitted here: " << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(CurrentThreadRealtimePriority(), 0);
  auto stub = v1::MetricsService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::IngestStats stats;
  EXPECT_TRUE(stub->GetIngestStats(&context, v1::IngestStatsRequest(), &stats).ok());
}

}  // namespace
}  // namespace hubmetrics
