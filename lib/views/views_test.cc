#include "lib/views/views.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace hubmetrics {
namespace {

TEST(Views, ParseRejectsUnknownWordsWithTheAllowedOnes) {
  v1::View v;
  v.set_level("galaxy");
  auto r = ParseView(v);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("model | developer | country | org_type"));
  v.set_level("country");
  v.set_filter("weekly");
  EXPECT_THAT(std::string(ParseView(v).status().message()),
              ::testing::HasSubstr("all, rolling_1y"));
  v.set_filter("");
  v.set_attribution("both");
  EXPECT_THAT(std::string(ParseView(v).status().message()),
              ::testing::HasSubstr("direct, recursive"));
  v.set_attribution("");
  auto ok = ParseView(v);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->filter, Filter::kAll);
  EXPECT_EQ(ok->attribution, Attribution::kDirect);
  for (int i = 0; i < kNumLiveViews; ++i) EXPECT_EQ(View::FromLiveIndex(i).LiveIndex(), i);
}

TEST(Views, Windows) {
  EXPECT_EQ(ParseWindow("")->kind, Window::Kind::kAll);
  EXPECT_EQ(ParseWindow("trailing:52")->weeks, 52);
  EXPECT_EQ(ParseWindow("week:2025-W10")->Label(), "week:2025-W10");
  for (const char* bad : {"trailing:0", "trailing:1041", "trailing:-1", "trailing:x",
                          "week:2025-10", "weekly", "trailing:", "week:", "ALL"}) {
    EXPECT_EQ(ParseWindow(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto r = ParseWindow("trailing:4")->Range(*IsoWeek::Parse("2025-W02"));
  EXPECT_EQ(r->first.Label(), "2024-W51");
  EXPECT_FALSE(ParseWindow("trailing:4")->Range(std::nullopt));
  google::protobuf::RepeatedField<uint32_t> ks;
  EXPECT_EQ(*ParseTopK(ks), (std::vector<uint32_t>{1, 10, 100}));
  ks.Add(0);
  EXPECT_EQ(ParseTopK(ks).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Views, EveryLevelHasOneRowInOrder) {
  std::set<std::string_view> names;
  for (int i = 0; i < kNumLevels; ++i) {
    const LevelRow& row = LevelTable()[i];
    EXPECT_EQ(static_cast<int>(row.level), i);
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_NE(row.derive, nullptr);
    v1::View p;
    p.set_level(std::string(row.name));
    auto v = ParseView(p);
    ASSERT_TRUE(v.ok()) << row.name;
    EXPECT_EQ(v->level, row.level);
    EXPECT_EQ(v->ToProto().level(), row.name);
  }
  int live = 0;
  for (const LevelRow& row : LevelTable()) live += row.live ? 1 : 0;
  EXPECT_EQ(live * 2 * 2, kNumLiveViews);
}

TEST(Views, AttributeLevelsReadTheCreditedRecord) {
  v1::ModelInfo r;
  r.set_model_id("org/m");
  EXPECT_EQ(EntityOf(Level::kModel, "org/m", &r), "org/m");
  EXPECT_EQ(EntityOf(Level::kDeveloper, "org/m", nullptr), "org");
  EXPECT_EQ(EntityOf(Level::kDeveloper, "solo", nullptr), "solo");
  EXPECT_EQ(EntityOf(Level::kCountry, "org/m", nullptr), "Unknown");
  for (Level l : {Level::kOrgType, Level::kLicense, Level::kTask, Level::kModality, Level::kSize,
                  Level::kDerivation}) {
    EXPECT_EQ(EntityOf(l, "org/m", nullptr), "unknown") << LevelName(l);
  }
  for (Level l : {Level::kOrgType, Level::kLicense, Level::kTask, Level::kModality, Level::kSize}) {
    EXPECT_EQ(EntityOf(l, "org/m", &r), "unknown") << LevelName(l);
  }
  EXPECT_EQ(EntityOf(Level::kDerivation, "org/m", &r), "original");
  r.set_org_type("Company");
  r.set_license("Apache-2.0");
  r.set_pipeline_tag("Fill-Mask");
  r.set_base_model("base/m");
  EXPECT_EQ(EntityOf(Level::kOrgType, "org/m", &r), "company");
  EXPECT_EQ(EntityOf(Level::kLicense, "org/m", &r), "apache-2.0");
  EXPECT_EQ(EntityOf(Level::kTask, "org/m", &r), "Fill-Mask");  // as given
  EXPECT_EQ(EntityOf(Level::kModality, "org/m", &r), "other");  // tags are case-sensitive
  EXPECT_EQ(EntityOf(Level::kDerivation, "org/m", &r), "derived");
  r.set_base_relation("Quantized");
  EXPECT_EQ(EntityOf(Level::kDerivation, "org/m", &r), "Quantized");
  r.set_pipeline_tag("fill-mask");
  EXPECT_EQ(EntityOf(Level::kModality, "org/m", &r), "nlp");
}

TEST(Views, ModalitiesFollowTheHubTaxonomy) {
  EXPECT_EQ(ModalityOf("text-generation"), "nlp");
  EXPECT_EQ(ModalityOf("image-text-to-text"), "multimodal");
  EXPECT_EQ(ModalityOf("image-to-text"), "computer_vision");
  EXPECT_EQ(ModalityOf("automatic-speech-recognition"), "audio");
  EXPECT_EQ(ModalityOf("time-series-forecasting"), "tabular");
  EXPECT_EQ(ModalityOf("robotics"), "reinforcement_learning");
  EXPECT_EQ(ModalityOf("graph-ml"), "other");
  EXPECT_EQ(ModalityOf(""), "unknown");
}

TEST(Views, SizeBucketsIncludeTheirLowerBound) {
  const std::pair<int64_t, std::string_view> cases[] = {
      {-5, "unknown"},
      {0, "unknown"},
      {1, "<100M"},
      {99'999'999, "<100M"},
      {100'000'000, "100M-200M"},
      {199'999'999, "100M-200M"},
      {200'000'000, "200M-500M"},
      {500'000'000, "500M-1B"},
      {999'999'999, "500M-1B"},
      {1'000'000'000, "1B-10B"},
      {10'000'000'000, "10B-100B"},
      {99'999'999'999, "10B-100B"},
      {100'000'000'000, ">=100B"},
      {INT64_MAX, ">=100B"},
  };
  for (const auto& [p, bucket] : cases) EXPECT_EQ(SizeBucketOf(p), bucket) << p;
}

TEST(Views, PairsAndSamples) {
  v1::View p;
  p.set_level("country+org_type");
  p.set_sample("head");
  auto v = ParseView(p);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->level, Level::kCountry);
  EXPECT_EQ(v->second, Level::kOrgType);
  EXPECT_EQ(v->sample, Sample::kHead);
  EXPECT_FALSE(v->Liveable());
  EXPECT_EQ(v->Key(), "country+org_type/all/direct/head");
  EXPECT_EQ(*ParseView(v->ToProto()), *v);
  for (const char* bad : {"model+country", "country+model", "size+size", "a+b", "country+", "+size",
                          "country+org_type+size", "Country"}) {
    p.set_level(bad);
    EXPECT_EQ(ParseView(p).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  p.set_level("developer");
  p.set_sample("tail");
  EXPECT_THAT(std::string(ParseView(p).status().message()),
              ::testing::HasSubstr("all, population, head"));
  p.set_sample("");
  EXPECT_EQ(ParseView(p)->sample, Sample::kAll);
  EXPECT_TRUE(ParseView(p)->Liveable());
}

TEST(Views, RangeAndCurrentWeek) {
  auto r = ParseWindow("range:2020-W23..2022-W52");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Window::Kind::kRange);
  EXPECT_EQ(r->Label(), "range:2020-W23..2022-W52");
  auto weeks = r->Range(std::nullopt);
  ASSERT_TRUE(weeks.has_value());
  EXPECT_EQ(weeks->first.Label(), "2020-W23");
  EXPECT_EQ(weeks->second.Label(), "2022-W52");
  EXPECT_FALSE(r->TrailingWeeks(weeks->second).has_value());
  EXPECT_TRUE(ParseWindow("range:2025-W10..2025-W10").ok());
  for (const char* bad :
       {"range:2025-W10..2025-W09", "range:2025-W10", "range:2025-W10..", "range:..2025-W10",
        "range:2000-W01..2020-W52", "range:2025-W10-2025-W11", "week:Current", "week:current "}) {
    EXPECT_EQ(ParseWindow(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto c = ParseWindow("week:current");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Label(), "week:current");
  EXPECT_FALSE(c->Range(std::nullopt).has_value());
  const IsoWeek wm = *IsoWeek::Parse("2025-W10");
  EXPECT_EQ(c->Range(wm)->first, wm);
  EXPECT_EQ(c->Range(wm)->second, wm);
  EXPECT_EQ(c->TrailingWeeks(wm), 1);
  EXPECT_EQ(Window::Week(wm).TrailingWeeks(wm), 1);
  EXPECT_FALSE(Window::Week(wm.Plus(-1)).TrailingWeeks(wm).has_value());
}

TEST(Views, KeysNameEveryViewOnce) {
  std::set<std::string> keys;
  for (const View& v : AllLiveableViews()) {
    EXPECT_TRUE(v.Liveable());
    EXPECT_TRUE(keys.insert(v.Key()).second);
    EXPECT_EQ(*ParseViewKey(v.Key()), v);
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kNumLiveViews));
  EXPECT_EQ(ParseViewKey("developer")->filter, Filter::kAll);
  EXPECT_EQ(ParseViewKey("size+modality/rolling_1y/recursive/head")->second, Level::kModality);
  for (const char* bad : {"", "developer/all/direct/all/x", "developer/weekly", "planet"}) {
    EXPECT_EQ(ParseViewKey(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace hubmetrics
