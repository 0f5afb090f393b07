#include "lib/exporter/translate.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace hubmetrics::exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Serialize(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

const prometheus::MetricFamily* Find(const std::vector<prometheus::MetricFamily>& families,
                                     std::string_view name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::vector<std::string> Names(const std::vector<prometheus::MetricFamily>& families) {
  std::vector<std::string> names;
  for (const auto& f : families) names.push_back(f.name);
  return names;
}

ViewResult ModelView(std::string window) {
  ViewResult v;
  v.view = View{.level = Level::kModel,
                .second = std::nullopt,
                .filter = Filter::kRolling1y,
                .attribution = Attribution::kRecursive,
                .sample = Sample::kAll};
  v.window = std::move(window);
  v.concentration.set_hhi(0.375);
  v.concentration.set_gini(0.25);
  v.concentration.set_entities(3);
  v.concentration.set_total_downloads(8);
  for (auto [k, share] : {std::pair<uint32_t, double>{1, 0.5}, {10, 1.0}}) {
    auto* t = v.concentration.add_top_shares();
    t->set_k(k);
    t->set_share(share);
  }
  return v;
}

void AddEntity(v1::TopEntities& top, std::string name, uint64_t rank, double share) {
  auto* e = top.add_top();
  e->set_entity(std::move(name));
  e->set_rank(rank);
  e->set_share(share);
}

TEST(ConcentrationViewsTest, EveryLiveViewOfLibViewsOnce) {
  std::set<std::string> seen;
  std::set<Level> levels;
  for (const View& v : ConcentrationViews()) {
    EXPECT_TRUE(v.Liveable()) << v.Key();
    EXPECT_EQ(v.sample, Sample::kAll) << v.Key();
    seen.insert(v.Key());
    levels.insert(v.level);
  }
  int live_levels = 0;
  for (const LevelRow& row : LevelTable()) {
    if (!row.live) continue;
    ++live_levels;
    EXPECT_TRUE(levels.contains(row.level)) << row.name;
  }
  const size_t expected = live_levels * kFilters.size() * kAttributions.size();
  EXPECT_EQ(seen.size(), expected);
  EXPECT_EQ(ConcentrationViews().size(), expected);
  // Level-major, then filter, then attribution: the old exporter's series order.
  EXPECT_EQ(ConcentrationViews().front().Key(), "model/all/direct/all");
  EXPECT_EQ(ConcentrationViews()[1].Key(), "model/all/recursive/all");
}

TEST(ParseWindowsTest, AcceptsTheApisWordsNormalizedInOrderWithoutRepeats) {
  auto w = ParseWindows(
      "week:current, trailing:4,trailing:52,all,week:2025-W10,trailing:04,"
      "range:2020-W23..2022-W52");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(*w, ElementsAre("week:current", "trailing:4", "trailing:52", "all", "week:2025-W10",
                              "range:2020-W23..2022-W52"));
}

TEST(ParseWindowsTest, RejectsWhatTheDaemonWouldRejectAndNamesIt) {
  for (const char* bad :
       {"trailing:0", "trailing:1041", "trailing:-3", "trailing:4x", "week:2025-W99",
        "week:2025-10", "weekly", "trailing:", "", "range:2022-W01..2021-W01", "week:Current"}) {
    auto w = ParseWindows(bad, "share_windows");
    ASSERT_FALSE(w.ok()) << bad;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(w.status().message()), HasSubstr("allowed")) << bad;
    EXPECT_THAT(std::string(w.status().message()), HasSubstr("--share_windows")) << bad;
  }
}

TEST(ParseWindowsTest, BoundsTheNumberOfWindows) {
  std::string many;
  for (int i = 1; i <= kMaxWindows; ++i) absl::StrAppend(&many, i > 1 ? "," : "", "trailing:", i);
  EXPECT_TRUE(ParseWindows(many).ok());
  EXPECT_FALSE(ParseWindows(absl::StrCat(many, ",trailing:999")).ok());
}

TEST(ShareViewsTest, DefaultLevelsAreEveryLevelButTheIdLevels) {
  auto views = ParseShareViews(DefaultShareLevels(), "all", "all", "direct");
  ASSERT_TRUE(views.ok()) << views.status();
  std::vector<std::string> levels;
  for (const View& v : *views) levels.push_back(v.LevelLabel());
  std::vector<std::string> expected;
  for (const LevelRow& row : LevelTable()) {
    if (row.level != Level::kModel && row.level != Level::kDeveloper) {
      expected.emplace_back(row.name);
    }
  }
  EXPECT_EQ(levels, expected);
  EXPECT_THAT(levels, testing::Contains("org_type"));
  EXPECT_THAT(levels, testing::Contains("country"));
  EXPECT_THAT(levels, Not(testing::Contains("model")));
}

TEST(ShareViewsTest, CrossProductInTheOrderGivenWithoutRepeats) {
  auto views =
      ParseShareViews("size, country+org_type,size", "head,all", "all", "recursive,direct");
  ASSERT_TRUE(views.ok()) << views.status();
  std::vector<std::string> keys;
  for (const View& v : *views) keys.push_back(v.Key());
  EXPECT_THAT(
      keys, ElementsAre("size/all/recursive/head", "size/all/direct/head", "size/all/recursive/all",
                        "size/all/direct/all", "country+org_type/all/recursive/head",
                        "country+org_type/all/direct/head", "country+org_type/all/recursive/all",
                        "country+org_type/all/direct/all"));
}

TEST(ShareViewsTest, RejectsUnknownWordsAndNamesTheFlag) {
  struct Case {
    const char *levels, *samples, *filters, *attributions, *flag;
  };
  for (const Case& c : {Case{"size,colour", "all", "all", "direct", "--share_levels"},
                        Case{"", "all", "all", "direct", "--share_levels"},
                        Case{"model+size", "all", "all", "direct", "--share_levels"},
                        Case{"size", "all,tail", "all", "direct", "--share_samples"},
                        Case{"size", " , ", "all", "direct", "--share_samples"},
                        Case{"size", "all", "rolling_2y", "direct", "--share_filters"},
                        Case{"size", "all", "all", "indirect", "--share_attributions"}}) {
    auto views = ParseShareViews(c.levels, c.samples, c.filters, c.attributions);
    ASSERT_FALSE(views.ok()) << c.flag;
    EXPECT_EQ(views.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(views.status().message()), HasSubstr(c.flag));
    EXPECT_THAT(std::string(views.status().message()), HasSubstr("allowed are"));
  }
  // The allowed words are lib/views' own.
  auto bad = ParseShareViews("size", "tail", "all", "direct");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(SampleWords()));
  EXPECT_EQ(SampleWords(), "all, population, head");
}

TEST(ShareViewsTest, BoundsTheNumberOfViews) {
  // Distinct level words: every level but model, then their pairs.
  std::vector<std::string> words;
  for (const LevelRow& row : LevelTable()) {
    if (row.level != Level::kModel) words.emplace_back(row.name);
  }
  const size_t singles = words.size();
  for (size_t i = 0; i < singles; ++i) {
    for (size_t j = 0; j < singles; ++j) {
      if (i != j) words.push_back(absl::StrCat(words[i], "+", words[j]));
    }
  }
  // Two samples: each level word is two views.
  const size_t fit = kMaxShareViews / 2;
  ASSERT_GT(words.size(), fit);
  auto first = [&](size_t n) {
    return absl::StrJoin(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(n), ",");
  };
  auto ok = ParseShareViews(first(fit), "all,head", "all", "direct");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 2 * fit);
  auto over = ParseShareViews(first(fit + 1), "all,head", "all", "direct");
  ASSERT_FALSE(over.ok());
  EXPECT_THAT(std::string(over.status().message()),
              HasSubstr(absl::StrCat("at most ", kMaxShareViews)));
}

TEST(WatermarkTest, AbsentOrZeroMeansNoEventYet) {
  v1::IngestStats s;
  EXPECT_EQ(WatermarkOf(s), std::nullopt);
  s.mutable_watermark();
  EXPECT_EQ(WatermarkOf(s), std::nullopt);
  s.mutable_watermark()->set_seconds(1741091696);
  s.mutable_watermark()->set_nanos(500000000);
  EXPECT_EQ(WatermarkOf(s), absl::FromUnixMillis(1741091696500));
}

TEST(SanitizeTest, KeepsValidUtf8AsIs) {
  EXPECT_EQ(SanitizeLabelValue("google-bert/bert-base-uncased"), "google-bert/bert-base-uncased");
  EXPECT_EQ(SanitizeLabelValue("清华大学/模型-ü-😀"), "清华大学/模型-ü-😀");
  // Quotes, backslashes and newlines are valid label characters: escaping is the serializer's.
  EXPECT_EQ(SanitizeLabelValue("a\"b\\c\nd"), "a\"b\\c\nd");
  EXPECT_EQ(SanitizeLabelValue(""), "");
}

TEST(SanitizeTest, ReplacesInvalidUtf8) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(SanitizeLabelValue("a\xFF"
                               "b"),
            "a" + fffd + "b");
  EXPECT_EQ(SanitizeLabelValue("\xC0\xAF"), fffd + fffd);             // overlong '/'
  EXPECT_EQ(SanitizeLabelValue("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate U+D800
  EXPECT_EQ(SanitizeLabelValue("x\xE4\xB8"), "x" + fffd + fffd);      // truncated sequence
  EXPECT_EQ(SanitizeLabelValue("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // > U+10FFFF
}

TEST(SanitizeTest, CutsLongNamesWithAHashSuffix) {
  // Expected suffixes: FNV-1a 32 of the raw input, computed independently in Python.
  const std::string long_ascii(200, 'a');
  const std::string got = SanitizeLabelValue(long_ascii);
  EXPECT_EQ(got, std::string(119, 'a') + "~4e48052d");
  EXPECT_EQ(got.size(), kMaxLabelValueBytes);

  std::string long_accents;
  for (int i = 0; i < 100; ++i) long_accents += "é";  // 2 bytes each
  // 119 bytes of budget: 59 whole characters (118 bytes), never half of one.
  std::string expected;
  for (int i = 0; i < 59; ++i) expected += "é";
  EXPECT_EQ(SanitizeLabelValue(long_accents), expected + "~f3ad6f55");

  // Two names sharing a long prefix stay distinct.
  EXPECT_NE(SanitizeLabelValue(long_ascii + "x"), SanitizeLabelValue(long_ascii + "y"));
  // Exactly the limit is kept whole.
  EXPECT_EQ(SanitizeLabelValue(std::string(kMaxLabelValueBytes, 'b')),
            std::string(kMaxLabelValueBytes, 'b'));
  // A huge name is still bounded.
  EXPECT_LE(SanitizeLabelValue(std::string(1 << 20, 'z')).size(), kMaxLabelValueBytes);
}

TEST(ToFamiliesTest, DownIsOnlyUpZero) {
  const auto families = ToFamilies(Snapshot{}, 10);
  EXPECT_EQ(Serialize(families),
            "# HELP hubmetrics_up 1 when the exporter's last poll of hubmetricsd fully succeeded, "
            "0 while the daemon cannot be reached or answers with errors.\n"
            "# TYPE hubmetrics_up gauge\n"
            "hubmetrics_up 0\n");
}

TEST(ToFamiliesTest, ViewGaugesCarryTheViewAndConfiguredWindow) {
  Snapshot s;
  s.up = true;
  s.views.push_back(ModelView("week:current"));
  const std::string text = Serialize(ToFamilies(s, 10));
  const std::string labels =
      R"(level="model",filter="rolling_1y",attribution="recursive",window="week:current")";
  EXPECT_THAT(text, HasSubstr("hubmetrics_up 1\n"));
  EXPECT_THAT(text,
              HasSubstr("# TYPE hubmetrics_hhi gauge\nhubmetrics_hhi{" + labels + "} 0.375\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_gini{" + labels + "} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_entities{" + labels + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_window_downloads{" + labels + "} 8\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_top_share{" + labels + R"(,k="1"} 0.5)" + "\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_top_share{" + labels + R"(,k="10"} 1)" + "\n"));
  // No leaderboard asked for: no series, and no ingest families without stats.
  EXPECT_THAT(text, Not(HasSubstr("hubmetrics_top_entity_share{")));
  EXPECT_THAT(text, Not(HasSubstr("hubmetrics_events_total")));
}

TEST(ToFamiliesTest, EntityNamesAreEscapedInTheTextFormat) {
  Snapshot s;
  s.up = true;
  ViewResult v = ModelView("trailing:4");
  v.top.emplace();
  AddEntity(*v.top, "we\"ird\\dev\nname", 1, 0.5);
  AddEntity(*v.top, "東京-ü", 2, 0.25);
  AddEntity(*v.top, "bad\xFFutf8", 2, 0.25);
  s.views.push_back(v);
  const std::string text = Serialize(ToFamilies(s, 10));
  const std::string labels =
      R"(level="model",filter="rolling_1y",attribution="recursive",window="trailing:4")";
  EXPECT_THAT(text, HasSubstr("hubmetrics_top_entity_share{" + labels +
                              R"(,entity="we\"ird\\dev\nname",rank="1"} 0.5)" + "\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_top_entity_share{" + labels +
                              R"(,entity="東京-ü",rank="2"} 0.25)" + "\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_top_entity_share{" + labels +
                              ",entity=\"bad\xEF\xBF\xBDutf8\",rank=\"2\"} 0.25\n"));
}

TEST(ToFamiliesTest, LeaderboardIsBoundedPerViewAndWindow) {
  Snapshot s;
  s.up = true;
  for (const char* window : {"trailing:4", "all"}) {
    ViewResult v = ModelView(window);
    v.top.emplace();
    for (int i = 0; i < 500; ++i) AddEntity(*v.top, absl::StrCat("org/m", i), i + 1, 0.001);
    s.views.push_back(v);
  }
  auto count = [&](int n) {
    const auto families = ToFamilies(s, n);
    const auto* f = Find(families, "hubmetrics_top_entity_share");
    return f == nullptr ? 0 : static_cast<int>(f->metric.size());
  };
  EXPECT_EQ(count(10), 2 * 10);
  EXPECT_EQ(count(1), 2 * 1);
  EXPECT_EQ(count(0), 0);
  EXPECT_EQ(count(100000), 2 * kMaxTopEntities);
  EXPECT_EQ(count(-5), 0);
}

TEST(ToFamiliesTest, WeekOverWeekChangeIsBoundedAndItsPartsAddUp) {
  Snapshot s;
  s.up = true;
  s.hhi_change_alert_bound = 0.02;
  ChangeResult r{.view = ConcentrationViews()[0], .change = {}};
  r.change.set_delta_hhi(0.5);
  double movers = 0;
  for (int i = 0; i < 50; ++i) {
    v1::EntityMove* m = r.change.add_top_movers();
    m->set_entity(i == 3 ? "org/m2" : absl::StrCat("org/m", i));  // a repeated name
    m->set_contribution(0.01);
    movers += 0.01;
  }
  r.change.mutable_other_entrants()->set_contribution(0.1);
  r.change.mutable_other_exits()->set_contribution(-0.05);
  r.change.mutable_rest()->set_contribution(0.5 - movers - 0.05);
  s.changes.push_back(r);
  const auto families = ToFamilies(s, 10);
  const auto* parts = Find(families, "hubmetrics_hhi_change_contribution");
  ASSERT_NE(parts, nullptr);
  // kMaxChangeTop movers by name, then the three other parts.
  ASSERT_EQ(parts->metric.size(), static_cast<size_t>(kMaxChangeTop + 3));
  double sum = 0;
  for (const auto& m : parts->metric) sum += m.gauge.value;
  EXPECT_NEAR(sum, 0.5, 1e-12);
  const std::string text = Serialize(families);
  EXPECT_THAT(text, HasSubstr("hubmetrics_hhi_week_over_week_change{level=\"model\""));
  EXPECT_THAT(text, HasSubstr("part=\"other_exits\",entity=\"(other exits)\"} -0.05"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_hhi_change_alert_bound 0.02"));
  EXPECT_EQ(Find(ToFamilies(Snapshot{}, 10), "hubmetrics_hhi_change_contribution"), nullptr);
}

TEST(ToFamiliesTest, IngestStatsAreCountersAndGauges) {
  Snapshot s;
  s.up = true;
  v1::IngestStats& st = s.stats.emplace();
  st.set_unique_downloads(70);
  st.set_duplicates(20);
  st.set_rejected(10);
  auto* r = st.add_rejected_by_reason();
  r->set_reason("too_late");
  r->set_count(7);
  r = st.add_rejected_by_reason();
  r->set_reason("brand_new_reason");
  r->set_count(3);
  st.set_consumer_lag(42);
  auto* p = st.add_partitions();
  p->set_topic("hub.downloads");
  p->set_partition(3);
  p->set_lag(42);
  st.mutable_watermark()->set_seconds(1741091696);
  const auto families = ToFamilies(s, 10);
  EXPECT_THAT(Names(families),
              ElementsAre("hubmetrics_up", "hubmetrics_events_total", "hubmetrics_rejected_total",
                          "hubmetrics_events_lost_to_retention_total", "hubmetrics_state_condition",
                          "hubmetrics_consumer_lag", "hubmetrics_consumer_partition_lag",
                          "hubmetrics_watermark_timestamp_seconds"));
  const std::string text = Serialize(families);
  EXPECT_THAT(text, HasSubstr("# TYPE hubmetrics_events_total counter\n"
                              "hubmetrics_events_total{outcome=\"unique\"} 70\n"
                              "hubmetrics_events_total{outcome=\"duplicate\"} 20\n"
                              "hubmetrics_events_total{outcome=\"rejected\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE hubmetrics_rejected_total counter\n"));
  // Every known reason is present from the start (0), plus what the daemon reports.
  for (const char* reason : {"malformed", "not_object", "missing_field", "invalid_model_id",
                             "invalid_time", "future", "too_large"}) {
    EXPECT_THAT(text,
                HasSubstr(absl::StrCat("hubmetrics_rejected_total{reason=\"", reason, "\"} 0\n")));
  }
  EXPECT_THAT(text, HasSubstr("hubmetrics_rejected_total{reason=\"too_late\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_rejected_total{reason=\"brand_new_reason\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("# TYPE hubmetrics_consumer_lag gauge\nhubmetrics_consumer_lag 42\n"));
  EXPECT_THAT(
      text,
      HasSubstr("hubmetrics_consumer_partition_lag{topic=\"hub.downloads\",partition=\"3\"} 42\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_watermark_timestamp_seconds 1741091696\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_state_condition{condition=\"healthy\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_events_lost_to_retention_total 0\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_state_condition{condition=\"disk_full\"} 0\n"));

  st.set_state_condition("disk_full");
  const std::string full = Serialize(ToFamilies(s, 10));
  EXPECT_THAT(full, HasSubstr("hubmetrics_state_condition{condition=\"disk_full\"} 1\n"));
  EXPECT_THAT(full, HasSubstr("hubmetrics_state_condition{condition=\"healthy\"} 0\n"));
}

TEST(ToFamiliesTest, ApiLimitsAndRefusals) {
  Snapshot s;
  s.up = true;
  s.stats.emplace();
  EXPECT_EQ(Find(ToFamilies(s, 10), "hubmetrics_api_refused_total"), nullptr);  // an older daemon
  v1::ApiStats* a = s.stats->mutable_api();
  a->set_watch_streams(5);
  a->set_max_watch_streams(256);
  a->set_watch_streams_refused(2);
  a->set_queued_calls(1);
  a->set_max_queued_calls(1024);
  a->set_queued_calls_refused(9);
  const std::string text = Serialize(ToFamilies(s, 10));
  EXPECT_THAT(text, HasSubstr("# TYPE hubmetrics_api_refused_total counter\n"
                              "hubmetrics_api_refused_total{limit=\"watch_streams\"} 2\n"
                              "hubmetrics_api_refused_total{limit=\"queued_calls\"} 9\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_api_in_use{limit=\"watch_streams\"} 5\n"
                              "hubmetrics_api_in_use{limit=\"queued_calls\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_api_limit{limit=\"watch_streams\"} 256\n"
                              "hubmetrics_api_limit{limit=\"queued_calls\"} 1024\n"));
}

TEST(ToFamiliesTest, NoWatermarkBeforeTheFirstEvent) {
  Snapshot s;
  s.up = true;
  s.stats.emplace();
  const auto families = ToFamilies(s, 10);
  EXPECT_EQ(Find(families, "hubmetrics_watermark_timestamp_seconds"), nullptr);
  EXPECT_EQ(Find(families, "hubmetrics_consumer_partition_lag"), nullptr);
  ASSERT_NE(Find(families, "hubmetrics_consumer_lag"), nullptr);
}

// A leaderboard as the daemon answers it: entities with downloads n, n-1, ...,
// 1, shares of their sum, ranks by downloads. Returns it with every entity
// (the test decides how many to give the exporter).
v1::TopEntities Leaderboard(const std::string& prefix, int n) {
  v1::TopEntities top;
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) total += static_cast<uint64_t>(n - i);
  top.set_total_downloads(total);
  top.set_entities(static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i) {
    auto* e = top.add_top();
    e->set_entity(absl::StrCat(prefix, i));
    e->set_downloads(static_cast<uint64_t>(n - i));
    e->set_share(static_cast<double>(n - i) / static_cast<double>(total));
    e->set_rank(static_cast<uint64_t>(i + 1));
  }
  return top;
}

TEST(BoundSharesTest, TopNByNameAndTheRestSummedExactly) {
  const v1::TopEntities top = Leaderboard("lic-", 20);  // 20 + 19 + ... + 1 = 210
  const BoundedShares b = BoundShares(top, 5);
  ASSERT_EQ(b.entries.size(), 5u);
  uint64_t named = 0;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(b.entries[i].entity, absl::StrCat("lic-", i));
    EXPECT_EQ(b.entries[i].downloads, top.top(i).downloads());
    EXPECT_EQ(b.entries[i].share, top.top(i).share());  // the daemon's value, unchanged
    named += b.entries[i].downloads;
  }
  uint64_t rest = 0;
  for (int i = 5; i < 20; ++i) rest += top.top(i).downloads();
  EXPECT_EQ(b.total, 210u);
  EXPECT_EQ(b.other_downloads, rest);
  EXPECT_EQ(named + b.other_downloads, b.total);
  EXPECT_EQ(b.other_share, static_cast<double>(rest) / 210.0);
}

TEST(BoundSharesTest, TheRestCountsEntitiesTheDaemonDidNotList) {
  // Asked for the top 3, the daemon lists 3 but its total covers every entity.
  v1::TopEntities top = Leaderboard("size-", 8);  // total 36
  top.mutable_top()->DeleteSubrange(3, 5);
  const BoundedShares b = BoundShares(top, 3);
  EXPECT_EQ(b.entries.size(), 3u);
  EXPECT_EQ(b.other_downloads, 36u - 8 - 7 - 6);
  // Fewer entities than N: all by name, the rest is 0.
  const BoundedShares all = BoundShares(Leaderboard("x", 4), 10);
  EXPECT_EQ(all.entries.size(), 4u);
  EXPECT_EQ(all.other_downloads, 0u);
  EXPECT_EQ(all.other_share, 0.0);
}

TEST(BoundSharesTest, NIsClampedAndAnEmptyWindowIsAllZero) {
  const v1::TopEntities top = Leaderboard("t", kMaxShareTop + 50);
  EXPECT_EQ(BoundShares(top, 100000).entries.size(), static_cast<size_t>(kMaxShareTop));
  const BoundedShares none = BoundShares(top, -1);
  EXPECT_TRUE(none.entries.empty());
  EXPECT_EQ(none.other_downloads, none.total);
  EXPECT_EQ(none.other_share, 1.0);
  const BoundedShares empty = BoundShares(v1::TopEntities(), 10);
  EXPECT_TRUE(empty.entries.empty());
  EXPECT_EQ(empty.other_downloads, 0u);
  EXPECT_EQ(empty.other_share, 0.0);
}

TEST(BoundSharesTest, CollidingNamesGoToTheRestSoNoSeriesRepeats) {
  v1::TopEntities top;
  top.set_total_downloads(100);
  auto add = [&](std::string name, uint64_t downloads) {
    auto* e = top.add_top();
    e->set_entity(std::move(name));
    e->set_downloads(downloads);
    e->set_share(static_cast<double>(downloads) / 100);
  };
  add("a\xFF", 40);                    // sanitizes to "a\uFFFD"
  add(std::string(kOtherEntity), 20);  // a catalog value spelled like the bucket
  add("a\xFE", 15);                    // sanitizes like the first
  add("b", 10);
  const BoundedShares b = BoundShares(top, 4);
  ASSERT_EQ(b.entries.size(), 2u);
  EXPECT_EQ(b.entries[0].entity, "a\xEF\xBF\xBD");
  EXPECT_EQ(b.entries[1].entity, "b");
  EXPECT_EQ(b.other_downloads, 100u - 40 - 10);
}

TEST(BoundSharesTest, AnInconsistentAnswerNeverUnderflows) {
  v1::TopEntities top = Leaderboard("x", 3);
  top.set_total_downloads(2);  // less than the entities listed
  EXPECT_EQ(BoundShares(top, 3).other_downloads, 0u);
}

ShareResult Share(Level level, Sample sample, std::string window, v1::TopEntities top) {
  return ShareResult{.view = View{.level = level,
                                  .second = std::nullopt,
                                  .filter = Filter::kAll,
                                  .attribution = Attribution::kDirect,
                                  .sample = sample},
                     .window = std::move(window),
                     .top = std::move(top)};
}

TEST(ToFamiliesTest, AttributeSharesCarryTheViewSampleWindowAndEntity) {
  Snapshot s;
  s.up = true;
  s.shares.push_back(Share(Level::kOrgType, Sample::kHead, "week:current",
                           Leaderboard("org-", 3)));  // 3 + 2 + 1 = 6
  const std::string text = Serialize(ToFamilies(s, 10, 2));
  const std::string labels =
      R"(level="org_type",filter="all",attribution="direct",sample="head",window="week:current")";
  EXPECT_THAT(text, HasSubstr("# TYPE hubmetrics_attribute_share gauge\n"
                              "hubmetrics_attribute_share{" +
                              labels + R"(,entity="org-0"} 0.5)" + "\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_attribute_share{" + labels +
                              R"(,entity="org-1"} 0.3333333333333333)" + "\n"));
  EXPECT_THAT(text, HasSubstr("hubmetrics_attribute_share{" + labels +
                              ",entity=\"(other)\"} 0.1666666666666667\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE hubmetrics_attribute_downloads gauge\n"
                              "hubmetrics_attribute_downloads{" +
                              labels + R"(,entity="org-0"} 3)" + "\n"));
  EXPECT_THAT(text,
              HasSubstr("hubmetrics_attribute_downloads{" + labels + ",entity=\"(other)\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("entity=\"org-2\"")));
  // Pairs keep the API's level word.
  Snapshot pair;
  pair.shares.push_back(Share(Level::kCountry, Sample::kAll, "all", Leaderboard("US|c", 1)));
  pair.shares.back().view.second = Level::kOrgType;
  EXPECT_THAT(Serialize(ToFamilies(pair, 10, 2)),
              HasSubstr(R"(hubmetrics_attribute_share{level="country+org_type",filter="all",)"
                        R"(attribution="direct",sample="all",window="all",entity="US|c0"} 1)"));
}

TEST(ToFamiliesTest, AttributeLabelSetsAreBoundedAndAddUpToTheTotal) {
  Snapshot s;
  s.up = true;
  for (const char* window : {"all", "trailing:52", "week:current"}) {
    for (Sample sample : {Sample::kAll, Sample::kHead}) {
      s.shares.push_back(Share(Level::kLicense, sample, window, Leaderboard("lic-", 500)));
    }
  }
  s.shares.push_back(Share(Level::kSize, Sample::kAll, "all", v1::TopEntities()));  // empty
  const size_t views = s.shares.size();
  for (int n : {1, 10, kMaxShareTop, 100000}) {
    const auto families = ToFamilies(s, 10, n);
    const auto* share = Find(families, "hubmetrics_attribute_share");
    const auto* downloads = Find(families, "hubmetrics_attribute_downloads");
    ASSERT_NE(share, nullptr);
    ASSERT_NE(downloads, nullptr);
    const size_t bound = static_cast<size_t>(std::min(n, kMaxShareTop)) + 1;
    // Every full view has exactly N + 1 series; the empty one "(other)" alone.
    EXPECT_EQ(share->metric.size(), (views - 1) * bound + 1) << n;
    EXPECT_EQ(downloads->metric.size(), share->metric.size()) << n;
    // Per view and window, the downloads add up to the daemon's total exactly.
    std::map<std::string, double> sums;
    for (const auto& m : downloads->metric) {
      std::string key;
      for (const auto& l : m.label) {
        if (l.name != "entity") absl::StrAppend(&key, l.name, "=", l.value, ",");
      }
      sums[key] += m.gauge.value;
    }
    ASSERT_EQ(sums.size(), views);
    for (const auto& [key, sum] : sums) {
      EXPECT_EQ(sum, absl::StrContains(key, "level=size") ? 0 : 500 * 501 / 2) << key;
    }
  }
  // No share views: no attribute families at all.
  EXPECT_EQ(Find(ToFamilies(Snapshot{}, 10), "hubmetrics_attribute_share"), nullptr);
}

}  // namespace
}  // namespace hubmetrics::exporter
