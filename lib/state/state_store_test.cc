#include "lib/state/state_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "lib/state/keys.h"

namespace hubmetrics {
namespace {

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hm_state_XXXXXX").string();
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

v1::ModelInfo Model(const std::string& id, const std::string& dev) {
  v1::ModelInfo m;
  m.set_model_id(id);
  m.set_developer(dev);
  return m;
}

TEST(StateKeys, DaysSortNumericallyAcrossZero) {
  std::string a, b, c;
  state_keys::AppendDay(&a, -5);
  state_keys::AppendDay(&b, 0);
  state_keys::AppendDay(&c, 20000);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(state_keys::ReadDay(a), -5);
  EXPECT_EQ(state_keys::ReadDay(c), 20000);
}

TEST(StateKeys, RoundTrip) {
  auto d = state_keys::ParseDailyKey(state_keys::DailyKey("org/model", 20123));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, "org/model");
  EXPECT_EQ(d->second, 20123);
  auto k = state_keys::ParseDedupKey(state_keys::DedupKey(20123, 0xfeedbeef12345678ull, "gpt2"));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->day, 20123);
  EXPECT_EQ(k->user_hash, 0xfeedbeef12345678ull);
  EXPECT_EQ(k->model_id, "gpt2");
  EXPECT_EQ(state_keys::DecodeFixed64(state_keys::EncodeFixed64(1ull << 60)), 1ull << 60);
  EXPECT_FALSE(state_keys::DecodeFixed64("short"));
}

// The same contract, checked on the real RocksDB store and on the fake.
class StateStoreContract : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) dir_ = TempDir();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    if (!GetParam()) {
      if (!store_) store_ = std::make_unique<FakeStateStore>();
      return;
    }
    store_.reset();
    auto s = OpenRocksDbStateStore(dir_, RocksDbStateOptions{});
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  std::string dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(StateStoreContract, CommitThenReloadReturnsEverything) {
  StateCommit c;
  c.dedup_inserts = {{100, 7, "a/x"}, {101, 8, "b"}, {99, 9, "a/x"}};
  c.daily_counts = {{"a/x", 100, 3}, {"b", 101, 1}};
  c.catalog_puts = {Model("a/x", "alice"), Model("b", "bob")};
  c.offsets = {{"file:/e.ndjson", 1234}};
  c.watermark_micros = 1700000000000000;
  v1::IngestStats counters;
  counters.set_events_read(10);
  counters.set_unique_downloads(4);
  c.counters = counters;
  ASSERT_TRUE(store_->Commit(c).ok());

  StateCommit c2;
  c2.daily_counts = {{"a/x", 100, 5}};
  c2.catalog_deletes = {"b"};
  c2.offsets = {{"file:/e.ndjson", 2000}};
  c2.drop_dedup_before = 100;
  ASSERT_TRUE(store_->Commit(c2).ok());
  Reopen();

  auto loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->watermark_micros, 1700000000000000);
  EXPECT_EQ(loaded->counters.events_read(), 10u);
  EXPECT_EQ(loaded->counters.unique_downloads(), 4u);
  ASSERT_EQ(loaded->catalog.size(), 1u);
  EXPECT_EQ(loaded->catalog[0].developer(), "alice");
  EXPECT_EQ(loaded->offsets.at("file:/e.ndjson"), 2000);
  std::map<std::pair<std::string, Day>, uint64_t> daily;
  for (const auto& d : loaded->daily_counts) daily[{d.model_id, d.day}] = d.count;
  EXPECT_EQ(daily,
            (std::map<std::pair<std::string, Day>, uint64_t>{{{"a/x", 100}, 5}, {{"b", 101}, 1}}));

  std::vector<std::tuple<Day, uint64_t, std::string>> keys;
  ASSERT_TRUE(store_
                  ->ForEachDedupKey(INT32_MIN,
                                    [&](const StoredDedupKey& k) {
                                      keys.emplace_back(k.day, k.user_hash, k.model_id);
                                    })
                  .ok());
  // Day 99 was dropped; 100 and 101 remain, in key order.
  EXPECT_THAT(
      keys, ::testing::ElementsAre(std::make_tuple(100, 7u, "a/x"), std::make_tuple(101, 8u, "b")));
  keys.clear();
  ASSERT_TRUE(store_
                  ->ForEachDedupKey(101,
                                    [&](const StoredDedupKey& k) {
                                      keys.emplace_back(k.day, k.user_hash, k.model_id);
                                    })
                  .ok());
  EXPECT_EQ(keys.size(), 1u);
}

TEST_P(StateStoreContract, EmptyStoreLoadsEmpty) {
  auto loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->watermark_micros);
  EXPECT_TRUE(loaded->catalog.empty());
  EXPECT_TRUE(loaded->daily_counts.empty());
}

INSTANTIATE_TEST_SUITE_P(RealAndFake, StateStoreContract, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "RocksDb" : "Fake";
                         });

TEST(RocksDbStateStore, SecondOpenOfSameDirectoryIsUnavailable) {
  std::string dir = TempDir();
  auto first = OpenRocksDbStateStore(dir, {});
  ASSERT_TRUE(first.ok());
  auto second = OpenRocksDbStateStore(dir, {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  first->reset();
  std::filesystem::remove_all(dir);
}

TEST(FakeStateStore, FailureSwitchAppliesNothing) {
  FakeStateStore store;
  store.FailNextCommits(1, absl::UnavailableError("disk gone"));
  StateCommit c;
  c.daily_counts = {{"m", 1, 1}};
  EXPECT_EQ(store.Commit(c).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store.Load()->daily_counts.empty());
  EXPECT_TRUE(store.Commit(c).ok());
  EXPECT_EQ(store.Load()->daily_counts.size(), 1u);
}

}  // namespace
}  // namespace hubmetrics
