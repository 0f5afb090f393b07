#include "lib/state/state_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "lib/state/keys.h"
#include "rocksdb/db.h"

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

// The store's RocksDB opened directly, with the column families an older
// format version had: to write a state as such a version did, or to look at
// what the store wrote.
class RawStateDb {
 public:
  enum Column { kMeta = 1, kCatalog, kDaily, kDedup, kOffsets };
  enum class Mode { kCreate, kReadOnly };

  RawStateDb(const std::string& dir, Mode mode) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : {"default", "meta", "catalog", "daily", "dedup", "offsets"}) {
      cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    const rocksdb::Status s =
        mode == Mode::kCreate
            ? rocksdb::DB::Open(options, dir + "/rocksdb", cfs, &handles_, &db_)
            : rocksdb::DB::OpenForReadOnly(options, dir + "/rocksdb", cfs, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawStateDb() {
    if (db_ == nullptr) return;
    for (auto* h : handles_) EXPECT_TRUE(db_->DestroyColumnFamilyHandle(h).ok());
    delete db_;
  }
  RawStateDb(const RawStateDb&) = delete;
  RawStateDb& operator=(const RawStateDb&) = delete;

  bool ok() const { return db_ != nullptr; }
  void Put(Column cf, const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), handles_[cf], key, value).ok()) << key;
  }
  std::string Get(Column cf, const std::string& key) {
    std::string value;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), handles_[cf], key, &value).ok()) << key;
    return value;
  }
  std::vector<std::string> Keys(Column cf) {
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[cf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
    return keys;
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

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

TEST(StateKeys, DedupRecordRoundTrip) {
  std::string record;
  const uint64_t a[] = {1, 0xffffffffffffffffull};
  const uint64_t b[] = {0x0102030405060708ull};
  state_keys::AppendDedupGroup(&record, "org/a", a);
  state_keys::AppendDedupGroup(&record, std::string(200, 'm'), b);
  std::vector<std::pair<std::string, uint64_t>> got;
  ASSERT_TRUE(state_keys::ForEachInDedupRecord(
      record, [&](std::string_view m, uint64_t h) { got.emplace_back(std::string(m), h); }));
  EXPECT_THAT(got, ::testing::ElementsAre(std::make_pair(std::string("org/a"), a[0]),
                                          std::make_pair(std::string("org/a"), a[1]),
                                          std::make_pair(std::string(200, 'm'), b[0])));
  // Truncated anywhere but between groups: reported, never read past the end.
  const size_t first_group = 1 + 5 + 1 + 16;
  for (size_t n = 1; n < record.size(); ++n) {
    if (n == first_group) continue;
    EXPECT_FALSE(state_keys::ForEachInDedupRecord(std::string_view(record).substr(0, n),
                                                  [](std::string_view, uint64_t) {}))
        << n;
  }
  auto key = state_keys::ParseDedupRecordKey(state_keys::DedupRecordKey(-3, 77));
  ASSERT_TRUE(key);
  EXPECT_EQ(key->first, -3);
  EXPECT_EQ(key->second, 77u);
}

// A state written by format version 1 (one key per triple) is converted on
// open and reads back the same triples.
TEST(RocksDbStateStore, ConvertsFormatVersion1) {
  const std::string dir = TempDir();
  {
    RawStateDb db(dir, RawStateDb::Mode::kCreate);
    ASSERT_TRUE(db.ok());
    db.Put(RawStateDb::kMeta, "format_version", "1");
    db.Put(RawStateDb::kDedup, state_keys::DedupKeyV1(100, 7, "a/x"), "");
    db.Put(RawStateDb::kDedup, state_keys::DedupKeyV1(100, 9, "a/x"), "");
    db.Put(RawStateDb::kDedup, state_keys::DedupKeyV1(101, 8, "b"), "");
    // Day 90 was dropped from dedup earlier: only its daily count remains.
    db.Put(RawStateDb::kDaily, state_keys::DailyKey("a/x", 90), state_keys::EncodeFixed64(4));
  }
  for (int open = 0; open < 2; ++open) {  // converted once, then read as the current version
    auto store = OpenRocksDbStateStore(dir, RocksDbStateOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    auto loaded = (*store)->Load();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->dedup_floor, 100);  // the oldest day whose triples were all kept
    std::vector<std::tuple<Day, uint64_t, std::string>> keys;
    ASSERT_TRUE((*store)
                    ->ForEachDedupKey(INT32_MIN,
                                      [&](const StoredDedupKey& k) {
                                        keys.emplace_back(k.day, k.user_hash, k.model_id);
                                      })
                    .ok());
    EXPECT_THAT(keys, ::testing::IsSupersetOf({std::make_tuple(100, 7u, "a/x"),
                                               std::make_tuple(100, 9u, "a/x"),
                                               std::make_tuple(101, 8u, "b")}));
    EXPECT_EQ(keys.size(), 3u + open);
    // New records do not collide with the converted ones.
    StateCommit c;
    c.dedup_groups = {{100, "c", {open + 1u}}};
    ASSERT_TRUE((*store)->Commit(c).ok());
  }
  std::filesystem::remove_all(dir);
}

TEST(StateKeys, DailyRecordRoundTrip) {
  std::string record;
  state_keys::AppendDailyCount(&record, "a/x", 4);
  state_keys::AppendDailyCount(&record, "b", uint64_t{1} << 40);
  std::vector<std::pair<std::string, uint64_t>> got;
  ASSERT_TRUE(state_keys::ForEachInDailyRecord(
      record, [&](std::string_view m, uint64_t n) { got.emplace_back(std::string(m), n); }));
  EXPECT_THAT(got, ::testing::ElementsAre(std::make_pair(std::string("a/x"), uint64_t{4}),
                                          std::make_pair(std::string("b"), uint64_t{1} << 40)));
  const size_t first = 1 + 3 + 8;
  for (size_t n = 1; n < record.size(); ++n) {
    if (n == first) continue;  // a whole count: a valid record of one
    EXPECT_FALSE(state_keys::ForEachInDailyRecord(std::string_view(record).substr(0, n),
                                                  [](std::string_view, uint64_t) {}))
        << n;
  }
  auto key = state_keys::ParseDailyRecordKey(state_keys::DailyRecordKey(-3, 77));
  ASSERT_TRUE(key);
  EXPECT_EQ(key->first, -3);
  EXPECT_EQ(key->second, 77u);
  // Version 2's keys are never taken for records, whatever the model id's length.
  EXPECT_FALSE(state_keys::ParseDailyRecordKey(state_keys::DailyKey("org/abcd", 90)));
  EXPECT_FALSE(state_keys::ParseDailyRecordKey(state_keys::DailyKey("a", 90)));
}

// A state of format version 2 (one daily key per (model, day)) opens as
// version 3 without rewriting them; days closed afterwards are stored one
// record per day; both kinds load.
TEST(RocksDbStateStore, ReadsVersion2DailyKeysAndStoresOneRecordPerDay) {
  const std::string dir = TempDir();
  {
    RawStateDb db(dir, RawStateDb::Mode::kCreate);
    ASSERT_TRUE(db.ok());
    db.Put(RawStateDb::kMeta, "format_version", "2");
    db.Put(RawStateDb::kDaily, state_keys::DailyKey("a/x", 90), state_keys::EncodeFixed64(4));
  }
  {
    auto store = OpenRocksDbStateStore(dir, RocksDbStateOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    StateCommit c;
    c.daily_counts = {{"b", 95, 2}, {"a/x", 95, 3}, {"b", 96, 1}};
    ASSERT_TRUE((*store)->Commit(c).ok());
  }
  auto store = OpenRocksDbStateStore(dir, RocksDbStateOptions{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::vector<std::tuple<std::string, Day, uint64_t>> daily;
  for (const StoredDailyCount& d : loaded->daily_counts)
    daily.emplace_back(d.model_id, d.day, d.count);
  EXPECT_THAT(daily, ::testing::UnorderedElementsAre(
                         std::make_tuple("a/x", 90, 4u), std::make_tuple("b", 95, 2u),
                         std::make_tuple("a/x", 95, 3u), std::make_tuple("b", 96, 1u)));
  store->reset();
  // On disk: format_version 3, version 2's key as it was, and one record per day.
  {
    RawStateDb db(dir, RawStateDb::Mode::kReadOnly);
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(db.Get(RawStateDb::kMeta, "format_version"), "3");
    const std::vector<std::string> keys = db.Keys(RawStateDb::kDaily);
    ASSERT_EQ(keys.size(), 3u);
    EXPECT_EQ(state_keys::ParseDailyRecordKey(keys[0])->first, 95);
    EXPECT_EQ(state_keys::ParseDailyRecordKey(keys[1])->first, 96);
    EXPECT_EQ(keys[2], state_keys::DailyKey("a/x", 90));
  }
  std::filesystem::remove_all(dir);
}

TEST(StateKeys, RoundTrip) {
  auto d = state_keys::ParseDailyKey(state_keys::DailyKey("org/model", 20123));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, "org/model");
  EXPECT_EQ(d->second, 20123);
  const std::string v1_key = state_keys::DedupKeyV1(20123, 0xfeedbeef12345678ull, "gpt2");
  auto k = state_keys::ParseDedupKeyV1(v1_key);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->day, 20123);
  EXPECT_EQ(k->user_hash, 0xfeedbeef12345678ull);
  EXPECT_EQ(k->model_id, "gpt2");
  EXPECT_EQ(state_keys::DecodeFixed64(state_keys::EncodeFixed64(1ull << 60)), 1ull << 60);
  EXPECT_FALSE(state_keys::DecodeFixed64("short"));
  auto part = state_keys::ParseUniquePartKey(state_keys::UniquePartKey("org/model", -7, 258));
  ASSERT_TRUE(part);
  EXPECT_EQ(part->model_id, "org/model");
  EXPECT_EQ(part->day, -7);
  EXPECT_EQ(part->partition, 258);
  // Parts of one (model, day) are adjacent, in partition order.
  EXPECT_LT(state_keys::UniquePartKey("m", 5, 1), state_keys::UniquePartKey("m", 5, 300));
  EXPECT_LT(state_keys::UniquePartKey("m", 5, 300), state_keys::UniquePartKey("m", 6, 0));
  EXPECT_FALSE(state_keys::ParseUniquePartKey("m"));
  EXPECT_FALSE(state_keys::ParseUniquePartKey(std::string("m\x01", 2) + std::string(8, 'x')));
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
  c.dedup_groups = {{100, "a/x", {7}}, {101, "b", {8}}, {99, "a/x", {9}}};
  c.daily_counts = {{"a/x", 100, 3}, {"b", 101, 1}};
  c.catalog_puts = {Model("a/x", "alice"), Model("b", "bob")};
  c.offsets = {{"file:/e.ndjson", 1234}};
  c.watermark_micros = 1700000000000000;
  c.partition_watermarks_micros = {{0, 1700000000000000}, {2, 1600000000000000}};
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
  EXPECT_EQ(loaded->partition_watermarks_micros,
            (absl::flat_hash_map<int32_t, int64_t>{{0, 1700000000000000}, {2, 1600000000000000}}));
  EXPECT_EQ(loaded->dedup_floor, 100);
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

// Dedup records encoded by the caller are stored as dedup groups are: their
// triples come back, beside those of groups of the same commit and day.
TEST_P(StateStoreContract, EncodedDedupRecordsReloadLikeGroups) {
  StateCommit c;
  c.dedup_groups = {{100, "a/x", {7}}};
  std::string day100, day101;
  const std::vector<uint64_t> first = {1, 2}, second = {3};
  state_keys::AppendDedupGroup(&day100, "a/x", first);
  state_keys::AppendDedupGroup(&day100, "b", second);
  state_keys::AppendDedupGroup(&day101, "a/x", second);
  c.dedup_records = {{100, day100}, {101, day101}};
  ASSERT_FALSE(c.empty());
  ASSERT_TRUE(store_->Commit(c).ok());
  StateCommit c2;
  c2.dedup_records = {{101, day100}};
  ASSERT_TRUE(store_->Commit(c2).ok());
  Reopen();
  ASSERT_TRUE(store_->Load().ok());
  std::set<std::tuple<Day, uint64_t, std::string>> keys;
  ASSERT_TRUE(store_
                  ->ForEachDedupKey(INT32_MIN,
                                    [&](const StoredDedupKey& k) {
                                      keys.emplace(k.day, k.user_hash, k.model_id);
                                    })
                  .ok());
  EXPECT_EQ(keys, (std::set<std::tuple<Day, uint64_t, std::string>>{{100, 7, "a/x"},
                                                                    {100, 1, "a/x"},
                                                                    {100, 2, "a/x"},
                                                                    {100, 3, "b"},
                                                                    {101, 3, "a/x"},
                                                                    {101, 1, "a/x"},
                                                                    {101, 2, "a/x"},
                                                                    {101, 3, "b"}}));
}

TEST_P(StateStoreContract, EncodedDailyRecordsReloadLikeCounts) {
  StateCommit c;
  c.daily_counts = {{"c", 99, 5}};
  std::string day100, day101;
  state_keys::AppendDailyCount(&day100, "a/x", 3);
  state_keys::AppendDailyCount(&day100, "b", 1);
  state_keys::AppendDailyCount(&day101, "a/x", 7);
  c.daily_records = {{100, day100}, {101, day101}};
  ASSERT_FALSE(c.empty());
  ASSERT_TRUE(store_->Commit(c).ok());
  StateCommit bad;
  bad.daily_records = {{102, day100.substr(0, day100.size() - 1)}};
  // A malformed record is refused whole: the state stays loadable.
  EXPECT_EQ(store_->Commit(bad).code(), absl::StatusCode::kInvalidArgument);
  Reopen();
  auto loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::set<std::tuple<std::string, Day, uint64_t>> daily;
  for (const StoredDailyCount& d : loaded->daily_counts) daily.emplace(d.model_id, d.day, d.count);
  EXPECT_EQ(daily, (std::set<std::tuple<std::string, Day, uint64_t>>{
                       {"c", 99, 5}, {"a/x", 100, 3}, {"b", 100, 1}, {"a/x", 101, 7}}));
}

TEST_P(StateStoreContract, EmptyStoreLoadsEmpty) {
  auto loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->watermark_micros);
  EXPECT_TRUE(loaded->catalog.empty());
  EXPECT_TRUE(loaded->daily_counts.empty());
  EXPECT_TRUE(loaded->unique_parts.empty());
  EXPECT_TRUE(loaded->partition_progress.empty());
  EXPECT_FALSE(loaded->role);
}

v1::PartitionProgress Progress(int32_t partition, uint64_t events, std::optional<int64_t> w) {
  v1::PartitionProgress p;
  p.set_partition(partition);
  p.set_next_offset(static_cast<int64_t>(events));
  p.set_events_read(events);
  p.set_unique_downloads(events / 2);
  p.set_duplicates(events - events / 2);
  auto* r = p.add_rejected_by_reason();
  r->set_reason("malformed");
  r->set_count(1);
  if (w) p.set_watermark_micros(*w);
  return p;
}

// The metrics role's records: absolute parts (a later value replaces an
// earlier one, across partitions, days either side of the epoch and large
// partition numbers), per-partition progress, and the role.
TEST_P(StateStoreContract, UniquePartsProgressAndRoleSurviveAReopen) {
  StateCommit c;
  c.role = "metrics";
  c.unique_parts = {{"a/x", 100, 0, 3}, {"a/x", 100, 1, 4}, {"a/x", -2, 0, 1}, {"b", 101, 7, 9}};
  c.partition_progress = {Progress(0, 10, 1700000000000000), Progress(7, 5, std::nullopt)};
  c.offsets = {{"kafka:hubmetrics.unique:0", 42}};
  EXPECT_FALSE(c.empty());
  ASSERT_TRUE(store_->Commit(c).ok());

  StateCommit c2;
  c2.unique_parts = {{"a/x", 100, 1, 6}, {"b", 101, 2147483647, 1}};
  c2.partition_progress = {Progress(0, 12, 1700000001000000)};
  ASSERT_TRUE(store_->Commit(c2).ok());
  Reopen();

  auto loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->role, "metrics");
  EXPECT_THAT(loaded->unique_parts,
              ::testing::UnorderedElementsAre(
                  StoredUniquePart{"a/x", 100, 0, 3}, StoredUniquePart{"a/x", 100, 1, 6},
                  StoredUniquePart{"a/x", -2, 0, 1}, StoredUniquePart{"b", 101, 7, 9},
                  StoredUniquePart{"b", 101, 2147483647, 1}));
  std::map<int32_t, std::string> progress;
  for (const auto& p : loaded->partition_progress) progress[p.partition()] = p.SerializeAsString();
  EXPECT_EQ(progress, (std::map<int32_t, std::string>{
                          {0, Progress(0, 12, 1700000001000000).SerializeAsString()},
                          {7, Progress(7, 5, std::nullopt).SerializeAsString()}}));
  EXPECT_EQ(loaded->offsets.at("kafka:hubmetrics.unique:0"), 42);
  // Nothing of the default role's state appears.
  EXPECT_TRUE(loaded->daily_counts.empty());
  EXPECT_FALSE(loaded->watermark_micros);
}

TEST_P(StateStoreContract, RoleAloneIsACommit) {
  StateCommit c;
  c.role = "all";
  EXPECT_FALSE(c.empty());
  ASSERT_TRUE(store_->Commit(c).ok());
  Reopen();
  EXPECT_EQ(store_->Load()->role, "all");
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

// The WAL files' bytes now. RocksDB deletes obsolete WAL files in the
// background: one listed and gone before its size is read counts nothing.
uint64_t WalBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/rocksdb")) {
    if (e.path().extension() != ".log") continue;
    std::error_code gone;
    const uintmax_t size = std::filesystem::file_size(e.path(), gone);
    if (!gone) total += size;
  }
  return total;
}

// Every commit also writes the small column families (offsets, meta), which
// never fill a memtable: without the WAL bound they would keep every WAL file
// since the first commit.
TEST(RocksDbStateStore, WalStaysNearItsBound) {
  std::string dir = TempDir();
  RocksDbStateOptions options;
  options.max_wal_bytes = 2 << 20;
  auto store = OpenRocksDbStateStore(dir, options);
  ASSERT_TRUE(store.ok()) << store.status();
  constexpr int kCommits = 48;
  constexpr size_t kHashesPerCommit = 32 << 10;  // 256 KiB of user hashes
  for (int i = 0; i < kCommits; ++i) {
    StateCommit c;
    std::vector<uint64_t> hashes(kHashesPerCommit);
    for (size_t j = 0; j < hashes.size(); ++j) hashes[j] = (uint64_t{1} << 40) * i + j;
    c.dedup_groups = {{100, "a/x", std::move(hashes)}};
    c.offsets = {{"kafka:t:0", i + 1}};
    ASSERT_TRUE((*store)->Commit(c).ok());
  }
  // 12 MiB went through the WAL. RocksDB checks the bound when a write
  // comes and flushes in the background, so a flush still running while the
  // commits above went on leaves a newer WAL file past the bound until the
  // next write: keep committing, as ingest does with every batch.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  int64_t offset = kCommits;
  while (WalBytes(dir) > (6u << 20) && absl::Now() < deadline) {
    StateCommit c;
    c.offsets = {{"kafka:t:0", ++offset}};
    ASSERT_TRUE((*store)->Commit(c).ok());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_LE(WalBytes(dir), 6u << 20);
  // Nothing was lost by the flushes.
  store->reset();
  store = OpenRocksDbStateStore(dir, options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->offsets.at("kafka:t:0"), offset);
  size_t keys = 0;
  ASSERT_TRUE((*store)->ForEachDedupKey(INT32_MIN, [&](const StoredDedupKey&) { ++keys; }).ok());
  EXPECT_EQ(keys, kCommits * kHashesPerCommit);
  store->reset();
  std::filesystem::remove_all(dir);
}

// Commits 12 MiB of user hashes into the dedup column family and returns the
// store's memory once its flushes caught up (commits go on meanwhile, as
// ingest does with every batch).
uint64_t MemoryAfterBulkCommits(const RocksDbStateOptions& options, uint64_t settle_below) {
  std::string dir = TempDir();
  auto store = OpenRocksDbStateStore(dir, options);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return 0;
  for (int i = 0; i < 48; ++i) {
    StateCommit c;
    std::vector<uint64_t> hashes(32 << 10);
    for (size_t j = 0; j < hashes.size(); ++j) hashes[j] = (uint64_t{1} << 40) * i + j;
    c.dedup_groups = {{100, "a/x", std::move(hashes)}};
    c.offsets = {{"kafka:t:0", i + 1}};
    EXPECT_TRUE((*store)->Commit(c).ok());
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  int64_t offset = 48;
  while ((*store)->MemoryBytes() > settle_below && absl::Now() < deadline) {
    StateCommit c;
    c.offsets = {{"kafka:t:0", ++offset}};
    EXPECT_TRUE((*store)->Commit(c).ok());
    absl::SleepFor(absl::Milliseconds(20));
  }
  const uint64_t bytes = (*store)->MemoryBytes();
  store->reset();
  std::filesystem::remove_all(dir);
  return bytes;
}

// The shared write-buffer budget flushes memtables long before each column
// family's own 64 MiB buffer would fill; without it the 12 MiB stay in memory.
TEST(RocksDbStateStore, MemtableBudgetBoundsMemory) {
  RocksDbStateOptions bounded;
  bounded.memtable_budget_bytes = 2 << 20;
  bounded.max_wal_bytes = 1ull << 30;  // only the budget may flush
  EXPECT_LE(MemoryAfterBulkCommits(bounded, 4u << 20), 4u << 20);
  RocksDbStateOptions unbounded = bounded;
  unbounded.memtable_budget_bytes = 0;
  EXPECT_GT(MemoryAfterBulkCommits(unbounded, UINT64_MAX), 8u << 20);
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
