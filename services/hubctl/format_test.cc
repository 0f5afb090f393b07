#include "services/hubctl/format.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hubmetrics::hubctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The whitespace-separated words of the first line containing `needle`.
std::vector<std::string> WordsOfLineWith(const std::string& text, const std::string& needle) {
  for (const std::string& line : Lines(text)) {
    if (line.find(needle) != std::string::npos) {
      return absl::StrSplit(line, ' ', absl::SkipEmpty());
    }
  }
  return {};
}

v1::View View() {
  v1::View v;
  v.set_level("developer");
  v.set_filter("rolling_1y");
  v.set_attribution("recursive");
  return v;
}

v1::Concentration Sample() {
  v1::Concentration c;
  *c.mutable_view() = View();
  c.set_window("trailing:4");
  c.set_first_week("2025-W07");
  c.set_last_week("2025-W10");
  c.set_total_downloads(1234567);
  c.set_entities(4321);
  c.set_hhi(0.0123456);
  c.set_gini(0.87654);
  for (auto [k, share] : {std::pair{1u, 0.1234}, {10u, 0.5}, {100u, 0.99995}}) {
    v1::TopShare* t = c.add_top_shares();
    t->set_k(k);
    t->set_share(share);
  }
  c.mutable_watermark()->set_seconds(1741091696);  // 2025-03-04T12:34:56Z
  return c;
}

TEST(JsonTest, UsesProtoFieldNamesAndPrintsZeroValuesOnOneLine) {
  v1::Concentration empty;
  empty.add_top_shares()->set_k(10);
  absl::StatusOr<std::string> json = ToJsonLine(empty);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, Not(HasSubstr("\n")));
  EXPECT_EQ(json->front(), '{');
  EXPECT_EQ(json->back(), '}');
  // uint64 as strings, doubles as numbers: the protobuf JSON mapping.
  for (const char* field : {R"("total_downloads":"0")", R"("entities":"0")", R"("hhi":0)",
                            R"("gini":0)", R"("window":"")", R"("first_week":"")",
                            R"("last_week":"")", R"("top_shares":[{"k":10,"share":0}])"}) {
    EXPECT_THAT(*json, HasSubstr(field));
  }
  EXPECT_THAT(*json, Not(HasSubstr("totalDownloads")));

  absl::StatusOr<std::string> stats = ToJsonLine(v1::IngestStats());
  ASSERT_TRUE(stats.ok());
  for (const char* field :
       {R"("events_read":"0")", R"("source_exhausted":false)", R"("consumer_lag":"0")",
        R"("rejected_by_reason":[])", R"("source_condition":"")", R"("state_disk_bytes":"0")"}) {
    EXPECT_THAT(*stats, HasSubstr(field));
  }
}

TEST(JsonTest, CarriesTheValues) {
  absl::StatusOr<std::string> json = ToJsonLine(Sample());
  ASSERT_TRUE(json.ok());
  for (const char* field :
       {R"("level":"developer")", R"("filter":"rolling_1y")", R"("attribution":"recursive")",
        R"("total_downloads":"1234567")", R"("entities":"4321")", R"("hhi":0.0123456)",
        R"("watermark":"2025-03-04T12:34:56Z")", R"({"k":100,"share":0.99995})"}) {
    EXPECT_THAT(*json, HasSubstr(field));
  }
}

TEST(TableTest, ConcentrationShowsHeaderAndMeasures) {
  const std::string t = FormatConcentration(Sample());
  EXPECT_THAT(WordsOfLineWith(t, "view"),
              ElementsAre("view", "developer", "/", "rolling_1y", "/", "recursive"));
  EXPECT_THAT(WordsOfLineWith(t, "window"),
              ElementsAre("window", "trailing:4", "(2025-W07", "..", "2025-W10)"));
  EXPECT_THAT(WordsOfLineWith(t, "watermark"), ElementsAre("watermark", "2025-03-04T12:34:56Z"));
  EXPECT_THAT(WordsOfLineWith(t, "total downloads"), ElementsAre("total", "downloads", "1234567"));
  EXPECT_THAT(WordsOfLineWith(t, "entities"), ElementsAre("entities", "4321"));
  EXPECT_THAT(WordsOfLineWith(t, "HHI"), ElementsAre("HHI", "0.012346"));
  EXPECT_THAT(WordsOfLineWith(t, "Gini"), ElementsAre("Gini", "0.8765"));
  EXPECT_THAT(WordsOfLineWith(t, "top-1 "), ElementsAre("top-1", "share", "12.34%"));
  EXPECT_THAT(WordsOfLineWith(t, "top-10 "), ElementsAre("top-10", "share", "50.00%"));
  EXPECT_THAT(WordsOfLineWith(t, "top-100 "), ElementsAre("top-100", "share", "100.00%"));
  // Values are right-aligned: every line of the measures block ends in the same column.
  std::vector<std::string> lines = Lines(t);
  std::vector<size_t> lengths;
  for (size_t i = 3; i < lines.size(); ++i) lengths.push_back(lines[i].size());
  ASSERT_EQ(lengths.size(), 7u);
  EXPECT_THAT(lengths, ::testing::Each(lengths[0]));
}

TEST(TableTest, AWeekWindowIsNotRepeated) {
  v1::Concentration c = Sample();
  c.set_window("week:2025-W10");
  c.set_first_week("2025-W10");
  c.set_last_week("2025-W10");
  c.clear_watermark();
  const std::string t = FormatConcentration(c);
  EXPECT_THAT(WordsOfLineWith(t, "window"), ElementsAre("window", "week:2025-W10"));
  EXPECT_THAT(WordsOfLineWith(t, "watermark"), ElementsAre("watermark", "none"));
}

TEST(TableTest, TopHasOneRowPerEntity) {
  v1::TopEntities top;
  *top.mutable_view() = View();
  top.set_window("all");
  top.set_total_downloads(2000);
  top.set_entities(3);
  const std::vector<std::tuple<std::string, uint64_t, uint64_t>> rows = {
      {"google", 900, 1}, {"meta-llama", 900, 1}, {"x", 200, 3}};
  for (const auto& [name, downloads, rank] : rows) {
    v1::EntityShare* e = top.add_top();
    e->set_entity(name);
    e->set_downloads(downloads);
    e->set_rank(rank);
    e->set_share(static_cast<double>(downloads) / 2000);
  }
  const std::string t = FormatTopEntities(top);
  EXPECT_THAT(WordsOfLineWith(t, "rank"), ElementsAre("rank", "entity", "downloads", "share"));
  EXPECT_THAT(WordsOfLineWith(t, "google"), ElementsAre("1", "google", "900", "45.0000%"));
  EXPECT_THAT(WordsOfLineWith(t, "meta-llama"), ElementsAre("1", "meta-llama", "900", "45.0000%"));
  EXPECT_THAT(WordsOfLineWith(t, " x "), ElementsAre("3", "x", "200", "10.0000%"));
  EXPECT_THAT(WordsOfLineWith(t, "total downloads"), ElementsAre("total", "downloads", "2000"));

  top.clear_top();
  EXPECT_THAT(FormatTopEntities(top), HasSubstr("no entity has downloads"));
}

TEST(TableTest, SeriesHasOneRowPerWeek) {
  v1::ConcentrationSeries series;
  for (int w = 1; w <= 3; ++w) {
    v1::Concentration* p = series.add_points();
    *p = Sample();
    p->set_window("week:2025-W0" + std::to_string(w));
    p->set_first_week("2025-W0" + std::to_string(w));
    p->set_last_week(p->first_week());
    p->set_total_downloads(w * 100);
  }
  series.mutable_points(1)->set_entities(0);
  const std::string t = FormatSeries(series);
  EXPECT_THAT(WordsOfLineWith(t, "week "),
              ElementsAre("week", "total", "downloads", "entities", "HHI", "Gini", "top-1",
                          "top-10", "top-100"));
  EXPECT_THAT(
      WordsOfLineWith(t, "2025-W01  "),
      ElementsAre("2025-W01", "100", "4321", "0.012346", "0.8765", "12.34%", "50.00%", "100.00%"));
  EXPECT_THAT(
      WordsOfLineWith(t, "2025-W02  "),
      ElementsAre("2025-W02", "200", "0", "0.012346", "0.8765", "12.34%", "50.00%", "100.00%"));
  EXPECT_THAT(WordsOfLineWith(t, "2025-W03  "), ::testing::Contains("300"));
  EXPECT_THAT(FormatSeries(v1::ConcentrationSeries()), HasSubstr("no weeks"));
}

TEST(TableTest, SharesNumberTheEntitiesAndShowEachWeek) {
  v1::ShareSeries s;
  s.mutable_view()->set_level("developer");
  s.mutable_view()->set_filter("all");
  s.mutable_view()->set_attribution("direct");
  s.mutable_view()->set_sample("head");
  s.set_from_week("2025-W01");
  s.set_to_week("2025-W02");
  s.set_total_downloads(40);
  s.set_entity_count(3);
  for (auto [name, n] : {std::pair<const char*, int>{"meta", 25}, {"google", 10}}) {
    v1::EntityShare* e = s.add_entities();
    e->set_entity(name);
    e->set_downloads(n);
    e->set_share(n / 40.0);
    e->set_rank(s.entities_size());
  }
  v1::ShareWeek* w = s.add_weeks();
  w->set_week("2025-W01");
  w->set_total_downloads(40);
  w->add_shares(0.625);
  w->add_shares(0.25);
  w->set_rest_share(0.125);
  s.add_weeks()->set_week("2025-W02");
  const std::string t = FormatShareSeries(s);
  EXPECT_THAT(t, HasSubstr("developer / all / direct / sample head"));
  EXPECT_THAT(WordsOfLineWith(t, "meta"), ElementsAre("#1", "1", "meta", "25", "62.5000%"));
  EXPECT_THAT(WordsOfLineWith(t, "week "), ElementsAre("week", "downloads", "#1", "#2", "rest"));
  EXPECT_THAT(WordsOfLineWith(t, "2025-W01  "),
              ElementsAre("2025-W01", "40", "62.50%", "25.00%", "12.50%"));
  EXPECT_THAT(WordsOfLineWith(t, "2025-W02  "), ElementsAre("2025-W02", "0", "0.00%"));
  s.clear_entities();
  EXPECT_THAT(FormatShareSeries(s), HasSubstr("no entity has downloads"));
}

TEST(TableTest, EntityShowsRankOrItsAbsence) {
  v1::EntityReport r;
  *r.mutable_view() = View();
  r.set_window("all");
  r.set_total_downloads(5000);
  r.set_entities(56);
  r.mutable_entity()->set_entity("org/model");
  r.mutable_entity()->set_downloads(125);
  r.mutable_entity()->set_share(0.025);
  r.mutable_entity()->set_rank(3);
  std::string t = FormatEntity(r);
  EXPECT_THAT(WordsOfLineWith(t, "rank"), ElementsAre("rank", "3", "of", "56"));
  EXPECT_THAT(WordsOfLineWith(t, "downloads  "), ElementsAre("downloads", "125"));
  EXPECT_THAT(WordsOfLineWith(t, "share"), ElementsAre("share", "2.5000%"));
  EXPECT_THAT(WordsOfLineWith(t, "total downloads"), ElementsAre("total", "downloads", "5000"));

  r.mutable_entity()->set_downloads(0);
  r.mutable_entity()->set_rank(0);
  t = FormatEntity(r);
  EXPECT_THAT(t, HasSubstr("- (no credited download in this window)"));
}

TEST(TableTest, StatsShowsCountersAndRejectsByReason) {
  v1::IngestStats s;
  s.set_events_read(1000);
  s.set_unique_downloads(700);
  s.set_duplicates(250);
  s.set_rejected(50);
  for (auto [reason, n] : {std::pair{"malformed", 20}, {"too_late", 30}}) {
    v1::RejectCount* r = s.add_rejected_by_reason();
    r->set_reason(reason);
    r->set_count(n);
  }
  s.set_source_exhausted(true);
  s.set_consumer_lag(17);
  v1::PartitionLag* p = s.add_partitions();
  p->set_topic("hub.downloads");
  p->set_partition(2);
  p->set_next_offset(83);
  p->set_high_watermark(100);
  p->set_lag(17);
  const std::string t = FormatIngestStats(s);
  EXPECT_THAT(WordsOfLineWith(t, "events read"), ElementsAre("events", "read", "1000"));
  EXPECT_THAT(WordsOfLineWith(t, "unique downloads"), ElementsAre("unique", "downloads", "700"));
  EXPECT_THAT(WordsOfLineWith(t, "duplicates"), ElementsAre("duplicates", "250"));
  EXPECT_THAT(WordsOfLineWith(t, "rejected "), ElementsAre("rejected", "50"));
  EXPECT_THAT(WordsOfLineWith(t, "malformed"), ElementsAre("malformed", "20"));
  EXPECT_THAT(WordsOfLineWith(t, "too_late"), ElementsAre("too_late", "30"));
  EXPECT_THAT(WordsOfLineWith(t, "source exhausted"), ElementsAre("source", "exhausted", "yes"));
  EXPECT_THAT(WordsOfLineWith(t, "source condition"),
              ElementsAre("source", "condition", "healthy"));
  EXPECT_THAT(WordsOfLineWith(t, "hub.downloads"),
              ElementsAre("hub.downloads", "2", "83", "100", "17"));
  EXPECT_THAT(t, Not(HasSubstr("watch streams")));  // no API stats: no API rows
}

TEST(TableTest, StatsShowsTheApiLimitsAndRefusals) {
  v1::IngestStats s;
  v1::ApiStats* a = s.mutable_api();
  a->set_watch_streams(3);
  a->set_max_watch_streams(256);
  a->set_watch_streams_refused(7);
  a->set_queued_calls(0);
  a->set_max_queued_calls(1024);
  a->set_queued_calls_refused(12);
  const std::string t = FormatIngestStats(s);
  EXPECT_THAT(WordsOfLineWith(t, "watch streams open"),
              ElementsAre("watch", "streams", "open", "3", "of", "256"));
  EXPECT_THAT(WordsOfLineWith(t, "watch streams refused"),
              ElementsAre("watch", "streams", "refused", "7"));
  EXPECT_THAT(WordsOfLineWith(t, "queued calls "),
              ElementsAre("queued", "calls", "0", "of", "1024"));
  EXPECT_THAT(WordsOfLineWith(t, "queued calls refused"),
              ElementsAre("queued", "calls", "refused", "12"));
}

TEST(TableTest, WatchRowsLineUpWithTheHeader) {
  const std::string header = FormatWatchHeader(Sample());
  const std::string row = FormatWatchRow(Sample());
  EXPECT_THAT(header, HasSubstr("developer / rolling_1y / recursive"));
  const std::vector<std::string> header_lines = Lines(header);
  ASSERT_EQ(header_lines.size(), 2u);
  EXPECT_EQ(header_lines[1].size(), Lines(row)[0].size());
  EXPECT_THAT(WordsOfLineWith(row, "2025"),
              ElementsAre("2025-03-04T12:34:56Z", "1234567", "4321", "0.012346", "0.8765", "12.34%",
                          "50.00%", "100.00%"));
}

TEST(CodeNameTest, NamesEveryGrpcCode) {
  const std::vector<std::pair<grpc::StatusCode, std::string>> table = {
      {grpc::StatusCode::OK, "OK"},
      {grpc::StatusCode::CANCELLED, "CANCELLED"},
      {grpc::StatusCode::UNKNOWN, "UNKNOWN"},
      {grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
      {grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
      {grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
      {grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
      {grpc::StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"},
      {grpc::StatusCode::ABORTED, "ABORTED"},
      {grpc::StatusCode::OUT_OF_RANGE, "OUT_OF_RANGE"},
      {grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
      {grpc::StatusCode::INTERNAL, "INTERNAL"},
      {grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
      {grpc::StatusCode::DATA_LOSS, "DATA_LOSS"},
      {grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
  };
  for (const auto& [code, name] : table) EXPECT_EQ(GrpcCodeName(code), name);
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(42)), "CODE_42");
}

TEST(FormatTest, ChangeSplitsDeltaHhi) {
  v1::ConcentrationChange c;
  c.mutable_view()->set_level("developer");
  c.mutable_view()->set_filter("all");
  c.mutable_view()->set_attribution("direct");
  v1::Concentration* b = c.mutable_before();
  b->set_window("week:2025-W10");
  b->set_total_downloads(4);
  b->set_entities(2);
  b->set_hhi(0.625);
  v1::Concentration* a = c.mutable_after();
  a->set_window("week:2025-W11");
  a->set_total_downloads(4);
  a->set_entities(2);
  a->set_hhi(0.5);
  c.set_delta_hhi(-0.125);
  v1::EntityMove* m = c.add_top_movers();
  m->set_entity("google");
  m->set_from_downloads(3);
  m->set_from_share(0.75);
  m->set_from_rank(1);
  m->set_to_downloads(2);
  m->set_to_share(0.5);
  m->set_to_rank(1);
  m->set_contribution(-0.3125);
  m->set_kind("both");
  c.mutable_other_entrants()->set_entities(1);
  c.mutable_other_entrants()->set_to_downloads(2);
  c.mutable_other_entrants()->set_to_share(0.5);
  c.mutable_other_entrants()->set_contribution(0.25);
  c.mutable_other_exits()->set_entities(1);
  c.mutable_other_exits()->set_from_downloads(1);
  c.mutable_other_exits()->set_from_share(0.25);
  c.mutable_other_exits()->set_contribution(-0.0625);
  *c.mutable_entrants() = c.other_entrants();
  *c.mutable_exits() = c.other_exits();
  const std::string t = FormatChange(c);
  EXPECT_THAT(t, HasSubstr("from       week:2025-W10"));
  EXPECT_THAT(WordsOfLineWith(t, "HHI  "), ElementsAre("HHI", "0.625000", "0.500000", "-0.125000"));
  EXPECT_THAT(t, HasSubstr("ΔHHI -0.125000 = top 1 movers -0.312500, other entrants +0.250000, "
                           "other exits -0.062500, rest +0.000000"));
  EXPECT_THAT(WordsOfLineWith(t, "google"), ElementsAre("1", "google", "3", "→", "2", "75.00%", "→",
                                                        "50.00%", "1", "→", "1", "-0.312500"));
  EXPECT_THAT(
      WordsOfLineWith(t, "other entrants (1)"),
      ElementsAre("other", "entrants", "(1)", "0", "→", "2", "0.00%", "→", "50.00%", "+0.250000"));
  EXPECT_THAT(t, HasSubstr("all exits:    1 entities, 25.00% of before"));
  // Columns line up although → is three bytes: the contributions end in the same column.
  std::vector<size_t> ends;
  for (const std::string& line : Lines(t)) {
    if (line.find("0.312500") != std::string::npos && line.find("google") != std::string::npos) {
      ends.push_back(line.size() - 2 * 3);  // three arrows of 3 bytes, 1 column
    }
    if (line.find("other entrants (1)") != std::string::npos) ends.push_back(line.size() - 2 * 2);
  }
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0], ends[1]);
}

}  // namespace
}  // namespace hubmetrics::hubctl
