#include "lib/dedup/unique_download_counter.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

namespace hubmetrics {
namespace {

TEST(UniqueDownloadCounter, OnePerModelUserDay) {
  UniqueDownloadCounter c;
  EXPECT_TRUE(c.Insert(10, 1, 42));
  EXPECT_FALSE(c.Insert(10, 1, 42));
  EXPECT_TRUE(c.Insert(11, 1, 42));  // next day
  EXPECT_TRUE(c.Insert(10, 2, 42));  // other model
  EXPECT_TRUE(c.Insert(10, 1, 43));  // other user
  EXPECT_EQ(c.size(), 4u);
  EXPECT_TRUE(c.Contains(10, 1, 42));
  EXPECT_FALSE(c.Contains(12, 1, 42));
}

TEST(UniqueDownloadCounter, DropDaysBeforeForgetsOnlyOlderDays) {
  UniqueDownloadCounter c;
  c.Insert(9, 1, 1);
  c.Insert(10, 1, 1);
  c.Insert(11, 1, 1);
  c.DropDaysBefore(10);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_FALSE(c.Contains(9, 1, 1));
  EXPECT_TRUE(c.Insert(9, 1, 1));  // forgotten: counts as new again
  EXPECT_FALSE(c.Insert(10, 1, 1));
}

TEST(UniqueDownloadCounter, MatchesASetOnRandomTraffic) {
  std::mt19937_64 rng(3);
  UniqueDownloadCounter c;
  std::set<std::tuple<Day, ModelIdx, uint64_t>> oracle;
  for (int i = 0; i < 200000; ++i) {
    Day d = static_cast<Day>(rng() % 8);
    ModelIdx m = static_cast<ModelIdx>(rng() % 50);
    uint64_t u = rng() % 300;
    ASSERT_EQ(c.Insert(d, m, u), oracle.insert({d, m, u}).second);
  }
  EXPECT_EQ(c.size(), oracle.size());
}

}  // namespace
}  // namespace hubmetrics
