#include "lib/ingest/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/query/query_service.h"

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
    auto c = QueryService(&p).GetConcentration(req);
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  FakeStateStore store_;
  ManualClock clock_;
  CollectingSink sink_;
};

// A batch large enough to be decoded in two parts at once (new models in
// both, rejections of every kind, the validator's in between) gives the same
// counts, answers and dead letters, in the same order, as the same records
// in batches decoded by one thread.
TEST_F(PipelineTest, ALargeBatchDecodedInTwoPartsEqualsSmallBatches) {
  std::vector<std::string> lines;
  std::mt19937 rng(7);
  for (int i = 0; i < 12000; ++i) {
    const int day = 3 + static_cast<int>(i / 800);
    const std::string time = absl::StrFormat("2025-03-%02dT%02d:00:00Z", day, i % 24);
    switch (rng() % 20) {
      case 0:
        lines.push_back("{bad");
        break;
      case 1:
        lines.push_back(Event("a/b/c", "u", time));  // invalid_model_id
        break;
      case 2:
        lines.push_back(Event("m/x", "u", "2025-02-01T00:00:00Z"));  // too_late after a while
        break;
      case 3:
        lines.push_back(Event("m/x", "u", "2025-04-01T00:00:00Z"));  // future
        break;
      case 4:
        lines.push_back(std::string(70000, ' '));  // too_large
        break;
      default:
        // New models appear in both halves; some in both.
        lines.push_back(Event(absl::StrCat("ns/m", rng() % (i < 6000 ? 50 : 80)),
                              absl::StrCat("user", rng() % 300), time));
    }
  }
  auto run = [&](size_t batch) {
    FakeStateStore store;
    CollectingSink sink;
    std::array<uint8_t, 16> key{};
    auto opened =
        Pipeline::Open({}, std::make_unique<UnownedStateStore>(&store), &clock_, UserHasher(key));
    EXPECT_TRUE(opened.ok());
    std::unique_ptr<Pipeline> p = std::move(*opened);
    for (size_t i = 0; i < lines.size(); i += batch) {
      std::vector<SourceRecord> records;
      for (size_t j = i; j < std::min(lines.size(), i + batch); ++j) {
        records.push_back(SourceRecord{lines[j], "test", -1, static_cast<int64_t>(j)});
      }
      SourceOffset off{"file:test", static_cast<int64_t>(i + records.size())};
      EXPECT_TRUE(p->IngestEvents(records, EventFormat::kJson, {&off, 1}, &sink).ok());
    }
    v1::IngestStats stats = p->GetIngestStats();
    stats.clear_state_disk_bytes();
    stats.clear_state_memory_bytes();
    return std::make_tuple(stats.SerializeAsString(), Query(*p, "model", "direct").DebugString(),
                           Query(*p, "developer", "recursive", "trailing:2").DebugString(),
                           sink.got);
  };
  const auto one = run(lines.size());  // two parts at once
  const auto small = run(1000);        // one thread
  EXPECT_EQ(std::get<0>(one), std::get<0>(small));
  EXPECT_EQ(std::get<1>(one), std::get<1>(small));
  EXPECT_EQ(std::get<2>(one), std::get<2>(small));
  EXPECT_EQ(std::get<3>(one), std::get<3>(small));
  EXPECT_GT(std::get<3>(one).size(), 1000u);
}

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
// other ks take the lock path (tried at once by GetConcentrationNow). They
// must agree after every kind of change.
TEST_F(PipelineTest, SnapshotAnswersEqualLockedAnswers) {
  auto p = Open();
  // The query side reads one pipeline: a restart needs a new one.
  auto q = std::make_unique<QueryService>(p.get());
  auto expect_same = [&](const std::string& when) {
    for (const char* level : {"model", "developer", "country"}) {
      for (const char* attribution : {"direct", "recursive"}) {
        for (const char* window : {"all", "trailing:1", "trailing:4", "week:2025-W11"}) {
          v1::ConcentrationRequest req;
          req.mutable_view()->set_level(level);
          req.mutable_view()->set_attribution(attribution);
          req.set_window(window);
          const std::string where = absl::StrCat(when, " ", level, "/", attribution, "/", window);
          std::optional<absl::StatusOr<v1::Concentration>> now = q->GetConcentrationNow(req);
          // A week is live only while it is the watermark's.
          const bool week = std::string_view(window).starts_with("week:");
          ASSERT_TRUE(now.has_value() || week) << where;
          absl::StatusOr<v1::Concentration> fast = now ? *now : q->GetConcentration(req);
          for (uint32_t k : {100u, 10u, 1u}) req.add_top_k(k);  // not the default order
          // Other ks: from the live distributions under the engine's lock,
          // at once when it is free (no batch is being applied here).
          std::optional<absl::StatusOr<v1::Concentration>> other_now = q->GetConcentrationNow(req);
          ASSERT_TRUE(other_now.has_value() || week) << where;
          auto locked = q->GetConcentration(req);
          if (other_now) {
            ASSERT_TRUE(other_now->ok()) << other_now->status();
            EXPECT_EQ((*other_now)->hhi(), locked->hhi()) << where;
            EXPECT_EQ((*other_now)->top_shares_size(), locked->top_shares_size()) << where;
          }
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
    EXPECT_FALSE(q->GetConcentrationNow(req).has_value());
    // Invalid: answered now, with the same error as GetConcentration.
    req.mutable_view()->set_level("planet");
    std::optional<absl::StatusOr<v1::Concentration>> now = q->GetConcentrationNow(req);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(now->status(), q->GetConcentration(req).status());
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
  q.reset();
  p.reset();
  p = Open();
  q = std::make_unique<QueryService>(p.get());
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
  auto pipeline = Open();
  QueryService q(pipeline.get());
  const QueryService* p = &q;
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

// --- Metrics role ---

// One raw event of the metrics-role tests, and the input partition it is
// read from: users are partitioned (user % kPartitions), as a keyed topic
// does, so a (model, user, day) is always deduplicated by one partition and
// the per-partition counts sum to the global ones.
constexpr int32_t kPartitions = 3;
struct RawEvent {
  std::string line;  // JSON, or garbage that is rejected malformed
  int32_t partition = 0;
  std::string model;
  int user = -1;  // -1: rejected
  absl::Time time;
};

// An independent dedup instance by brute force: per input partition, the set
// of users per (day, model), and the records it would publish after each
// event (the absolute count of the key the event changed, the progress).
class OracleDeduper {
 public:
  void Feed(const RawEvent& e, std::vector<UniqueTopicRecord>* out) {
    v1::PartitionProgress& p = progress_[e.partition];
    p.set_partition(e.partition);
    p.set_next_offset(p.next_offset() + 1);
    p.set_events_read(p.events_read() + 1);
    if (e.user < 0) {
      p.set_rejected(p.rejected() + 1);
      bool found = false;
      for (auto& r : *p.mutable_rejected_by_reason()) {
        if (r.reason() == "malformed") {
          r.set_count(r.count() + 1);
          found = true;
        }
      }
      if (!found) {
        auto* r = p.add_rejected_by_reason();
        r->set_reason("malformed");
        r->set_count(1);
      }
    } else {
      const Day day = DayOf(e.time);
      std::set<int>& users = users_[{e.partition, day, e.model}];
      if (users.insert(e.user).second) {
        p.set_unique_downloads(p.unique_downloads() + 1);
        out->push_back(UniqueCountUpdate{e.partition, day, e.model, users.size()});
      } else {
        p.set_duplicates(p.duplicates() + 1);
      }
      const int64_t micros = ::hubmetrics::ToUnixMicros(e.time);
      if (!p.has_watermark_micros() || p.watermark_micros() < micros) {
        p.set_watermark_micros(micros);
      }
    }
    out->push_back(p);
  }

 private:
  std::map<int32_t, v1::PartitionProgress> progress_;
  std::map<std::tuple<int32_t, Day, std::string>, std::set<int>> users_;
};

class MetricsRoleTest : public PipelineTest {
 protected:
  static constexpr const char* kUniqueSource = "kafka:hubmetrics.unique:0";

  // `small_slices`: the aggregates are updated a few deltas and updates per
  // hold of the lock, so a batch takes many slices.
  std::unique_ptr<Pipeline> OpenOn(FakeStateStore* store, PipelineRole role,
                                   bool small_slices = false) {
    PipelineOptions options;
    options.role = role;
    if (small_slices) {
      options.max_deltas_per_lock = 3;
      options.max_updates_per_lock = 5;
    }
    std::array<uint8_t, 16> key{};
    key[0] = 1;
    auto p = Pipeline::Open(options, std::make_unique<UnownedStateStore>(store), &clock_,
                            UserHasher(key));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Events over three ISO weeks (2025-03-08 .. 03-18), days in order (within
  // a day, any order), with duplicates, four models of three developers, and
  // a malformed record; in chunks that end mid-day, so that a key's count
  // grows across chunks.
  static std::vector<std::vector<RawEvent>> MakeChunks() {
    const std::string models[] = {"a/x", "a/y", "b/z", "c/w"};
    const absl::Time start = *ParseRfc3339("2025-03-08T00:00:00Z");
    uint64_t x = 42;
    auto next = [&x](uint64_t n) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      return (x >> 33) % n;
    };
    std::vector<std::vector<RawEvent>> chunks;
    size_t n = 0;
    for (int day = 0; day < 11; ++day) {
      for (int i = 0; i < 25; ++i) {
        if (n++ % 40 == 0) chunks.emplace_back();
        RawEvent e;
        // Skewed towards the first models, so the measures are not trivial.
        e.model = models[std::min(next(6), uint64_t{3})];
        e.user = static_cast<int>(next(9));
        e.partition = e.user % kPartitions;
        e.time = start + absl::Hours(24 * day) + absl::Minutes(static_cast<int64_t>(next(1440)));
        e.line = Event(e.model, absl::StrCat("u", e.user), FormatRfc3339(e.time));
        chunks.back().push_back(std::move(e));
      }
      if (day == 4) {
        RawEvent bad;
        bad.line = "{not json";
        bad.partition = 1;
        chunks.back().push_back(std::move(bad));
      }
    }
    return chunks;
  }

  // Feeds every chunk to the default-role pipeline as events and to the
  // oracle; returns the unique records the oracle published, per chunk.
  std::vector<std::vector<UniqueTopicRecord>> FeedAllRole(Pipeline* all) {
    const int32_t parts[] = {0, 1, 2};
    all->ExpectPartitions(parts);
    OracleDeduper oracle;
    std::vector<std::vector<UniqueTopicRecord>> out;
    int64_t offset = 0;
    for (const std::vector<RawEvent>& chunk : MakeChunks()) {
      std::vector<SourceRecord> records;
      out.emplace_back();
      for (const RawEvent& e : chunk) {
        records.push_back(SourceRecord{e.line, "test", e.partition, offset++});
        oracle.Feed(e, &out.back());
      }
      SourceOffset off{"file:test", offset};
      EXPECT_TRUE(all->IngestEvents(records, EventFormat::kJson, {&off, 1}, &sink_).ok());
    }
    return out;
  }

  absl::Status Apply(Pipeline* p, std::span<const UniqueTopicRecord> records, int64_t offset) {
    SourceOffset off{kUniqueSource, offset};
    return p->ApplyUniqueRecords(records, {&off, 1});
  }

  // Every view x window's concentration and leaderboard, in words.
  static std::string Answers(const Pipeline& pipeline) {
    const QueryService p(&pipeline);
    std::string out;
    for (const char* level : {"model", "developer", "country"}) {
      for (const char* attribution : {"direct", "recursive"}) {
        for (const char* window : {"all", "trailing:1", "trailing:2", "trailing:4", "week:2025-W10",
                                   "week:2025-W11", "week:2025-W12"}) {
          v1::ConcentrationRequest req;
          req.mutable_view()->set_level(level);
          req.mutable_view()->set_attribution(attribution);
          req.set_window(window);
          auto c = p.GetConcentration(req);
          EXPECT_TRUE(c.ok()) << c.status();
          v1::TopEntitiesRequest top;
          *top.mutable_view() = req.view();
          top.set_window(window);
          auto t = p.GetTopEntities(top);
          EXPECT_TRUE(t.ok()) << t.status();
          absl::StrAppend(&out, c->DebugString(), t->DebugString());
        }
      }
    }
    return out;
  }

  static std::string Counters(const Pipeline& p) {
    const v1::IngestStats s = p.GetIngestStats();
    std::string out = absl::StrCat(
        "events_read ", s.events_read(), " unique ", s.unique_downloads(), " duplicates ",
        s.duplicates(), " rejected ", s.rejected(), " catalog ", s.catalog_records(), " models ",
        s.catalog_models(), " watermark ", s.watermark().DebugString());
    for (const v1::RejectCount& r : s.rejected_by_reason()) {
      absl::StrAppend(&out, " ", r.reason(), "=", r.count());
    }
    return out;
  }

  FakeStateStore all_store_;
  FakeStateStore metrics_store_;
};

TEST_F(MetricsRoleTest, UniqueRecordsGiveTheAnswersOfTheEventsTheyCount) {
  auto all = OpenOn(&all_store_, PipelineRole::kAll);
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics, /*small_slices=*/true);
  const std::vector<std::vector<UniqueTopicRecord>> chunks = FeedAllRole(all.get());
  // Keys repeat with growing counts within a chunk and across chunks.
  int64_t offset = 0;
  for (const auto& chunk : chunks) {
    offset += static_cast<int64_t>(chunk.size());
    ASSERT_TRUE(Apply(metrics.get(), chunk, offset).ok());
  }
  EXPECT_GT(Query(*all, "model", "direct").total_downloads(), 100u);
  EXPECT_EQ(Answers(*metrics), Answers(*all));
  EXPECT_EQ(Counters(*metrics), Counters(*all));
  const v1::IngestStats s = metrics->GetIngestStats();
  EXPECT_EQ(s.rejected(), 1u);
  EXPECT_GT(s.duplicates(), 0u);
  EXPECT_EQ(metrics->StoredOffset(kUniqueSource), offset);
}

TEST_F(MetricsRoleTest, ReplaysOfOldRecordsConvergeAndReapplyingChangesNothing) {
  auto all = OpenOn(&all_store_, PipelineRole::kAll);
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  std::vector<UniqueTopicRecord> records;
  for (const auto& chunk : FeedAllRole(all.get()))
    records.insert(records.end(), chunk.begin(), chunk.end());
  const std::span<const UniqueTopicRecord> log(records);
  // All in one call (the last record of a key wins).
  ASSERT_TRUE(Apply(metrics.get(), log, 1).ok());
  const std::string want = Answers(*all);
  ASSERT_EQ(Answers(*metrics), want);

  // The same records again: nothing changes, not even the state version;
  // only the source's offset is committed.
  const uint64_t version = metrics->StateVersion();
  const int commits = metrics_store_.commits();
  ASSERT_TRUE(Apply(metrics.get(), log, 2).ok());
  EXPECT_EQ(metrics->StateVersion(), version);
  EXPECT_EQ(metrics_store_.commits(), commits + 1);
  EXPECT_EQ(Answers(*metrics), want);
  EXPECT_EQ(Counters(*metrics), Counters(*all));

  // A replay from an early offset: the old records (lower counts) replace
  // the stored ones, so the counts go down ...
  const size_t third = records.size() / 3;
  ASSERT_TRUE(Apply(metrics.get(), log.first(third), 3).ok());
  EXPECT_LT(Query(*metrics, "model", "direct").total_downloads(),
            Query(*all, "model", "direct").total_downloads());
  EXPECT_LT(metrics->GetIngestStats().events_read(), all->GetIngestStats().events_read());
  // ... and back once the rest of the log is read again.
  ASSERT_TRUE(Apply(metrics.get(), log.subspan(third), 4).ok());
  EXPECT_EQ(Answers(*metrics), want);
  EXPECT_EQ(Counters(*metrics), Counters(*all));
  // A replay and the rest of the log in one call.
  ASSERT_TRUE(Apply(metrics.get(), log.first(third), 5).ok());
  std::vector<UniqueTopicRecord> replay(log.begin(), log.begin() + static_cast<ptrdiff_t>(third));
  replay.insert(replay.end(), log.begin(), log.end());
  ASSERT_TRUE(Apply(metrics.get(), replay, 6).ok());
  EXPECT_EQ(Answers(*metrics), want);
  EXPECT_EQ(Counters(*metrics), Counters(*all));
}

TEST_F(MetricsRoleTest, RestartRebuildsTheSameAnswers) {
  auto all = OpenOn(&all_store_, PipelineRole::kAll);
  const std::vector<std::vector<UniqueTopicRecord>> chunks = FeedAllRole(all.get());
  const size_t half = chunks.size() / 2;
  {
    auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
    for (size_t i = 0; i < half; ++i) {
      ASSERT_TRUE(Apply(metrics.get(), chunks[i], static_cast<int64_t>(i + 1)).ok());
    }
  }
  {
    // After the restart, counts replace the reloaded ones (keys span the
    // chunks: they are not added to them).
    auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
    ASSERT_NE(metrics, nullptr);
    EXPECT_EQ(metrics->StoredOffset(kUniqueSource), static_cast<int64_t>(half));
    for (size_t i = half; i < chunks.size(); ++i) {
      ASSERT_TRUE(Apply(metrics.get(), chunks[i], static_cast<int64_t>(i + 1)).ok());
    }
    EXPECT_EQ(Answers(*metrics), Answers(*all));
  }
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  ASSERT_NE(metrics, nullptr);
  EXPECT_EQ(metrics->StoredOffset(kUniqueSource), static_cast<int64_t>(chunks.size()));
  EXPECT_EQ(Answers(*metrics), Answers(*all));
  EXPECT_EQ(Counters(*metrics), Counters(*all));
}

TEST_F(MetricsRoleTest, CatalogChangeRecreditsInTheMetricsRole) {
  auto all = OpenOn(&all_store_, PipelineRole::kAll);
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  const std::vector<std::vector<UniqueTopicRecord>> chunks = FeedAllRole(all.get());
  // Half of the records before the catalog change, half after: the change
  // re-credits the counts read so far, later counts are credited the new way.
  ASSERT_TRUE(Apply(metrics.get(), chunks[0], 1).ok());
  ASSERT_TRUE(Apply(metrics.get(), chunks[1], 2).ok());
  v1::ModelInfo ft;
  ft.set_model_id("a/y");
  ft.set_base_model("b/z");
  ft.set_country("FR");
  v1::ModelInfo cw;
  cw.set_model_id("c/w");
  cw.set_developer("a");
  const std::vector<CatalogRecord> catalog = {{"a/y", ft}, {"c/w", cw}};
  const std::string before = Answers(*metrics);
  ASSERT_TRUE(metrics->ApplyCatalog(catalog, {}).ok());
  EXPECT_NE(Answers(*metrics), before);
  for (size_t i = 2; i < chunks.size(); ++i) {
    ASSERT_TRUE(Apply(metrics.get(), chunks[i], static_cast<int64_t>(i + 1)).ok());
  }
  ASSERT_TRUE(all->ApplyCatalog(catalog, {}).ok());
  EXPECT_EQ(Answers(*metrics), Answers(*all));
  EXPECT_EQ(Counters(*metrics), Counters(*all));
  EXPECT_EQ(Query(*metrics, "model", "recursive").entities(), 3u);  // a/x, b/z, c/w
  // A tombstone re-credits back; a restart keeps it all.
  ASSERT_TRUE(metrics->ApplyCatalog({{CatalogRecord{"a/y", std::nullopt}}}, {}).ok());
  ASSERT_TRUE(all->ApplyCatalog({{CatalogRecord{"a/y", std::nullopt}}}, {}).ok());
  EXPECT_EQ(Answers(*metrics), Answers(*all));
  metrics.reset();
  metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  EXPECT_EQ(Answers(*metrics), Answers(*all));
  EXPECT_EQ(Counters(*metrics), Counters(*all));
}

TEST_F(MetricsRoleTest, StateIsBoundToItsRole) {
  auto open = [&](FakeStateStore* store, PipelineRole role) {
    PipelineOptions options;
    options.role = role;
    std::array<uint8_t, 16> key{};
    return Pipeline::Open(options, std::make_unique<UnownedStateStore>(store), &clock_,
                          UserHasher(key));
  };
  auto expect_refused = [&](FakeStateStore* store, PipelineRole role, const std::string& built,
                            const std::string& asked) {
    auto refused = open(store, role);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    const std::string message(refused.status().message());
    EXPECT_THAT(message, ::testing::HasSubstr(absl::StrCat("built in role \"", built, "\"")));
    EXPECT_THAT(message, ::testing::HasSubstr(absl::StrCat("opened in role \"", asked, "\"")));
    EXPECT_THAT(message, ::testing::HasSubstr("--state_dir"));
  };
  // Bound at the first start, even with nothing in it yet.
  ASSERT_TRUE(open(&all_store_, PipelineRole::kAll).ok());
  ASSERT_TRUE(open(&metrics_store_, PipelineRole::kMetrics).ok());
  EXPECT_EQ(all_store_.Load()->role, "all");
  EXPECT_EQ(metrics_store_.Load()->role, "metrics");
  expect_refused(&all_store_, PipelineRole::kMetrics, "all", "metrics");
  expect_refused(&metrics_store_, PipelineRole::kAll, "metrics", "all");
  // Still open in their own roles.
  EXPECT_TRUE(open(&all_store_, PipelineRole::kAll).ok());
  EXPECT_TRUE(open(&metrics_store_, PipelineRole::kMetrics).ok());

  // A state from before roles (no role key) that counted events is "all";
  // one that holds nothing of events becomes whichever opens it first.
  FakeStateStore legacy;
  StateCommit c;
  c.dedup_groups = {{20000, "a/x", {7}}};
  ASSERT_TRUE(legacy.Commit(c).ok());
  expect_refused(&legacy, PipelineRole::kMetrics, "all", "metrics");
  EXPECT_FALSE(legacy.Load()->role);  // a refusal writes nothing
  ASSERT_TRUE(open(&legacy, PipelineRole::kAll).ok());
  EXPECT_EQ(legacy.Load()->role, "all");
  FakeStateStore catalog_only;
  c = StateCommit();
  v1::ModelInfo m;
  m.set_model_id("a/x");
  c.catalog_puts = {m};
  ASSERT_TRUE(catalog_only.Commit(c).ok());
  ASSERT_TRUE(open(&catalog_only, PipelineRole::kMetrics).ok());
  EXPECT_EQ(catalog_only.Load()->role, "metrics");
}

TEST_F(MetricsRoleTest, EachRoleRefusesTheOthersInput) {
  auto all = OpenOn(&all_store_, PipelineRole::kAll);
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  const UniqueTopicRecord record = UniqueCountUpdate{0, 20000, "a/x", 1};
  const absl::Status refused = Apply(all.get(), {&record, 1}, 1);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--role=metrics"));
  std::vector<std::string> lines = {Event("a/x", "u1", "2025-03-10T01:00:00Z")};
  const absl::Status events = Ingest(metrics.get(), lines, 1);
  EXPECT_EQ(events.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(events.message()),
              ::testing::HasSubstr("a metrics replica reads the unique topic, not events"));
  SourceRecord r{lines[0], "test", 0, 0};
  EXPECT_EQ(metrics->SubmitEvents({&r, 1}, EventFormat::kJson, {}, &sink_).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(metrics_store_.Load()->offsets.count("file:test"), 0u);
  EXPECT_EQ(all->GetIngestStats().unique_downloads(), 0u);
}

TEST_F(MetricsRoleTest, AnInvalidModelIdAppliesNothing) {
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  const std::vector<UniqueTopicRecord> records = {UniqueCountUpdate{0, 20000, "a/x", 2},
                                                  UniqueCountUpdate{0, 20000, "a--b", 1}};
  const std::vector<UniqueTopicRecord> with_nul = {
      UniqueCountUpdate{0, 20000, "a/x", 2},
      UniqueCountUpdate{0, 20000, std::string("a/\0y", 4), 1}};
  for (const auto& batch : {records, with_nul}) {
    const absl::Status s = Apply(metrics.get(), batch, 1);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Query(*metrics, "model", "direct").total_downloads(), 0u);
    EXPECT_FALSE(metrics->StoredOffset(kUniqueSource));
  }
  // Not broken: the next valid batch applies.
  ASSERT_TRUE(Apply(metrics.get(), std::span(records).first(1), 1).ok());
  EXPECT_EQ(Query(*metrics, "model", "direct").total_downloads(), 2u);
}

TEST_F(MetricsRoleTest, ProgressIsSummedByReasonNameAndWatermarkIsTheLargest) {
  auto metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  v1::PartitionProgress p0;
  p0.set_partition(0);
  p0.set_events_read(10);
  p0.set_unique_downloads(4);
  p0.set_duplicates(3);
  p0.set_rejected(3);
  p0.set_events_lost_to_retention(5);
  p0.set_watermark_micros(::hubmetrics::ToUnixMicros(*ParseRfc3339("2025-03-11T00:00:00Z")));
  auto* r = p0.add_rejected_by_reason();
  r->set_reason("malformed");
  r->set_count(2);
  r = p0.add_rejected_by_reason();
  r->set_reason("a_reason_of_a_newer_dedup");
  r->set_count(1);
  v1::PartitionProgress p1;
  p1.set_partition(1);
  p1.set_events_read(7);
  p1.set_unique_downloads(7);
  p1.set_watermark_micros(::hubmetrics::ToUnixMicros(*ParseRfc3339("2025-03-17T12:00:00Z")));
  v1::PartitionProgress p2;  // no event accepted yet: no watermark
  p2.set_partition(2);
  p2.set_events_read(1);
  p2.set_rejected(1);
  r = p2.add_rejected_by_reason();
  r->set_reason("malformed");
  r->set_count(1);
  const std::vector<UniqueTopicRecord> records = {p0, p1, p2};
  ASSERT_TRUE(Apply(metrics.get(), records, 3).ok());
  v1::IngestStats s = metrics->GetIngestStats();
  EXPECT_EQ(s.events_read(), 18u);
  EXPECT_EQ(s.unique_downloads(), 11u);
  EXPECT_EQ(s.duplicates(), 3u);
  EXPECT_EQ(s.rejected(), 4u);
  EXPECT_EQ(s.events_lost_to_retention(), 5u);
  std::map<std::string, uint64_t> reasons;
  for (const v1::RejectCount& rc : s.rejected_by_reason()) reasons[rc.reason()] = rc.count();
  EXPECT_EQ(reasons["malformed"], 3u);
  EXPECT_EQ(reasons["a_reason_of_a_newer_dedup"], 1u);
  EXPECT_EQ(reasons["too_late"], 0u);  // every known reason is shown
  EXPECT_EQ(s.watermark().seconds(), absl::ToUnixSeconds(*ParseRfc3339("2025-03-17T12:00:00Z")));
  // The watermark's week is the trailing windows' last.
  EXPECT_EQ(Query(*metrics, "model", "direct", "trailing:1").last_week(), "2025-W12");
  // A partition's progress replaces its earlier one (not added to it).
  p1.set_events_read(9);
  const UniqueTopicRecord again = p1;
  ASSERT_TRUE(Apply(metrics.get(), {&again, 1}, 4).ok());
  EXPECT_EQ(metrics->GetIngestStats().events_read(), 20u);
  // Shown the same after a restart.
  const std::string before = Counters(*metrics);
  metrics.reset();
  metrics = OpenOn(&metrics_store_, PipelineRole::kMetrics);
  EXPECT_EQ(Counters(*metrics), before);
  EXPECT_EQ(metrics->GetIngestStats().events_lost_to_retention(), 5u);
}

}  // namespace
}  // namespace hubmetrics
