#include "lib/ingest/file_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/query/query_service.h"

namespace hubmetrics {
namespace {

FileSourceOptions BatchesOf(size_t lines) {
  FileSourceOptions options;
  options.batch_lines = lines;
  return options;
}

class FileSourceTest : public ::testing::Test {
 protected:
  FileSourceTest() : clock_(*ParseRfc3339("2025-03-20T00:00:00Z")) {
    dir_ = (std::filesystem::temp_directory_path() / absl::StrCat("hm_fs_", getpid())).string();
    std::filesystem::create_directories(dir_);
  }
  ~FileSourceTest() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Pipeline> Open(PipelineOptions options = {}) {
    auto p = Pipeline::Open(options, std::make_unique<UnownedStateStore>(&store_), &clock_,
                            UserHasher(std::array<uint8_t, 16>{}));
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }
  std::string Write(const std::string& name, const std::string& text, bool append = false) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, append ? std::ios::app : std::ios::trunc) << text;
    return path;
  }
  static std::string Event(int user, int day = 10) {
    return absl::StrCat(R"({"model_id":"a/x","user_id":"u)", user, R"(","time":"2025-03-)", day,
                        R"(T01:00:00Z"})");
  }

  static PipelineOptions Limited(uint64_t max_event_bytes) {
    PipelineOptions o;
    o.max_event_bytes = max_event_bytes;
    return o;
  }
  static uint64_t Rejected(const v1::IngestStats& s, const std::string& reason) {
    for (const v1::RejectCount& r : s.rejected_by_reason()) {
      if (r.reason() == reason) return r.count();
    }
    return 0;
  }

  std::string dir_;
  FakeStateStore store_;
  ManualClock clock_;
};

TEST_F(FileSourceTest, ReadsAllLinesIncludingALastOneWithoutNewlineAndSkipsBlanks) {
  std::string path =
      Write("e.ndjson", Event(1) + "\n\n  \r\n" + Event(2) + "\r\n{bad\n" + Event(3));
  auto p = Open();
  std::atomic<bool> stop{false};
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, BatchesOf(2)).ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 4u);
  EXPECT_EQ(s.unique_downloads(), 3u);
  EXPECT_EQ(s.rejected(), 1u);
}

// Progress: with the clock standing still, one report at the end; with no
// interval, one per batch, growing to the whole file; after a resume, only the
// bytes from the stored offset count.
TEST_F(FileSourceTest, ReportsProgressPerIntervalAndAtTheEnd) {
  std::string text;
  for (int u = 0; u < 10; ++u) text += Event(u) + "\n";
  const std::string path = Write("e.ndjson", text);
  std::vector<FileProgress> reports;
  FileSourceOptions options = BatchesOf(3);
  options.clock = &clock_;
  options.on_progress = [&](const FileProgress& p) { reports.push_back(p); };
  std::atomic<bool> stop{false};
  {
    auto p = Open();
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, options).ok());
  }
  ASSERT_EQ(reports.size(), 1u);  // the clock did not move: only the end
  EXPECT_TRUE(reports[0].done);
  EXPECT_EQ(reports[0].records, 10u);
  EXPECT_EQ(reports[0].bytes, static_cast<int64_t>(text.size()));
  EXPECT_EQ(reports[0].total_bytes, static_cast<int64_t>(text.size()));
  EXPECT_THAT(FormatFileProgress(reports[0]), ::testing::HasSubstr("replay: 10 events"));

  const std::string more = Event(20) + "\n" + Event(21) + "\n";
  Write("e.ndjson", more, /*append=*/true);
  reports.clear();
  options.progress_every = absl::ZeroDuration();
  options.batch_lines = 1;
  {
    auto p = Open();  // resumes after the 10 lines already read
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, options).ok());
  }
  ASSERT_EQ(reports.size(), 3u);  // one per batch, and the end
  EXPECT_EQ(reports[0].records, 1u);
  EXPECT_FALSE(reports[0].done);
  EXPECT_EQ(reports.back().records, 2u);
  EXPECT_EQ(reports.back().bytes, static_cast<int64_t>(more.size()));
  EXPECT_EQ(reports.back().total_bytes, static_cast<int64_t>(more.size()));
  EXPECT_TRUE(reports.back().done);
}

// A batch gathers lines across reads of the file (1 MiB each) until it has
// batch_lines lines (fewer for the first and last batches) or batch_bytes
// bytes; every batch commits the offset after its last line, over-long and
// blank lines included.
TEST_F(FileSourceTest, BatchesSpanReadsUpToTheirLineAndByteBounds) {
  constexpr uint64_t kLimit = 200;
  std::string text;
  int lines = 0;
  for (int u = 0; u < 60000; ++u) {
    text += Event(u) + "\n";
    ++lines;
    if (u % 9999 == 0) text += "\n  \n";
    if (u % 15000 == 7) text += std::string(1500000, 'x') + "\n";  // too_large, crosses reads
  }
  const std::string path = Write("e.ndjson", text);
  for (const auto& [batch_lines, batch_bytes] :
       std::vector<std::pair<size_t, size_t>>{{25000, size_t{64} << 20}, {100000, 1500000}}) {
    SCOPED_TRACE(absl::StrCat(batch_lines, " lines, ", batch_bytes, " bytes"));
    std::vector<FileProgress> reports;
    FileSourceOptions options = BatchesOf(batch_lines);
    options.batch_bytes = batch_bytes;
    options.clock = &clock_;
    options.progress_every = absl::ZeroDuration();
    options.on_progress = [&](const FileProgress& p) { reports.push_back(p); };
    std::atomic<bool> stop{false};
    FakeStateStore store;
    auto opened = Pipeline::Open(Limited(kLimit), std::make_unique<UnownedStateStore>(&store),
                                 &clock_, UserHasher(std::array<uint8_t, 16>{}));
    ASSERT_TRUE(opened.ok()) << opened.status();
    const std::unique_ptr<Pipeline> p = std::move(*opened);
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, options).ok());
    const v1::IngestStats s = p->GetIngestStats();
    EXPECT_EQ(s.events_read(), static_cast<uint64_t>(lines + 4));
    EXPECT_EQ(s.unique_downloads(), static_cast<uint64_t>(lines));
    EXPECT_EQ(Rejected(s, "too_large"), 4u);
    EXPECT_EQ(p->StoredOffset(absl::StrCat("file:", path)), static_cast<int64_t>(text.size()));
    ASSERT_GE(reports.size(), 3u);
    uint64_t records = 0;
    int64_t bytes = 0;
    size_t spanning = 0;
    for (size_t i = 0; i + 1 < reports.size(); ++i) {
      const uint64_t batch = reports[i].records - records;
      const int64_t batch_file_bytes = reports[i].bytes - bytes;
      EXPECT_LE(batch, batch_lines);
      // What a batch holds of its lines: over-long ones only up to the limit.
      EXPECT_LE(batch_file_bytes, static_cast<int64_t>(batch_bytes) + 2 * 1500000);
      spanning += batch_file_bytes > (1 << 20) ? 1 : 0;
      records = reports[i].records;
      bytes = reports[i].bytes;
    }
    EXPECT_GE(spanning, 2u);
    if (batch_bytes > text.size()) {
      // The first batches grow from 8,192 lines, doubling; the last ones shrink.
      EXPECT_EQ(reports[0].records, 8192u);
      EXPECT_GT(reports[1].records - reports[0].records, 8192u);
      EXPECT_LE(reports[1].records - reports[0].records, 16384u);
      EXPECT_LT(reports.back().records - reports[reports.size() - 2].records, 16384u);
    }
    EXPECT_TRUE(reports.back().done);
    EXPECT_EQ(reports.back().bytes, static_cast<int64_t>(text.size()));
  }
}

// A stop between batches submits nothing more (the batch already read ahead
// included), and the next replay goes on at the stored offset: every line
// counted once.
TEST_F(FileSourceTest, StopsBetweenBatchesAndResumesAtTheStoredOffset) {
  std::string text;
  constexpr int kLines = 50000;
  for (int u = 0; u < kLines; ++u) text += Event(u) + "\n";
  const std::string path = Write("e.ndjson", text);
  std::atomic<bool> stop{false};
  FileSourceOptions options = BatchesOf(10000);
  options.clock = &clock_;
  options.progress_every = absl::ZeroDuration();
  std::vector<FileProgress> reports;
  options.on_progress = [&](const FileProgress& progress) {
    reports.push_back(progress);
    stop.store(true);  // after the first batch
  };
  {
    const std::unique_ptr<Pipeline> p = Open();
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, options).ok());
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_FALSE(reports[0].done);
    EXPECT_EQ(reports[0].records, 8192u);  // the first batch's lines
    const v1::IngestStats s = p->GetIngestStats();
    EXPECT_EQ(s.events_read(), 8192u);
    EXPECT_EQ(p->StoredOffset(absl::StrCat("file:", path)), reports[0].bytes);
  }
  stop.store(false);
  options.on_progress = nullptr;
  const std::unique_ptr<Pipeline> p = Open();
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, options).ok());
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), static_cast<uint64_t>(kLines));
  EXPECT_EQ(s.unique_downloads(), static_cast<uint64_t>(kLines));
  EXPECT_EQ(p->StoredOffset(absl::StrCat("file:", path)), static_cast<int64_t>(text.size()));
}

TEST(FileProgressTest, SaysRateAndEta) {
  FileProgress p;
  p.records = 1000;
  p.bytes = 1 << 20;
  p.total_bytes = 4 << 20;
  p.elapsed = absl::Seconds(2);
  EXPECT_EQ(FormatFileProgress(p),
            "replay: 1000 events, 1.0 of 4.0 MiB (25.0%), 500 events/s, 0.5 MiB/s, ETA 6 s");
  p.done = true;
  p.bytes = p.total_bytes;
  EXPECT_THAT(FormatFileProgress(p), ::testing::HasSubstr("done in 2.0 s"));
}

TEST_F(FileSourceTest, ResumesAfterTheStoredOffsetWithoutRereading) {
  std::string path = Write("e.ndjson", Event(1) + "\n" + Event(2) + "\n");
  std::atomic<bool> stop{false};
  {
    auto p = Open();
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
  }
  Write("e.ndjson", Event(3) + "\n" + Event(1, 11) + "\n", /*append=*/true);
  auto p = Open();
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
  v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 4u);  // the first two lines were not read again
  EXPECT_EQ(s.duplicates(), 0u);
  EXPECT_EQ(s.unique_downloads(), 4u);
}

TEST_F(FileSourceTest, LinesOverTheLimitAreTooLargeAndSkippedWhereverTheyStartAndEnd) {
  constexpr uint64_t kLimit = 100;
  // Lines longer than a read chunk (1 MiB) cross several reads; the last one
  // has no newline. Lengths count without the newline ('\r' included).
  const std::string at_limit(kLimit, 'x');                       // not JSON: malformed
  const std::string one_over = std::string(kLimit, ' ') + "\r";  // blank, but too long
  const std::string long_line(3 * 1024 * 1024 + 17, 'y');
  const std::string last_line(2 * 1024 * 1024 + 5, 'z');
  const std::string path =
      Write("e.ndjson", absl::StrCat(Event(1), "\n", at_limit, "\n", one_over, "\n", long_line,
                                     "\n", Event(2), "\n\n", last_line));
  std::atomic<bool> stop{false};
  {
    auto p = Open(Limited(kLimit));
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, BatchesOf(2)).ok());
    const v1::IngestStats s = p->GetIngestStats();
    EXPECT_EQ(s.events_read(), 6u);
    EXPECT_EQ(s.unique_downloads(), 2u);
    EXPECT_EQ(Rejected(s, "too_large"), 3u);
    EXPECT_EQ(Rejected(s, "malformed"), 1u);
    EXPECT_EQ(s.rejected(), 4u);
    EXPECT_EQ(p->StoredOffset(absl::StrCat("file:", path)),
              static_cast<int64_t>(std::filesystem::file_size(path)));
  }
  // A restart reads only what was appended: the stored offset counted the
  // skipped bytes exactly (an offset inside a skipped line would show as
  // malformed records here).
  Write("e.ndjson", absl::StrCat("\n", Event(3), "\n", long_line, "\n", Event(4), "\n"),
        /*append=*/true);
  auto p = Open(Limited(kLimit));
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.events_read(), 9u);
  EXPECT_EQ(s.unique_downloads(), 4u);
  EXPECT_EQ(Rejected(s, "too_large"), 4u);
  EXPECT_EQ(Rejected(s, "malformed"), 1u);
}

TEST_F(FileSourceTest, TheDefaultLimitIs64KiB) {
  const std::string pad_head =
      R"({"model_id":"a/x","user_id":"u1","time":"2025-03-10T01:00:00Z","p":")";
  const std::string fits = pad_head + std::string(65536 - pad_head.size() - 2, 'p') + "\"}";
  ASSERT_EQ(fits.size(), 65536u);
  const std::string over = pad_head + std::string(65537 - pad_head.size() - 2, 'q') + "\"}";
  const std::string path = Write("e.ndjson", fits + "\n" + over + "\n");
  auto p = Open();
  std::atomic<bool> stop{false};
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.unique_downloads(), 1u);
  EXPECT_EQ(Rejected(s, "too_large"), 1u);
}

TEST_F(FileSourceTest, ModelsFileRecordsOverTheBoundsAreRejectedAndCounted) {
  const std::string huge =
      absl::StrCat(R"({"model_id":"a/big","pad":")", std::string(3 * 1024 * 1024, 'p'), R"("})");
  const std::string long_developer =
      absl::StrCat(R"({"model_id":"a/dev","developer":")", std::string(257, 'd'), R"("})");
  const std::string path =
      Write("m.ndjson", absl::StrCat(huge, "\n", long_developer, "\n",
                                     R"({"model_id":"a/x","developer":"ok"})", "\n"));
  auto p = Open();
  ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
  EXPECT_EQ(p->GetIngestStats().catalog_rejected(), 2u);
  EXPECT_EQ(p->GetIngestStats().catalog_models(), 1u);
}

TEST_F(FileSourceTest, MissingFileIsNotFound) {
  auto p = Open();
  std::atomic<bool> stop{false};
  EXPECT_EQ(IngestEventsFile(p.get(), dir_ + "/nope", stop, {}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadModelsFile(p.get(), dir_ + "/nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(FileSourceTest, ANonRegularFileIsAFailedPreconditionThatSaysWhatToDo) {
  // Files are mapped, so a pipe or a directory cannot be read: the error says so.
  auto p = Open();
  std::atomic<bool> stop{false};
  const absl::Status events = IngestEventsFile(p.get(), dir_, stop, {});
  EXPECT_EQ(events.code(), absl::StatusCode::kFailedPrecondition) << events;
  EXPECT_THAT(events.message(), ::testing::HasSubstr("not a regular file"));
  EXPECT_EQ(LoadModelsFile(p.get(), dir_).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p->GetIngestStats().events_read(), 0u);
}

TEST_F(FileSourceTest, AnEmptyFileAndOneShorterThanTheStoredOffsetReadNothing) {
  std::atomic<bool> stop{false};
  const std::string path = Write("e.ndjson", "");
  {
    auto p = Open();
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
    ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
    EXPECT_EQ(p->GetIngestStats().events_read(), 0u);
  }
  const std::string two = Event(1) + "\n" + Event(2) + "\n";
  Write("e.ndjson", two);
  {
    auto p = Open();
    ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
    EXPECT_EQ(p->GetIngestStats().events_read(), 2u);
    ASSERT_EQ(p->StoredOffset(absl::StrCat("file:", path)), static_cast<int64_t>(two.size()));
  }
  // Replaced by a shorter file: its stored offset is past the end. Nothing
  // is read (and the offset stays where it was).
  Write("e.ndjson", Event(3) + "\n");
  auto p = Open();
  ASSERT_TRUE(IngestEventsFile(p.get(), path, stop, {}).ok());
  EXPECT_EQ(p->GetIngestStats().events_read(), 2u);
  EXPECT_EQ(p->StoredOffset(absl::StrCat("file:", path)), static_cast<int64_t>(two.size()));
}

TEST_F(FileSourceTest, ModelsFileLastRecordWinsAndBadLinesAreCounted) {
  std::string path = Write("m.ndjson", R"({"model_id":"a/x","developer":"first"})"
                                       "\n"
                                       R"({"model_id":"a/x","developer":"second"})"
                                       "\n{broken\n"
                                       R"({"model_id":"bad--id"})"
                                       "\n");
  auto p = Open();
  ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
  std::string events = Write("e.ndjson", Event(1) + "\n");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(IngestEventsFile(p.get(), events, stop, {}).ok());
  v1::EntityRequest req;
  req.mutable_view()->set_level("developer");
  req.set_entity("second");
  EXPECT_EQ(QueryService(p.get()).GetEntity(req)->entity().downloads(), 1u);
  EXPECT_EQ(p->GetIngestStats().catalog_rejected(), 2u);
  EXPECT_EQ(p->GetIngestStats().catalog_models(), 1u);
}

// A models file long enough to be decoded in two halves at once: the same
// rules (the last record of a model wins across the halves; bad lines and
// lines over the limit counted).
TEST_F(FileSourceTest, ALongModelsFileDecodedInTwoHalvesKeepsTheLastRecords) {
  std::string text;
  for (int i = 0; i < 5000; ++i) {
    // Models 0..2999 and again 0..1999: the second record of a model wins.
    text += absl::StrCat(R"({"model_id":"ns/m)", i % 3000, R"(","developer":"d)", i, "\"}\n");
    if (i % 1000 == 999) text += "{broken\n";
  }
  text += R"({"model_id":"a/x","developer":")" + std::string(20000, 'x') + "\"}\n";
  const std::string path = Write("m.ndjson", text);
  auto p = Open();
  ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
  const v1::IngestStats s = p->GetIngestStats();
  EXPECT_EQ(s.catalog_models(), 3000u);
  EXPECT_EQ(s.catalog_rejected(), 6u);
  p->Read([](const Pipeline::ReadState& r) {
    EXPECT_EQ(r.catalog.Developer(*r.registry.Find("ns/m5")), "d3005");
    EXPECT_EQ(r.catalog.Developer(*r.registry.Find("ns/m1999")), "d4999");
    EXPECT_EQ(r.catalog.Developer(*r.registry.Find("ns/m2000")), "d2000");
  });
}

// A models file that re-publishes a model (as a compacted topic would hold
// it, the last record wins) is applied once: a restart on the same file
// re-credits nothing and counts its bad lines no second time; a changed file
// applies only the records that differ from the stored catalog.
TEST_F(FileSourceTest, ModelsFileAppliesOnlyWhatChangedAcrossRestarts) {
  const std::string first = R"({"model_id":"a/x","developer":"first"})"
                            "\n"
                            R"({"model_id":"a/y","developer":"why"})"
                            "\n"
                            R"({"model_id":"a/x","developer":"second"})"
                            "\n{broken\n";
  std::string path = Write("m.ndjson", first);
  uint64_t records = 0;
  {
    auto p = Open();
    ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
    records = p->GetIngestStats().catalog_records();
    EXPECT_EQ(records, 2u);  // a/x once (its last record), a/y
    EXPECT_EQ(p->GetIngestStats().catalog_rejected(), 1u);
  }
  const int commits = store_.commits();
  for (int restart = 0; restart < 2; ++restart) {
    auto p = Open();
    ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
    EXPECT_EQ(p->GetIngestStats().catalog_records(), records);
    EXPECT_EQ(p->GetIngestStats().catalog_rejected(), 1u);
  }
  EXPECT_EQ(store_.commits(), commits);  // nothing to commit on the same file
  Write("m.ndjson",
        R"({"model_id":"a/y","developer":"changed"})"
        "\n",
        /*append=*/true);
  auto p = Open();
  ASSERT_TRUE(LoadModelsFile(p.get(), path).ok());
  EXPECT_EQ(p->GetIngestStats().catalog_records(), records + 1);  // a/y only
  EXPECT_EQ(p->GetIngestStats().catalog_models(), 2u);
}

}  // namespace
}  // namespace hubmetrics
