#include "services/loadgen/traffic.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
}

}  // namespace
}  // namespace hubmetrics::loadgen
