#include "lib/ingest/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hubmetrics {
namespace {

class CollectingSink final : public DeadLetterSink {
 public:
  void Reject(const SourceRecord& r, const Rejection& rej) override {
    got.emplace_back(std::string(r.value), std::string(RejectReasonName(rej.reason)));
  }
  absl::Status Flush() override { return flush_status; }
  std::vector<std::pair<std::string, std::string>> got;
  absl::Status flush_status;
};

std::string Event(const std::string& model, const std::string& user, const std::string& time) {
  return absl::StrCat(R"({"model_id":")", model, R"(","user_id":")", user, R"(","time":")", time,
                      R"("})");
}

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest() : clock_(*ParseRfc3339("2025-03-20T00:00:00Z")) {}

  std::unique_ptr<Pipeline> Open(PipelineOptions options = {}) {
    std::array<uint8_t, 16> key{};
    key[0] = 1;
    auto p = Pipeline::Open(options, std::make_unique<UnownedStateStore>(&store_), &clock_,
                            UserHasher(key));
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  absl::Status Ingest(Pipeline* p, const std::vector<std::string>& lines, int64_t next_offset) {
    std::vector<SourceRecord> records;
    for (const auto& l : lines) records.push_back(SourceRecord{l, "test", -1, 0});
    SourceOffset off{"file:test", next_offset};
    return p->IngestEvents(records, EventFormat::kJson, {&off, 1}, &sink_);
  }

  static v1::Concentration Query(const Pipeline& p, const std::string& level,
                                 const std::string& attribution,
                                 const std::string& window = "all") {
    v1::ConcentrationRequest req;
    req.mutable_view()->set_level(level);
    req.mutable_view()->set_attribution(attribution);
    req.set_window(window);
    auto c = p.GetConcentration(req);
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  FakeStateStore store_;
  ManualClock clock_;
  CollectingSink sink_;
};

TEST_F(PipelineTest, CountsUniqueDuplicateAndRejectedAndMeasuresExactly) {
  auto p = Open();
  ASSERT_TRUE(
      Ingest(
          p.get(),
          {Event("a/x", "u1", "2025-03-10T01:00:00Z"), Event("a/x", "u1", "2025-03-10T05:00:00Z"),
           Event("a/x", "u2", "2025-03-10T05:00:00Z"), Event("a/x", "u1", "2025-03-11T05:00:00Z"),
           Event("b/y", "u1", "2025-03-11T05:00:00Z"), "{not json", "[1]",
           Event("a--b", "u1", "2025-03-11T05:00:00Z")},
          100)
          .ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 8u);
  EXPECT_EQ(s.unique_downloads(), 4u);
  EXPECT_EQ(s.duplicates(), 1u);
  EXPECT_EQ(s.rejected(), 3u);
  EXPECT_THAT(sink_.got, ::testing::ElementsAre(::testing::Pair("{not json", "malformed"),
                                                ::testing::Pair("[1]", "not_object"),
                                                ::testing::Pair(::testing::_, "invalid_model_id")));
  // model level, all time: a/x = 3, b/y = 1. HHI = (9+1)/16, Gini = |3-1|/(2*4) ... = 2/(2*4)
  v1::Concentration c = Query(*p, "model", "direct");
  EXPECT_EQ(c.total_downloads(), 4u);
  EXPECT_EQ(c.entities(), 2u);
  EXPECT_DOUBLE_EQ(c.hhi(), 10.0 / 16.0);
  EXPECT_DOUBLE_EQ(c.gini(), 2.0 / 8.0);  // sum_i sum_j |xi-xj| / (2 n X) = 4 / 16
  EXPECT_DOUBLE_EQ(c.top_shares(0).share(), 0.75);
  // developer level: a = 3, b = 1 (namespaces).
  EXPECT_EQ(Query(*p, "developer", "direct").entities(), 2u);
  EXPECT_EQ(c.watermark().seconds(), absl::ToUnixSeconds(*ParseRfc3339("2025-03-11T05:00:00Z")));
}

TEST_F(PipelineTest, ARecordOverTheByteLimitIsTooLargeBeforeAnyOtherCheckAndDeadLettered) {
  auto p = Open();
  ASSERT_EQ(p->max_event_bytes(), kDefaultMaxEventBytes);
  // A valid event padded with an unknown field to one byte over the limit, and
  // binary garbage of the same size: both too_large, not accepted or malformed.
  const std::string head =
      R"({"model_id":"a/x","user_id":"u1","time":"2025-03-10T01:00:00Z","p":")";
  const std::string over =
      head + std::string(kDefaultMaxEventBytes + 1 - head.size() - 2, 'p') + R"("})";
  ASSERT_EQ(over.size(), kDefaultMaxEventBytes + 1);
  const std::string fits = over.substr(0, over.size() - 3) + R"("})";
  const std::string garbage(kDefaultMaxEventBytes + 1, '\xff');
  ASSERT_TRUE(Ingest(p.get(), {over, fits, garbage}, 3).ok());
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 3u);
  EXPECT_EQ(s.unique_downloads(), 1u);
  EXPECT_EQ(s.rejected(), 2u);
  ASSERT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(sink_.got[0], std::make_pair(over, std::string("too_large")));  // its original bytes
  EXPECT_EQ(sink_.got[1].second, "too_large");
  for (const v1::RejectCount& r : s.rejected_by_reason()) {
    EXPECT_EQ(r.count(), r.reason() == "too_large" ? 2u : 0u) << r.reason();
  }
}

TEST_F(PipelineTest, RestartResumesFromStoredStateAndOffsets) {
  {
    auto p = Open();
    ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T01:00:00Z")}, 10).ok());
  }
  auto p = Open();
  EXPECT_EQ(p->StoredOffset("file:test"), 10);
  EXPECT_EQ(p->GetIngestStats().unique_downloads(), 1u);
  // The same user and day after the restart is still a duplicate: dedup state was reloaded.
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T09:00:00Z")}, 20).ok());
  EXPECT_EQ(p->GetIngestStats().duplicates(), 1u);
  EXPECT_EQ(Query(*p, "model", "direct").total_downloads(), 1u);
}

TEST_F(PipelineTest, StateIsBoundToItsUserHashKey) {
  {
    auto p = Open();
    ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T01:00:00Z")}, 1).ok());
  }
  std::array<uint8_t, 16> other{};
  other[0] = 2;
  auto refused = Pipeline::Open(PipelineOptions{}, std::make_unique<UnownedStateStore>(&store_),
                                &clock_, UserHasher(other));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("restore the original key"));
  // The key it was built with still opens it, and counts u1 once.
  auto p = Open();
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T02:00:00Z")}, 2).ok());
  EXPECT_EQ(p->GetIngestStats().unique_downloads(), 1u);
  EXPECT_EQ(p->GetIngestStats().duplicates(), 1u);
}

TEST_F(PipelineTest, FailedCommitStopsIngestAndRestartReplaysExactly) {
  {
    auto p = Open();
    ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T01:00:00Z")}, 10).ok());
    store_.FailNextCommits(1, absl::DataLossError("checksum mismatch"));
    absl::Status s = Ingest(p.get(), {Event("a/x", "u2", "2025-03-10T01:00:00Z")}, 20);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(Ingest(p.get(), {Event("a/x", "u3", "2025-03-10T01:00:00Z")}, 30).code(),
              absl::StatusCode::kFailedPrecondition);
  }
  auto p = Open();
  EXPECT_EQ(p->StoredOffset("file:test"), 10);  // the failed batch's offset was not stored
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u2", "2025-03-10T01:00:00Z")}, 20).ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 2u);
  EXPECT_EQ(s.unique_downloads(), 2u);
}

// Waits (without a time bound of its own: the test's timeout is the bound)
// until the pipeline reports `condition`.
void AwaitStateCondition(const Pipeline& p, const std::string& condition) {
  while (p.GetIngestStats().state_condition() != condition) std::this_thread::yield();
}

TEST_F(PipelineTest, FullDiskPausesIngestAndItResumesExactlyWhenSpaceIsBack) {
  PipelineOptions options;
  options.min_free_disk_bytes = 1000;
  options.disk_retry_interval = absl::Milliseconds(1);
  auto p = Open(options);
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T01:00:00Z")}, 10).ok());

  // Below the reserve: the commit waits, queries answer, nothing is stored.
  store_.SetFreeBytes(999);
  absl::Status waited;
  std::thread ingest(
      [&] { waited = Ingest(p.get(), {Event("a/x", "u2", "2025-03-10T01:00:00Z")}, 20); });
  AwaitStateCondition(*p, "disk_full");
  EXPECT_THAT(p->GetIngestStats().state_condition_detail(), ::testing::HasSubstr("reserve"));
  EXPECT_EQ(Query(*p, "model", "direct").total_downloads(), 2u);  // applied, not stored
  EXPECT_EQ(store_.Load()->offsets.at("file:test"), 10);
  store_.SetFreeBytes(1000);
  ingest.join();
  ASSERT_TRUE(waited.ok()) << waited;
  EXPECT_EQ(p->GetIngestStats().state_condition(), "");
  EXPECT_EQ(store_.Load()->offsets.at("file:test"), 20);

  // A write that fails for lack of space (the reserve did not keep it) or an
  // I/O error is retried after a recovery, until it is written.
  const int recovers = store_.recovers();
  store_.FailNextCommits(2, absl::ResourceExhaustedError("no space left on device"));
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u3", "2025-03-10T01:00:00Z")}, 30).ok());
  store_.FailNextCommits(1, absl::UnavailableError("input/output error"));
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u3", "2025-03-10T02:00:00Z")}, 40).ok());
  EXPECT_EQ(store_.recovers(), recovers + 3);
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.unique_downloads(), 3u);
  EXPECT_EQ(s.duplicates(), 1u);
  EXPECT_EQ(s.state_condition(), "");

  // Stopping while it waits: the batch is not stored, and a restart reads it again.
  store_.SetFreeBytes(0);
  std::thread stopped(
      [&] { waited = Ingest(p.get(), {Event("a/x", "u4", "2025-03-10T01:00:00Z")}, 50); });
  AwaitStateCondition(*p, "disk_full");
  p->Stop();
  stopped.join();
  EXPECT_EQ(waited.code(), absl::StatusCode::kCancelled);
  p.reset();
  store_.SetFreeBytes(uint64_t{1} << 30);
  p = Open(options);
  EXPECT_EQ(p->StoredOffset("file:test"), 40);
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u4", "2025-03-10T01:00:00Z")}, 50).ok());
  EXPECT_EQ(p->GetIngestStats().unique_downloads(), 4u);
}

// Pipelined submits: many batches submitted back to back end in the same
// state as batches ingested one by one, and an apply error surfaces at the
// next submit or drain, never silently.
TEST_F(PipelineTest, SubmittedBatchesCommitInOrderAndErrorsSurface) {
  std::vector<std::vector<std::string>> batches;
  for (int b = 0; b < 40; ++b) {
    std::vector<std::string> lines;
    for (int i = 0; i < 50; ++i) {
      // Duplicates within and across batches; days close as the weeks go by.
      lines.push_back(Event(absl::StrCat("org", i % 4, "/m", i % 9),
                            absl::StrCat("u", (b % 2) * 12 + i % 12),
                            absl::StrFormat("2025-03-%02dT%02d:00:00Z", 3 + b / 3, i % 24)));
    }
    if (b % 5 == 0) lines.push_back("not json");
    batches.push_back(std::move(lines));
  }
  auto submit = [&](Pipeline* p, int b) {
    std::vector<SourceRecord> records;
    for (const auto& l : batches[b]) records.push_back(SourceRecord{l, "test", -1, 0});
    SourceOffset off{"file:test", (b + 1) * 100};
    return p->SubmitEvents(records, EventFormat::kJson, {&off, 1}, &sink_);
  };
  v1::IngestStats want;
  std::string want_top;
  {
    FakeStateStore one_by_one;
    std::array<uint8_t, 16> key{};
    key[0] = 1;
    auto p = *Pipeline::Open(PipelineOptions{}, std::make_unique<UnownedStateStore>(&one_by_one),
                             &clock_, UserHasher(key));
    for (int b = 0; b < 40; ++b) {
      ASSERT_TRUE(submit(p.get(), b).ok());
      ASSERT_TRUE(p->Drain().ok());
    }
    want = p->GetIngestStats();
    want_top = Query(*p, "developer", "direct", "trailing:4").DebugString();
  }
  {
    auto p = Open();
    for (int b = 0; b < 40; ++b) ASSERT_TRUE(submit(p.get(), b).ok());
    ASSERT_TRUE(p->Drain().ok());
    EXPECT_EQ(p->GetIngestStats().DebugString(), want.DebugString());
    EXPECT_EQ(Query(*p, "developer", "direct", "trailing:4").DebugString(), want_top);
    EXPECT_EQ(p->StoredOffset("file:test"), 4000);
    EXPECT_GT(want.duplicates(), 0u);
    EXPECT_EQ(want.rejected(), 8u);
  }
  {
    auto p = Open();  // restart on the pipelined state: the same answers
    EXPECT_EQ(Query(*p, "developer", "direct", "trailing:4").DebugString(), want_top);
    EXPECT_EQ(p->GetIngestStats().unique_downloads(), want.unique_downloads());
    store_.FailNextCommits(1, absl::InternalError("device gone"));
    ASSERT_TRUE(submit(p.get(), 0).ok());  // fails on the apply thread
    EXPECT_EQ(p->Drain().code(), absl::StatusCode::kInternal);
    const absl::Status refused = submit(p.get(), 1);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.message(),
                ::testing::HasSubstr("device gone"));  // the cause, for the operator
  }
}

TEST_F(PipelineTest, ReleaseRunsOnTheApplyThreadAfterTheCommitAndBeforeDrainReturns) {
  auto p = Open();
  const int commits_at_open = store_.commits();
  const std::vector<std::string> lines = {Event("org/a", "u1", "2025-03-10T00:00:00Z"),
                                          Event("org/a", "u2", "2025-03-10T00:00:00Z")};
  std::vector<SourceRecord> records;
  for (const auto& l : lines) records.push_back(SourceRecord{l, "test", -1, 0});
  SourceOffset off{"file:test", 2};
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> released{0};
  std::atomic<int> commits_seen{-1};
  std::atomic<bool> on_caller{false};
  ASSERT_TRUE(p->SubmitEvents(records, EventFormat::kJson, {&off, 1}, &sink_, [&] {
                 on_caller = std::this_thread::get_id() == caller;
                 commits_seen = store_.commits();
                 ++released;
               }).ok());
  ASSERT_TRUE(p->Drain().ok());
  EXPECT_EQ(released.load(), 1);
  EXPECT_FALSE(on_caller.load());
  EXPECT_EQ(commits_seen.load(), commits_at_open + 1);  // committed before its records went

  // A batch refused (ingest broke on a failed commit) drops its release uncalled, at once.
  store_.FailNextCommits(1, absl::DataLossError("disk broken"));
  ASSERT_TRUE(p->SubmitEvents(records, EventFormat::kJson, {&off, 1}, &sink_).ok());
  EXPECT_EQ(p->Drain().code(), absl::StatusCode::kDataLoss);
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  bool called = false;
  EXPECT_EQ(p->SubmitEvents(records, EventFormat::kJson, {&off, 1}, &sink_,
                            [held = std::move(alive), &called] { called = true; })
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

TEST_F(PipelineTest, UnacknowledgedDeadLettersBlockTheCommit) {
  auto p = Open();
  const int commits_at_open = store_.commits();
  sink_.flush_status = absl::UnavailableError("broker down");
  EXPECT_EQ(Ingest(p.get(), {"garbage"}, 10).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.commits(), commits_at_open);
}

TEST_F(PipelineTest, CatalogChangeRecreditsPastCounts) {
  auto p = Open();
  ASSERT_TRUE(Ingest(p.get(),
                     {Event("base/m", "u1", "2025-03-10T01:00:00Z"),
                      Event("ft/m", "u1", "2025-03-10T01:00:00Z"),
                      Event("ft/m", "u2", "2025-03-10T01:00:00Z")},
                     10)
                  .ok());
  EXPECT_EQ(Query(*p, "model", "recursive").entities(), 2u);
  v1::ModelInfo ft;
  ft.set_model_id("ft/m");
  ft.set_base_model("base/m");
  ft.set_country("FR");
  ASSERT_TRUE(p->ApplyCatalog({{CatalogRecord{"ft/m", ft}}}, {}).ok());
  // Recursive: everything credited to base/m now.
  v1::Concentration rec = Query(*p, "model", "recursive");
  EXPECT_EQ(rec.entities(), 1u);
  EXPECT_EQ(rec.total_downloads(), 3u);
  EXPECT_DOUBLE_EQ(rec.hhi(), 1.0);
  // Direct country: ft/m's 2 downloads in FR, base/m's 1 Unknown.
  EXPECT_EQ(Query(*p, "country", "direct").entities(), 2u);
  // Tombstone: back to two roots.
  ASSERT_TRUE(p->ApplyCatalog({{CatalogRecord{"ft/m", std::nullopt}}}, {}).ok());
  EXPECT_EQ(Query(*p, "model", "recursive").entities(), 2u);
  EXPECT_EQ(p->GetIngestStats().catalog_records(), 2u);
  // Re-applying the same record changes nothing.
  ASSERT_TRUE(p->ApplyCatalog({{CatalogRecord{"ft/m", ft}}}, {}).ok());
  ASSERT_TRUE(p->ApplyCatalog({{CatalogRecord{"ft/m", ft}}}, {}).ok());
  EXPECT_EQ(p->GetIngestStats().catalog_records(), 3u);
}

// Live windows asked with the default ks are answered from the snapshot
// published after each batch and catalog change, without the engine lock;
// other ks take the lock path. Both must agree after every kind of change.
TEST_F(PipelineTest, SnapshotAnswersEqualLockedAnswers) {
  auto p = Open();
  auto expect_same = [&](const std::string& when) {
    for (const char* level : {"model", "developer", "country"}) {
      for (const char* attribution : {"direct", "recursive"}) {
        for (const char* window : {"all", "trailing:1", "trailing:4", "week:2025-W11"}) {
          v1::ConcentrationRequest req;
          req.mutable_view()->set_level(level);
          req.mutable_view()->set_attribution(attribution);
          req.set_window(window);
          const std::string where = absl::StrCat(when, " ", level, "/", attribution, "/", window);
          std::optional<absl::StatusOr<v1::Concentration>> now = p->GetConcentrationNow(req);
          // A week is live only while it is the watermark's.
          const bool week = std::string_view(window).starts_with("week:");
          ASSERT_TRUE(now.has_value() || week) << where;
          absl::StatusOr<v1::Concentration> fast = now ? *now : p->GetConcentration(req);
          for (uint32_t k : {100u, 10u, 1u}) req.add_top_k(k);  // not the default order
          EXPECT_FALSE(p->GetConcentrationNow(req).has_value()) << where;
          auto locked = p->GetConcentration(req);
          ASSERT_TRUE(fast.ok() && locked.ok()) << fast.status() << locked.status();
          EXPECT_EQ(fast->total_downloads(), locked->total_downloads()) << where;
          EXPECT_EQ(fast->entities(), locked->entities()) << where;
          EXPECT_EQ(fast->hhi(), locked->hhi()) << where;
          EXPECT_EQ(fast->gini(), locked->gini()) << where;
          EXPECT_EQ(fast->first_week(), locked->first_week()) << where;
          EXPECT_EQ(fast->watermark().seconds(), locked->watermark().seconds()) << where;
          ASSERT_EQ(fast->top_shares_size(), 3) << where;
          for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(fast->top_shares(i).share(), locked->top_shares(2 - i).share()) << where;
          }
        }
      }
    }
  };
  expect_same("empty");
  {
    // Not live: a week other than the watermark's (and no watermark yet).
    v1::ConcentrationRequest req;
    req.mutable_view()->set_level("model");
    req.set_window("week:2025-W09");
    EXPECT_FALSE(p->GetConcentrationNow(req).has_value());
    // Invalid: answered now, with the same error as GetConcentration.
    req.mutable_view()->set_level("planet");
    std::optional<absl::StatusOr<v1::Concentration>> now = p->GetConcentrationNow(req);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(now->status(), p->GetConcentration(req).status());
    EXPECT_EQ(now->status().code(), absl::StatusCode::kInvalidArgument);
  }
  ASSERT_TRUE(Ingest(p.get(),
                     {Event("base/m", "u1", "2025-03-10T01:00:00Z"),
                      Event("ft/m", "u1", "2025-03-10T01:00:00Z"),
                      Event("ft/m", "u2", "2025-03-11T01:00:00Z")},
                     10)
                  .ok());
  expect_same("first batch");
  EXPECT_EQ(Query(*p, "model", "direct").total_downloads(), 3u);
  ASSERT_TRUE(Ingest(p.get(),
                     {Event("ft/m", "u3", "2025-03-17T01:00:00Z"),  // next week: windows move
                      Event("other/m", "u1", "2025-03-17T02:00:00Z")},
                     20)
                  .ok());
  expect_same("watermark moved");
  v1::ModelInfo ft;
  ft.set_model_id("ft/m");
  ft.set_base_model("base/m");
  ft.set_country("FR");
  ASSERT_TRUE(p->ApplyCatalog({{CatalogRecord{"ft/m", ft}}}, {}).ok());
  expect_same("catalog change");
  EXPECT_EQ(Query(*p, "model", "recursive").entities(), 2u);  // base/m and other/m
  p.reset();
  p = Open();
  expect_same("restart");
}

TEST_F(PipelineTest, OldDedupDaysAreDroppedAndLateEventsRejected) {
  auto p = Open();
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-01T01:00:00Z")}, 10).ok());
  ASSERT_TRUE(Ingest(p.get(), {Event("a/x", "u1", "2025-03-10T01:00:00Z")}, 20).ok());
  EXPECT_EQ(store_.dedup_keys(), 1u);  // 03-01 is past the 3-day horizon of 03-10
  ASSERT_TRUE(Ingest(p.get(),
                     {Event("a/x", "u9", "2025-03-06T23:59:59Z"),
                      Event("a/x", "u9", "2025-03-07T00:00:00Z")},
                     30)
                  .ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.rejected(), 1u);
  EXPECT_EQ(sink_.got.back().second, "too_late");
  EXPECT_EQ(s.unique_downloads(), 3u);
}

// Closed days (dropped from dedup) are restored from their stored daily
// counts, open days from their dedup records: a restart changes no answer.
TEST_F(PipelineTest, RestartRestoresClosedAndOpenDays) {
  std::vector<std::string> batch1, batch2;
  for (int d = 1; d <= 9; ++d) {
    for (int u = 0; u < d; ++u) {
      batch1.push_back(Event(d % 2 ? "a/x" : "b/y", absl::StrCat("u", u),
                             absl::StrFormat("2025-03-%02dT0%d:00:00Z", d, u % 10)));
    }
  }
  for (int u = 0; u < 5; ++u) {
    batch2.push_back(Event("c/z", absl::StrCat("u", u), "2025-03-12T10:00:00Z"));
    batch2.push_back(Event("a/x", absl::StrCat("u", u), "2025-03-10T10:00:00Z"));
  }
  v1::Concentration before_all, before_week;
  {
    auto p = Open();
    ASSERT_TRUE(Ingest(p.get(), batch1, 1).ok());
    ASSERT_TRUE(Ingest(p.get(), batch2, 2).ok());
    before_all = Query(*p, "developer", "direct");
    before_week = Query(*p, "model", "direct", "week:2025-W10");
  }
  EXPECT_EQ(before_all.total_downloads(), 45u + 10u);
  EXPECT_LT(store_.dedup_keys(), 55u);  // days before 03-09 were dropped
  auto p = Open();
  EXPECT_EQ(Query(*p, "developer", "direct").DebugString(), before_all.DebugString());
  EXPECT_EQ(Query(*p, "model", "direct", "week:2025-W10").DebugString(), before_week.DebugString());
  // Still deduplicated after the restart on an open day.
  ASSERT_TRUE(Ingest(p.get(), {Event("c/z", "u1", "2025-03-12T23:00:00Z")}, 3).ok());
  EXPECT_EQ(Query(*p, "developer", "direct").total_downloads(), 55u);
}

// Partition 1 is read ten days behind partition 0 (a consumer catching up):
// its events are on time for it and all count.
TEST_F(PipelineTest, SlowPartitionIsNotTooLate) {
  auto p = Open();
  const int32_t parts[] = {0, 1};
  p->ExpectPartitions(parts);
  auto ingest = [&](int32_t partition, const std::string& line) {
    SourceRecord r{line, "test", partition, 0};
    return p->IngestEvents({&r, 1}, EventFormat::kJson, {}, &sink_);
  };
  ASSERT_TRUE(ingest(0, Event("a/x", "u1", "2025-03-15T00:00:00Z")).ok());
  ASSERT_TRUE(ingest(1, Event("a/x", "u1", "2025-03-05T00:00:00Z")).ok());
  ASSERT_TRUE(ingest(1, Event("a/x", "u1", "2025-03-05T10:00:00Z")).ok());  // duplicate
  ASSERT_TRUE(ingest(0, Event("a/x", "u2", "2025-03-11T00:00:00Z")).ok());  // late on 0
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.unique_downloads(), 2u);
  EXPECT_EQ(s.duplicates(), 1u);
  EXPECT_EQ(s.rejected(), 1u);
}

TEST_F(PipelineTest, InvalidRequestsSayWhatIsAllowed) {
  auto p = Open();
  v1::ConcentrationRequest req;
  req.mutable_view()->set_level("planet");
  EXPECT_EQ(p->GetConcentration(req).status().code(), absl::StatusCode::kInvalidArgument);
  req.mutable_view()->set_level("model");
  req.set_window("fortnight");
  EXPECT_THAT(std::string(p->GetConcentration(req).status().message()),
              ::testing::HasSubstr("trailing:N"));
  req.set_window("all");
  req.add_top_k(5000000);
  EXPECT_EQ(p->GetConcentration(req).status().code(), absl::StatusCode::kInvalidArgument);
  v1::TopEntitiesRequest top;
  top.mutable_view()->set_level("model");
  top.set_k(20000);
  EXPECT_EQ(p->GetTopEntities(top).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hubmetrics
