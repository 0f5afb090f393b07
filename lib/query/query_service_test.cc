// QueryService's batch call against its single call: every item of a
// GetConcentrations answer must be what GetConcentration answers for it.
#include "lib/query/query_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/state/state_store.h"

namespace hubmetrics {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

std::string Event(const std::string& model, const std::string& user, const std::string& time) {
  return absl::StrCat(R"({"model_id":")", model, R"(","user_id":")", user, R"(","time":")", time,
                      R"("})");
}

v1::ConcentrationRequest Item(const std::string& level, const std::string& window,
                              const std::string& filter = "all",
                              const std::string& attribution = "direct",
                              const std::string& sample = "all",
                              const std::vector<uint32_t>& top_k = {}) {
  v1::ConcentrationRequest r;
  r.mutable_view()->set_level(level);
  r.mutable_view()->set_filter(filter);
  r.mutable_view()->set_attribution(attribution);
  r.mutable_view()->set_sample(sample);
  r.set_window(window);
  for (uint32_t k : top_k) r.add_top_k(k);
  return r;
}

class NoDeadLetters final : public DeadLetterSink {
 public:
  void Reject(const SourceRecord& /*record*/, const Rejection& /*rejection*/) override {}
  absl::Status Flush() override { return absl::OkStatus(); }
};

class QueryServiceTest : public ::testing::Test {
 protected:
  QueryServiceTest() : clock_(*ParseRfc3339("2025-03-30T00:00:00Z")) {}

  void SetUp() override {
    std::array<uint8_t, 16> key{};
    key[0] = 1;
    auto p = Pipeline::Open(PipelineOptions{}, std::make_unique<UnownedStateStore>(&store_),
                            &clock_, UserHasher(key));
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = *std::move(p);
    query_ = std::make_unique<QueryService>(pipeline_.get());
  }

  // Three weeks of downloads (2025-W10 .. W12, the watermark's), a catalog
  // with a derivation, countries, org types and sizes.
  void Ingest() {
    std::vector<std::string> lines;
    const char* days[] = {"2025-03-04", "2025-03-12", "2025-03-18", "2025-03-19"};
    const char* models[] = {"acme/base", "acme/base-ft", "bob/x", "carol/y", "gpt2"};
    int user = 0;
    for (int d = 0; d < 4; ++d) {
      for (int m = 0; m < 5; ++m) {
        for (int n = 0; n <= (m * 3 + d) % 7; ++n) {
          lines.push_back(Event(models[m], absl::StrCat("u", user++),
                                absl::StrCat(days[d], "T1", n % 10, ":00:00Z")));
        }
      }
    }
    std::vector<SourceRecord> records;
    for (const auto& l : lines) records.push_back(SourceRecord{l, "test", -1, 0});
    SourceOffset off{"file:test", 1};
    ASSERT_TRUE(pipeline_->IngestEvents(records, EventFormat::kJson, {&off, 1}, &sink_).ok());
    std::vector<CatalogRecord> catalog;
    auto model = [&](const std::string& id, const std::string& country, const std::string& org_type,
                     int64_t parameters, const std::string& base) {
      v1::ModelInfo info;
      info.set_model_id(id);
      info.set_country(country);
      info.set_org_type(org_type);
      info.set_parameters(parameters);
      if (!base.empty()) info.set_base_model(base);
      info.mutable_created_at()->set_seconds(1735689600);  // 2025-01-01
      catalog.push_back(CatalogRecord{id, info});
    };
    model("acme/base", "US", "company", 7000000000, "");
    model("acme/base-ft", "FR", "user", 7000000000, "acme/base");
    model("bob/x", "DE", "university", 300000000, "");
    model("carol/y", "US", "company", 50000000, "");
    ASSERT_TRUE(pipeline_->ApplyCatalog(catalog, {}).ok());
  }

  // Every item of `request` answered by the batch equals the single call's
  // answer (the message, or the error's code and message).
  void ExpectEachItemAsSingleCall(const v1::ConcentrationsRequest& request,
                                  const ConcentrationAnswers& answers) {
    ASSERT_EQ(answers.size(), static_cast<size_t>(request.items_size()));
    for (int i = 0; i < request.items_size(); ++i) {
      const v1::ConcentrationRequest& item = request.items(i);
      const std::string where = absl::StrCat("item ", i, ": ", item.ShortDebugString());
      const absl::StatusOr<v1::Concentration> single = query_->GetConcentration(item);
      const absl::StatusOr<v1::Concentration>& got = answers[static_cast<size_t>(i)];
      ASSERT_EQ(got.ok(), single.ok()) << where << " " << got.status() << " " << single.status();
      if (single.ok()) {
        EXPECT_TRUE(MessageDifferencer::Equals(*got, *single)) << where << "\n"
                                                               << got->DebugString() << "\n"
                                                               << single->DebugString();
      } else {
        EXPECT_EQ(got.status(), single.status()) << where;
      }
    }
  }

  // Live items (live views, live windows, default ks), items that need the
  // engine (other windows, views, samples, ks) and invalid ones, mixed.
  static v1::ConcentrationsRequest Mixed() {
    v1::ConcentrationsRequest r;
    *r.add_items() = Item("model", "all");
    *r.add_items() = Item("developer", "week:2025-W10");  // a past week: on demand
    *r.add_items() = Item("planet", "all");               // invalid level
    *r.add_items() = Item("country", "trailing:4", "rolling_1y", "recursive");
    *r.add_items() = Item("developer", "range:2025-W10..2025-W11");
    *r.add_items() = Item("model", "fortnight");  // invalid window
    *r.add_items() = Item("org_type", "all");     // not a live view
    *r.add_items() = Item("size", "week:current", "all", "direct", "head");
    *r.add_items() = Item("country+org_type", "trailing:1");
    *r.add_items() = Item("model", "trailing:4", "all", "direct", "population");
    *r.add_items() = Item("model", "all", "all", "direct", "all", {5, 1});  // other ks: locked
    *r.add_items() = Item("model", "all", "all", "direct", "all", {0});     // invalid k
    *r.add_items() = Item("developer", "week:current");                     // live: W12
    *r.add_items() = Item("model", "all");                                  // a repeat
    *r.add_items() = Item("model", "all", "all", "direct", "all", {1, 10, 100});  // default ks
    return r;
  }

  FakeStateStore store_;
  ManualClock clock_;
  NoDeadLetters sink_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<QueryService> query_;
};

TEST_F(QueryServiceTest, EachBatchItemIsTheSingleCallsAnswerOrError) {
  for (const bool data : {false, true}) {
    if (data) Ingest();
    const v1::ConcentrationsRequest request = Mixed();
    // Some items need computing: the batch cannot be answered now.
    EXPECT_FALSE(query_->GetConcentrationsNow(request).has_value());
    const absl::StatusOr<ConcentrationAnswers> answers = query_->GetConcentrations(request);
    ASSERT_TRUE(answers.ok()) << answers.status();
    ExpectEachItemAsSingleCall(request, *answers);
    // Invalid items are errors of their own; the others are answered.
    EXPECT_EQ((*answers)[2].status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string((*answers)[5].status().message()), HasSubstr("trailing:N"));
    EXPECT_EQ((*answers)[11].status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE((*answers)[1].ok() && (*answers)[4].ok() && (*answers)[6].ok());
    // Computed once, every item is answered now, as the single calls.
    std::optional<absl::StatusOr<ConcentrationAnswers>> now = query_->GetConcentrationsNow(request);
    ASSERT_TRUE(now.has_value());
    ASSERT_TRUE(now->ok()) << now->status();
    ExpectEachItemAsSingleCall(request, **now);
  }
  // With data, the answers are not trivially empty.
  const v1::ConcentrationsRequest request = Mixed();
  const absl::StatusOr<ConcentrationAnswers> answers = query_->GetConcentrations(request);
  ASSERT_TRUE(answers.ok());
  EXPECT_GT((*answers)[1]->total_downloads(), 0u);
  EXPECT_EQ((*answers)[1]->first_week(), "2025-W10");
  EXPECT_GT((*answers)[6]->entities(), 1u);
  EXPECT_EQ((*answers)[12]->first_week(), "2025-W12");
  EXPECT_GT((*answers)[12]->total_downloads(), 0u);
  EXPECT_LT((*answers)[12]->total_downloads(), (*answers)[0]->total_downloads());
}

TEST_F(QueryServiceTest, ABatchOfLiveAndInvalidItemsIsAnsweredNowAsTheSingleCalls) {
  Ingest();
  v1::ConcentrationsRequest request;
  for (const char* level : {"model", "developer", "country"}) {
    for (const char* window :
         {"all", "trailing:1", "trailing:4", "week:current", "week:2025-W12"}) {
      *request.add_items() = Item(level, window);
      *request.add_items() = Item(level, window, "rolling_1y", "recursive");
    }
  }
  *request.add_items() = Item("model", "trailing:0");  // invalid
  *request.add_items() = Item("", "all");              // invalid: no level
  for (const v1::ConcentrationRequest& item : request.items()) {
    // Each one alone is answered now too.
    EXPECT_TRUE(query_->GetConcentrationNow(item).has_value()) << item.ShortDebugString();
  }
  std::optional<absl::StatusOr<ConcentrationAnswers>> now = query_->GetConcentrationsNow(request);
  ASSERT_TRUE(now.has_value());
  ASSERT_TRUE(now->ok()) << now->status();
  ExpectEachItemAsSingleCall(request, **now);
  const absl::StatusOr<ConcentrationAnswers> waited = query_->GetConcentrations(request);
  ASSERT_TRUE(waited.ok());
  ExpectEachItemAsSingleCall(request, *waited);
  EXPECT_FALSE(waited->back().ok());
  EXPECT_TRUE(waited->front().ok());
}

// An on-demand answer is given now once computed, and while the batches
// since touch none of its weeks; a batch of one of its weeks needs computing
// again. The answer given now is the one GetConcentration gives.
TEST_F(QueryServiceTest, AnOnDemandAnswerIsGivenNowWhileItHolds) {
  Ingest();
  const v1::ConcentrationRequest past = Item("developer", "week:2025-W11");
  EXPECT_FALSE(query_->GetConcentrationNow(past).has_value());
  const absl::StatusOr<v1::Concentration> computed = query_->GetConcentration(past);
  ASSERT_TRUE(computed.ok()) << computed.status();
  EXPECT_GT(computed->total_downloads(), 0u);
  auto now = query_->GetConcentrationNow(past);
  ASSERT_TRUE(now.has_value() && now->ok());
  EXPECT_TRUE(MessageDifferencer::Equals(**now, *computed)) << (*now)->DebugString();

  // A batch of the current week (2025-W12): the past week's answer holds.
  const std::string current_line = Event("bob/x", "late-user", "2025-03-19T20:00:00Z");
  SourceRecord current{current_line, "test", -1, 0};
  SourceOffset off{"file:test", 2};
  ASSERT_TRUE(pipeline_->IngestEvents({&current, 1}, EventFormat::kJson, {&off, 1}, &sink_).ok());
  EXPECT_TRUE(query_->GetConcentrationNow(past).has_value());

  // A batch of 2025-W11 (its Sunday, within the lateness of 3 days): computed
  // again, on the call that may wait.
  const std::string old_line = Event("bob/x", "late-user", "2025-03-16T20:00:00Z");
  SourceRecord old{old_line, "test", -1, 0};
  off.next_offset = 3;
  ASSERT_TRUE(pipeline_->IngestEvents({&old, 1}, EventFormat::kJson, {&off, 1}, &sink_).ok());
  EXPECT_FALSE(query_->GetConcentrationNow(past).has_value());
  const absl::StatusOr<v1::Concentration> again = query_->GetConcentration(past);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->total_downloads(), computed->total_downloads() + 1);
  now = query_->GetConcentrationNow(past);
  ASSERT_TRUE(now.has_value() && now->ok());
  EXPECT_TRUE(MessageDifferencer::Equals(**now, *again));
}

TEST_F(QueryServiceTest, AnEmptyBatchIsAnEmptyAnswerNow) {
  const v1::ConcentrationsRequest empty;
  std::optional<absl::StatusOr<ConcentrationAnswers>> now = query_->GetConcentrationsNow(empty);
  ASSERT_TRUE(now.has_value());
  ASSERT_TRUE(now->ok());
  EXPECT_TRUE((*now)->empty());
  const absl::StatusOr<ConcentrationAnswers> waited = query_->GetConcentrations(empty);
  ASSERT_TRUE(waited.ok());
  EXPECT_TRUE(waited->empty());
}

TEST_F(QueryServiceTest, ABatchOverTheLimitFailsAsAWholeAndOneAtTheLimitIsAnswered) {
  Ingest();
  v1::ConcentrationsRequest request;
  for (size_t i = 0; i < kMaxConcentrationsPerCall; ++i) {
    *request.add_items() = i % 2 ? Item("model", "all") : Item("developer", "week:2025-W10");
  }
  const absl::StatusOr<ConcentrationAnswers> at_limit = query_->GetConcentrations(request);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->size(), kMaxConcentrationsPerCall);
  for (const auto& a : *at_limit) EXPECT_TRUE(a.ok()) << a.status();

  *request.add_items() = Item("model", "all");
  const absl::StatusOr<ConcentrationAnswers> over = query_->GetConcentrations(request);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("1025"));
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("at most 1024"));
  // Refused now, without looking at the items (even all live ones).
  v1::ConcentrationsRequest live;
  for (size_t i = 0; i <= kMaxConcentrationsPerCall; ++i) *live.add_items() = Item("model", "all");
  std::optional<absl::StatusOr<ConcentrationAnswers>> now = query_->GetConcentrationsNow(live);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->status(), over.status());
}

}  // namespace
}  // namespace hubmetrics
