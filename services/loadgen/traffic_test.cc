#include "services/loadgen/traffic.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/time/time.h"

namespace hubmetrics::loadgen {
namespace {

struct Output {
  std::vector<ModelRecord> models;
  std::vector<EventRecord> events;
  std::string bytes;  // models then events, as loadgen writes them
};

Output Generate(const TrafficOptions& options, bool events_first = false) {
  auto gen = TrafficGenerator::Create(options);
  EXPECT_TRUE(gen.ok()) << gen.status();
  Output out;
  auto models = [&] {
    while (auto m = (*gen)->NextModel()) out.models.push_back(*m);
  };
  auto events = [&] {
    while (auto e = (*gen)->NextEvent()) out.events.push_back(*e);
  };
  if (events_first) {
    events();
    models();
  } else {
    models();
    events();
  }
  for (const auto& m : out.models) absl::StrAppend(&out.bytes, m.json, "\n");
  for (const auto& e : out.events) absl::StrAppend(&out.bytes, e.json, "\n");
  return out;
}

TrafficOptions Small(uint64_t seed) {
  TrafficOptions o;
  o.seed = seed;
  o.events = 20000;
  o.models = 500;
  o.users = 5000;
  o.days = 21;
  return o;
}

// The string value of `"field":"..."` in one of our JSON lines (no escapes in
// generated ids); nullopt when absent.
std::optional<std::string> Field(const std::string& json, const std::string& field) {
  const std::string key = absl::StrCat("\"", field, "\":\"");
  const size_t at = json.find(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t begin = at + key.size();
  return json.substr(begin, json.find('"', begin) - begin);
}

// Our own implementation of hubmetrics' levels (spec 17) over the final
// catalog, for checking the generator's download-weighted shapes.
std::string Modality(const std::string& tag) {
  static const auto* table = new absl::flat_hash_map<std::string, std::string>{
      {"image-text-to-text", "multimodal"},
      {"visual-question-answering", "multimodal"},
      {"document-question-answering", "multimodal"},
      {"visual-document-retrieval", "multimodal"},
      {"audio-text-to-text", "multimodal"},
      {"video-text-to-text", "multimodal"},
      {"any-to-any", "multimodal"},
      {"depth-estimation", "computer_vision"},
      {"image-classification", "computer_vision"},
      {"object-detection", "computer_vision"},
      {"image-segmentation", "computer_vision"},
      {"text-to-image", "computer_vision"},
      {"image-to-text", "computer_vision"},
      {"image-to-image", "computer_vision"},
      {"image-to-video", "computer_vision"},
      {"unconditional-image-generation", "computer_vision"},
      {"video-classification", "computer_vision"},
      {"text-to-video", "computer_vision"},
      {"zero-shot-image-classification", "computer_vision"},
      {"mask-generation", "computer_vision"},
      {"zero-shot-object-detection", "computer_vision"},
      {"text-to-3d", "computer_vision"},
      {"image-to-3d", "computer_vision"},
      {"image-feature-extraction", "computer_vision"},
      {"keypoint-detection", "computer_vision"},
      {"video-to-video", "computer_vision"},
      {"text-classification", "nlp"},
      {"token-classification", "nlp"},
      {"table-question-answering", "nlp"},
      {"question-answering", "nlp"},
      {"zero-shot-classification", "nlp"},
      {"translation", "nlp"},
      {"summarization", "nlp"},
      {"feature-extraction", "nlp"},
      {"text-generation", "nlp"},
      {"text2text-generation", "nlp"},
      {"fill-mask", "nlp"},
      {"sentence-similarity", "nlp"},
      {"text-ranking", "nlp"},
      {"text-to-speech", "audio"},
      {"text-to-audio", "audio"},
      {"automatic-speech-recognition", "audio"},
      {"audio-to-audio", "audio"},
      {"audio-classification", "audio"},
      {"voice-activity-detection", "audio"},
      {"tabular-classification", "tabular"},
      {"tabular-regression", "tabular"},
      {"time-series-forecasting", "tabular"},
      {"reinforcement-learning", "reinforcement_learning"},
      {"robotics", "reinforcement_learning"},
  };
  if (tag.empty()) return "unknown";
  const auto it = table->find(tag);
  return it == table->end() ? "other" : it->second;
}

std::string SizeOf(int64_t p) {
  if (p <= 0) return "unknown";
  if (p < 100000000) return "<100M";
  if (p < 200000000) return "100M-200M";
  if (p < 500000000) return "200M-500M";
  if (p < 1000000000) return "500M-1B";
  if (p < 10000000000) return "1B-10B";
  if (p < 100000000000) return "10B-100B";
  return ">=100B";
}

// Download-weighted shares, computed by brute force from the records.
struct LevelShares {
  absl::flat_hash_map<std::string, double> size, modality, task, license, derivation;
  // Among downloads of models with a known parameter count.
  double under_200m = 0, under_500m = 0, under_1b = 0;
};

LevelShares ComputeLevelShares(const Output& out) {
  // The final catalog: a later record for a model id replaces the earlier one.
  absl::flat_hash_map<std::string, std::string> catalog;
  for (const ModelRecord& m : out.models) catalog[m.model_id] = m.json;
  absl::flat_hash_set<std::string> seen;
  absl::flat_hash_map<std::string, int64_t> per_model;
  int64_t total = 0;
  for (const EventRecord& e : out.events) {
    if (e.kind != BadKind::kNone) continue;
    const int64_t s = absl::ToUnixSeconds(e.time);
    if (seen.insert(absl::StrCat(e.model_id, "\t", e.user_id, "\t", (s - s % 86400) / 86400))
            .second) {
      ++per_model[e.model_id];
      ++total;
    }
  }
  LevelShares shares;
  int64_t known = 0, under_200m = 0, under_500m = 0, under_1b = 0;
  for (const auto& [id, n] : per_model) {
    const double w = static_cast<double>(n) / static_cast<double>(total);
    const auto it = catalog.find(id);
    if (it == catalog.end()) {
      for (auto* level :
           {&shares.size, &shares.modality, &shares.task, &shares.license, &shares.derivation}) {
        (*level)["unknown"] += w;
      }
      continue;
    }
    const std::string& json = it->second;
    int64_t params = 0;
    if (const auto p = Field(json, "parameters"); p && !absl::SimpleAtoi(*p, &params)) params = 0;
    const std::string tag = Field(json, "pipeline_tag").value_or("");
    const std::string license = absl::AsciiStrToLower(Field(json, "license").value_or(""));
    const std::string base = Field(json, "base_model").value_or("");
    const std::string relation = Field(json, "base_relation").value_or("");
    shares.size[SizeOf(params)] += w;
    shares.modality[Modality(tag)] += w;
    shares.task[tag.empty() ? "unknown" : tag] += w;
    shares.license[license.empty() ? "unknown" : license] += w;
    shares.derivation[base.empty() ? "original" : relation.empty() ? "derived" : relation] += w;
    if (params > 0) {
      known += n;
      under_200m += params < 200000000 ? n : 0;
      under_500m += params < 500000000 ? n : 0;
      under_1b += params < 1000000000 ? n : 0;
    }
  }
  shares.under_200m = static_cast<double>(under_200m) / static_cast<double>(known);
  shares.under_500m = static_cast<double>(under_500m) / static_cast<double>(known);
  shares.under_1b = static_cast<double>(under_1b) / static_cast<double>(known);
  return shares;
}

double ShareOf(const absl::flat_hash_map<std::string, double>& shares, const std::string& value) {
  const auto it = shares.find(value);
  return it == shares.end() ? 0.0 : it->second;
}

// The value with the largest share.
std::string Largest(const absl::flat_hash_map<std::string, double>& shares) {
  std::string best;
  double best_share = -1;
  for (const auto& [value, share] : shares) {
    if (share > best_share) {
      best = value;
      best_share = share;
    }
  }
  return best;
}

TEST(TrafficTest, SameSeedSameBytes) {
  const Output a = Generate(Small(7));
  const Output b = Generate(Small(7));
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_GT(a.events.size(), 0u);
}

TEST(TrafficTest, DifferentSeedDifferentBytes) {
  EXPECT_NE(Generate(Small(7)).bytes, Generate(Small(8)).bytes);
}

TEST(TrafficTest, CatalogAndEventStreamsAreIndependent) {
  EXPECT_EQ(Generate(Small(3)).bytes, Generate(Small(3), /*events_first=*/true).bytes);
}

TEST(TrafficTest, RejectsBadOptions) {
  TrafficOptions o = Small(1);
  o.models = 10;
  EXPECT_FALSE(TrafficGenerator::Create(o).ok());
  o = Small(1);
  o.bad_fraction = 0.9;
  EXPECT_FALSE(TrafficGenerator::Create(o).ok());
  o = Small(1);
  o.days = 0;
  EXPECT_FALSE(TrafficGenerator::Create(o).ok());
}

class DefaultShapeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TrafficOptions o;  // the defaults, with fewer events to keep the test quick
    o.events = 100000;
    options_ = new TrafficOptions(o);
    output_ = new Output(Generate(o));
  }
  static void TearDownTestSuite() {
    delete output_;
    delete options_;
  }
  static TrafficOptions* options_;
  static Output* output_;
};
TrafficOptions* DefaultShapeTest::options_ = nullptr;
Output* DefaultShapeTest::output_ = nullptr;

TEST_F(DefaultShapeTest, ProducesTheRequestedNumberOfEvents) {
  EXPECT_EQ(static_cast<int64_t>(output_->events.size()), options_->events);
  for (const EventRecord& e : output_->events) {
    EXPECT_EQ(e.json.find('\n'), std::string::npos);
    ASSERT_FALSE(e.json.empty());
  }
}

TEST_F(DefaultShapeTest, DuplicatesAndConcentrationLookLikeTheHub) {
  absl::flat_hash_set<std::string> seen;
  absl::flat_hash_map<std::string, int64_t> per_model;
  int64_t good = 0, dups = 0;
  for (const EventRecord& e : output_->events) {
    if (e.kind != BadKind::kNone) continue;
    ++good;
    // Our own day arithmetic, not the generator's.
    const int64_t day =
        (absl::ToUnixSeconds(e.time) - (absl::ToUnixSeconds(e.time) % 86400)) / 86400;
    if (seen.insert(absl::StrCat(e.model_id, "\t", e.user_id, "\t", day)).second) {
      ++per_model[e.model_id];
    } else {
      ++dups;
    }
  }
  const double dup_fraction = static_cast<double>(dups) / good;
  EXPECT_GT(dup_fraction, 0.28);
  EXPECT_LT(dup_fraction, 0.42);
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const auto& [m, c] : per_model) {
    counts.push_back(c);
    total += c;
  }
  std::sort(counts.begin(), counts.end(), std::greater<>());
  int64_t top200 = 0;
  for (size_t i = 0; i < 200 && i < counts.size(); ++i) top200 += counts[i];
  const double share = static_cast<double>(top200) / total;
  EXPECT_GT(share, 0.4);
  EXPECT_LT(share, 0.65);
  EXPECT_GT(counts.size(), 1500u);  // a long tail, not a handful of models
}

TEST_F(DefaultShapeTest, BadRecordsCoverEveryReason) {
  std::vector<int64_t> by_kind(kNumBadKinds, 0);
  for (const EventRecord& e : output_->events) ++by_kind[static_cast<int>(e.kind)];
  int64_t bad = 0;
  for (int k = 1; k < kNumBadKinds; ++k) {
    EXPECT_GT(by_kind[k], 20) << BadKindName(static_cast<BadKind>(k));
    bad += by_kind[k];
  }
  const double expected = options_->bad_fraction * options_->events;
  EXPECT_GT(bad, expected * 0.8);
  EXPECT_LT(bad, expected * 1.2);
}

TEST_F(DefaultShapeTest, TooLargeRecordsAreWellFormedEventsJustOverTheDefaultLimitAndBounded) {
  int64_t n = 0;
  for (const EventRecord& e : output_->events) {
    if (e.kind != BadKind::kTooLarge) continue;
    ++n;
    EXPECT_GE(static_cast<int64_t>(e.json.size()), kTooLargeMinBytes);
    EXPECT_LT(static_cast<int64_t>(e.json.size()), kTooLargeMinBytes + 1024);
    // Only its size is wrong: the fields are those of a good event.
    EXPECT_EQ(Field(e.json, "model_id"), e.model_id);
    EXPECT_EQ(Field(e.json, "user_id"), e.user_id);
    EXPECT_EQ(e.json.back(), '}');
  }
  EXPECT_GT(n, 20);
  EXPECT_LE(n, kMaxTooLargeRecords);
}

TEST_F(DefaultShapeTest, EventsAreRoughlyInTimeOrder) {
  std::optional<absl::Time> max_time;
  int64_t out_of_order = 0;
  for (const EventRecord& e : output_->events) {
    if (e.kind != BadKind::kNone) continue;
    if (max_time) {
      EXPECT_GT(e.time, *max_time - absl::Minutes(25));
      if (e.time < *max_time) ++out_of_order;
    }
    max_time = std::max(max_time.value_or(e.time), e.time);
  }
  EXPECT_GT(out_of_order, 100);
  // The sample spans the requested days.
  const absl::Time first = options_->start;
  EXPECT_GT(*max_time, first + absl::Hours(24 * (options_->days - 1)));
  EXPECT_LT(*max_time, first + absl::Hours(24 * options_->days) + absl::Minutes(15));
}

TEST_F(DefaultShapeTest, CatalogHasTheEdgeCases) {
  absl::flat_hash_map<std::string, std::string> base;  // last record wins
  absl::flat_hash_map<std::string, std::string> created;
  absl::flat_hash_set<std::string> ids;
  for (const ModelRecord& m : output_->models) {
    ASSERT_EQ(Field(m.json, "model_id"), m.model_id);
    ids.insert(m.model_id);
    base[m.model_id] = Field(m.json, "base_model").value_or("");
    created[m.model_id] = Field(m.json, "created_at").value_or("");
  }
  EXPECT_EQ(static_cast<int>(ids.size()), options_->models);
  EXPECT_GT(output_->models.size(), ids.size()) << "no re-published records";

  int cycles = 0, over_32 = 0, missing_base = 0, derived = 0, depth_2_to_4 = 0;
  for (const auto& [id, b] : base) {
    if (b.empty()) continue;
    ++derived;
    if (!ids.contains(b)) ++missing_base;
    absl::flat_hash_set<std::string> visited = {id};
    std::string r = id;
    int links = 0;
    bool cycle = false;
    while (base.contains(r) && !base[r].empty()) {
      if (!visited.insert(base[r]).second) {
        cycle = true;
        break;
      }
      r = base[r];
      ++links;
    }
    cycles += cycle;
    over_32 += links > 32;
    depth_2_to_4 += links >= 2 && links <= 4;
  }
  EXPECT_GT(cycles, 0);
  EXPECT_GT(over_32, 0);
  EXPECT_GT(missing_base, 0);
  EXPECT_GT(depth_2_to_4, 20);
  EXPECT_GT(derived, options_->models / 5);

  int legacy = 0;
  for (const std::string& id : ids) legacy += id.find('/') == std::string::npos;
  EXPECT_GE(legacy, 3);

  // created_at: some unknown, some crossing the 365-day edge, some in the sample.
  const absl::Time start = options_->start;
  int unknown = 0, edge = 0, in_sample = 0;
  for (const auto& [id, c] : created) {
    if (c.empty()) {
      ++unknown;
      continue;
    }
    auto t = ParseRfc3339(c);
    ASSERT_TRUE(t.ok()) << c;
    const double days_before = absl::ToDoubleHours(start - *t) / 24;
    edge += days_before > 300 && days_before < 366;
    in_sample += days_before < 0;
  }
  EXPECT_GT(unknown, 10);
  EXPECT_GT(edge, 20);
  EXPECT_GT(in_sample, 20);

  // Downloads of models that have no catalog record.
  absl::flat_hash_set<std::string> uncatalogued;
  for (const EventRecord& e : output_->events) {
    if (e.kind == BadKind::kNone && !ids.contains(e.model_id)) uncatalogued.insert(e.model_id);
  }
  EXPECT_GT(uncatalogued.size(), 3u);
}

// The paper's shapes (weighted by downloads, not by model count), within
// generous bounds: the generator is random, the targets approximate.
TEST_F(DefaultShapeTest, DownloadWeightedAttributesLookLikeTheHub) {
  const LevelShares s = ComputeLevelShares(*output_);
  // Sizes: < 200M ~70%, < 500M ~86%, < 1B ~92% of downloads (of known size).
  EXPECT_GT(s.under_200m, 0.60);
  EXPECT_LT(s.under_200m, 0.82);
  EXPECT_GT(s.under_500m, 0.78);
  EXPECT_LT(s.under_500m, 0.94);
  EXPECT_GT(s.under_1b, 0.86);
  EXPECT_LT(s.under_1b, 0.97);
  EXPECT_GT(ShareOf(s.size, "unknown"), 0.0);
  EXPECT_LT(ShareOf(s.size, "unknown"), 0.2);
  EXPECT_GT(ShareOf(s.size, "1B-10B"), 0.0);
  EXPECT_GT(ShareOf(s.size, ">=100B"), 0.0);

  // Text dominates; then computer vision and audio; multimodal is small.
  EXPECT_EQ(Largest(s.modality), "nlp");
  EXPECT_GT(ShareOf(s.modality, "nlp"), 0.5);
  EXPECT_LT(ShareOf(s.modality, "nlp"), 0.85);
  EXPECT_GT(ShareOf(s.modality, "computer_vision"), 0.05);
  EXPECT_GT(ShareOf(s.modality, "audio"), 0.02);
  EXPECT_GT(ShareOf(s.modality, "computer_vision"), ShareOf(s.modality, "multimodal"));
  EXPECT_GT(ShareOf(s.modality, "audio"), ShareOf(s.modality, "multimodal"));
  for (const std::string m : {"multimodal", "tabular", "reinforcement_learning", "other"}) {
    EXPECT_GT(ShareOf(s.modality, m), 0.0) << m;
    EXPECT_LT(ShareOf(s.modality, m), 0.05) << m;
  }
  EXPECT_GT(ShareOf(s.modality, "unknown"), 0.0);
  EXPECT_LT(ShareOf(s.modality, "unknown"), 0.15);
  for (const std::string t : {"fill-mask", "sentence-similarity", "feature-extraction",
                              "text-classification", "text-generation"}) {
    EXPECT_GT(ShareOf(s.task, t), 0.02) << t;
  }

  // apache-2.0 most, then mit; the others present, some records without one.
  EXPECT_EQ(Largest(s.license), "apache-2.0");
  EXPECT_GT(ShareOf(s.license, "apache-2.0"), 0.35);
  EXPECT_LT(ShareOf(s.license, "apache-2.0"), 0.75);
  EXPECT_GT(ShareOf(s.license, "mit"), 0.08);
  EXPECT_GT(ShareOf(s.license, "unknown"), 0.0);
  EXPECT_LT(ShareOf(s.license, "unknown"), 0.2);
  for (const std::string l : {"other", "cc-by-4.0", "openrail", "gemma", "llama3.1"}) {
    EXPECT_GT(ShareOf(s.license, l), 0.0) << l;
  }

  // Mostly originals, a good fraction of finetunes, every relation present.
  EXPECT_EQ(Largest(s.derivation), "original");
  EXPECT_GT(ShareOf(s.derivation, "original"), 0.5);
  EXPECT_LT(ShareOf(s.derivation, "original"), 0.85);
  EXPECT_GT(ShareOf(s.derivation, "finetune"), 0.08);
  EXPECT_LT(ShareOf(s.derivation, "finetune"), 0.4);
  for (const std::string d : {"quantized", "adapter", "merge", "derived", "unknown"}) {
    EXPECT_GT(ShareOf(s.derivation, d), 0.0) << d;
    EXPECT_LT(ShareOf(s.derivation, d), 0.1) << d;
  }
}

TEST_F(DefaultShapeTest, DerivedModelsSayHowMostly) {
  absl::flat_hash_map<std::string, std::string> catalog;  // last record wins
  for (const ModelRecord& m : output_->models) catalog[m.model_id] = m.json;
  absl::flat_hash_map<std::string, int> relations;
  int derived = 0;
  for (const auto& [id, json] : catalog) {
    if (Field(json, "base_model").value_or("").empty()) continue;
    ++derived;
    ++relations[Field(json, "base_relation").value_or("")];
  }
  for (const std::string r : {"finetune", "adapter", "quantized", "merge"}) {
    EXPECT_GT(relations[r], 10) << r;
  }
  EXPECT_GT(relations[""], 10);
  EXPECT_LT(relations[""], derived / 4);
  EXPECT_EQ(relations.size(), 5u);
}

TEST_F(DefaultShapeTest, ShapeReportMatchesTheEvents) {
  auto gen = TrafficGenerator::Create(*options_);
  ASSERT_TRUE(gen.ok());
  while ((*gen)->NextEvent()) {
  }
  const TrafficShape shape = (*gen)->Shape();
  EXPECT_EQ(shape.events, options_->events);
  EXPECT_EQ(shape.unique_downloads + shape.duplicates, shape.good_events);
  const std::string report = FormatShape(shape);
  EXPECT_THAT(report, ::testing::HasSubstr("top 200 models share"));
  EXPECT_THAT(report, ::testing::HasSubstr("too_late="));
  EXPECT_THAT(report, ::testing::HasSubstr("downloads by derivation:  original "));

  // The report's download-weighted shares are the brute-force ones.
  const LevelShares want = ComputeLevelShares(*output_);
  EXPECT_NEAR(shape.under_200m_share, want.under_200m, 1e-9);
  EXPECT_NEAR(shape.under_500m_share, want.under_500m, 1e-9);
  EXPECT_NEAR(shape.under_1b_share, want.under_1b, 1e-9);
  auto expect_same = [](const TrafficShape::Shares& got,
                        const absl::flat_hash_map<std::string, double>& expected,
                        const std::string& level) {
    EXPECT_EQ(got.size(), expected.size()) << level;
    double sum = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const auto& [value, share] = got[i];
      EXPECT_NEAR(share, ShareOf(expected, value), 1e-9) << level << " " << value;
      sum += share;
      if (level != "size" && i > 0) {
        EXPECT_LE(share, got[i - 1].second) << level;  // largest first
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-9) << level;
  };
  expect_same(shape.by_size, want.size, "size");
  expect_same(shape.by_modality, want.modality, "modality");
  expect_same(shape.by_task, want.task, "task");
  expect_same(shape.by_license, want.license, "license");
  expect_same(shape.by_derivation, want.derivation, "derivation");
}

}  // namespace
}  // namespace hubmetrics::loadgen
