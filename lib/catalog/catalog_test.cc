#include "lib/catalog/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "absl/strings/str_cat.h"

namespace hubmetrics {
namespace {

using ::testing::ElementsAre;

v1::ModelInfo Rec(const std::string& id, const std::string& base = "", const std::string& dev = "",
                  const std::string& country = "") {
  v1::ModelInfo m;
  m.set_model_id(id);
  m.set_base_model(base);
  m.set_developer(dev);
  m.set_country(country);
  return m;
}

class CatalogTest : public ::testing::Test {
 protected:
  ModelIdx I(const std::string& id) { return registry_.Intern(id); }
  ModelRegistry registry_;
  Catalog catalog_{&registry_};
};

TEST_F(CatalogTest, RegistryInternsOnce) {
  EXPECT_EQ(I("a/b"), I("a/b"));
  EXPECT_NE(I("a/b"), I("a/c"));
  EXPECT_EQ(registry_.Name(I("a/c")), "a/c");
  EXPECT_FALSE(registry_.Find("nope"));
  for (int i = 0; i < 10000; ++i) I(absl::StrCat("m", i));  // growth keeps names valid
  EXPECT_EQ(registry_.Name(*registry_.Find("a/b")), "a/b");
}

TEST_F(CatalogTest, DeveloperAndCountryFallbacks) {
  catalog_.Put(Rec("google-bert/bert-base-uncased", "", "Google", "US"));
  EXPECT_EQ(catalog_.Developer(I("google-bert/bert-base-uncased")), "Google");
  EXPECT_EQ(catalog_.Country(I("google-bert/bert-base-uncased")), "US");
  EXPECT_EQ(catalog_.Developer(I("someone/model")), "someone");  // no record: namespace
  EXPECT_EQ(catalog_.Developer(I("gpt2")), "gpt2");              // legacy id: itself
  EXPECT_EQ(catalog_.Country(I("someone/model")), "Unknown");
  catalog_.Put(Rec("x/y"));  // record with empty developer: namespace
  EXPECT_EQ(catalog_.Developer(I("x/y")), "x");
}

TEST_F(CatalogTest, RootFollowsChainsAndStopsAtMissingRecords) {
  catalog_.Put(Rec("c", "b"));
  catalog_.Put(Rec("b", "a"));
  catalog_.Put(Rec("a"));
  EXPECT_EQ(catalog_.Root(I("c")), I("a"));
  EXPECT_EQ(catalog_.Root(I("a")), I("a"));
  catalog_.Put(Rec("d", "not-in-catalog"));
  EXPECT_EQ(catalog_.Root(I("d")), I("not-in-catalog"));
  EXPECT_EQ(catalog_.Root(I("unknown")), I("unknown"));
}

TEST_F(CatalogTest, CycleCreditsTheDownloadedModel) {
  catalog_.Put(Rec("p", "q"));
  catalog_.Put(Rec("q", "p"));
  catalog_.Put(Rec("r", "p"));  // chain runs into a cycle it is not part of
  catalog_.Put(Rec("s", "s"));  // self-loop
  EXPECT_EQ(catalog_.Root(I("p")), I("p"));
  EXPECT_EQ(catalog_.Root(I("q")), I("q"));
  EXPECT_EQ(catalog_.Root(I("r")), I("r"));
  EXPECT_EQ(catalog_.Root(I("s")), I("s"));
}

TEST_F(CatalogTest, DepthLimitIs32Links) {
  // m0 -> m1 -> ... -> m33 (m33 has a record without base).
  for (int i = 0; i < 33; ++i) catalog_.Put(Rec(absl::StrCat("m", i), absl::StrCat("m", i + 1)));
  catalog_.Put(Rec("m33"));
  EXPECT_EQ(catalog_.Root(I("m1")), I("m33"));  // 32 links: allowed
  EXPECT_EQ(catalog_.Root(I("m0")), I("m0"));   // 33 links: credited to itself
}

TEST_F(CatalogTest, PutReplacesAndRemoveForgets) {
  catalog_.Put(Rec("c", "a", "dev1"));
  catalog_.Put(Rec("c", "b", "dev2"));
  EXPECT_EQ(catalog_.size(), 1u);
  EXPECT_EQ(catalog_.Root(I("c")), I("b"));
  EXPECT_EQ(catalog_.Developer(I("c")), "dev2");
  EXPECT_THAT(catalog_.AffectedBy(I("a")), ElementsAre(I("a")));  // old edge gone
  catalog_.Remove(I("c"));
  EXPECT_EQ(catalog_.size(), 0u);
  EXPECT_EQ(catalog_.Find(I("c")), nullptr);
  EXPECT_EQ(catalog_.Root(I("c")), I("c"));
}

TEST_F(CatalogTest, CreatedDayAndRollingYear) {
  v1::ModelInfo m = Rec("x/y");
  m.mutable_created_at()->set_seconds(86400 * 100 + 5);
  catalog_.Put(m);
  EXPECT_EQ(catalog_.CreatedDay(I("x/y")), 100);
  EXPECT_FALSE(catalog_.CreatedDay(I("other")));
  EXPECT_TRUE(InRollingYear(100, 100));
  EXPECT_TRUE(InRollingYear(100, 465));
  EXPECT_FALSE(InRollingYear(100, 466));
  EXPECT_FALSE(InRollingYear(100, 99));
  EXPECT_FALSE(InRollingYear(std::nullopt, 100));
}

// AffectedBy must equal, on random graphs with cycles, the brute-force set of
// models whose base_model walk (from the model, through records) reaches m.
TEST_F(CatalogTest, AffectedByMatchesBruteForceOnRandomGraphs) {
  std::mt19937_64 rng(7);
  const int n = 300;
  std::vector<int> base(n, -1);
  for (int round = 0; round < 2000; ++round) {
    int m = static_cast<int>(rng() % n);
    int b = rng() % 4 == 0 ? -1 : static_cast<int>(rng() % n);
    base[m] = b;
    catalog_.Put(Rec(absl::StrCat("m", m), b < 0 ? "" : absl::StrCat("m", b)));
    if (round % 50 != 0) continue;
    const int target = static_cast<int>(rng() % n);
    std::set<ModelIdx> expected;
    for (int s = 0; s < n; ++s) {
      std::set<int> seen;
      for (int x = s; x >= 0 && seen.insert(x).second; x = base[x]) {
        if (x == target) {
          expected.insert(I(absl::StrCat("m", s)));
          break;
        }
      }
    }
    expected.insert(I(absl::StrCat("m", target)));
    auto got = catalog_.AffectedBy(I(absl::StrCat("m", target)));
    ASSERT_EQ(std::set<ModelIdx>(got.begin(), got.end()), expected) << "round " << round;
  }
}

}  // namespace
}  // namespace hubmetrics
