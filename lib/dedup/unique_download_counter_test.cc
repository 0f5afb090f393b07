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

// InsertBatch against a std::set oracle: batches spanning several days, with
// triples repeated inside a batch and across batches, and sets large enough to
// rehash while a batch is inserted.
TEST(UniqueDownloadCounter, InsertBatchMatchesASet) {
  std::mt19937_64 rng(5);
  UniqueDownloadCounter c;
  std::set<std::tuple<Day, ModelIdx, uint64_t>> oracle;
  std::vector<UniqueDownloadCounter::Triple> batch;
  std::vector<uint8_t> fresh = {7, 7, 7};  // stale contents must be overwritten
  size_t new_seen = 0;
  for (int round = 0; round < 40; ++round) {
    batch.clear();
    const size_t n = rng() % 5000;
    for (size_t i = 0; i < n; ++i) {
      if (!batch.empty() && rng() % 5 == 0) {
        batch.push_back(batch[rng() % batch.size()]);  // a duplicate within the batch
        continue;
      }
      batch.push_back(
          {static_cast<Day>(20000 + rng() % 6), static_cast<ModelIdx>(rng() % 40), rng() % 2000});
    }
    c.InsertBatch(batch, &fresh);
    ASSERT_EQ(fresh.size(), batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      const bool want = oracle.insert({batch[i].day, batch[i].model, batch[i].user_hash}).second;
      ASSERT_EQ(fresh[i], want ? 1 : 0) << "round " << round << " triple " << i;
      new_seen += want ? 1 : 0;
    }
    ASSERT_EQ(c.size(), oracle.size());
  }
  EXPECT_GT(new_seen, 10000u);  // the traffic had both outcomes
  EXPECT_LT(new_seen, 40u * 2500u);
  for (const auto& [d, m, u] : oracle) ASSERT_TRUE(c.Contains(d, m, u));
  // A batch and single inserts share the same sets.
  const auto& [d0, m0, u0] = *oracle.begin();
  EXPECT_FALSE(c.Insert(d0, m0, u0));
  c.InsertBatch({}, &fresh);
  EXPECT_TRUE(fresh.empty());
}

}  // namespace
}  // namespace hubmetrics
