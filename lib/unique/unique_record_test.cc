#include "lib/unique/unique_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;

UniqueCountUpdate DecodeCount(const std::string& key, const std::string& value) {
  absl::StatusOr<UniqueTopicRecord> r = DecodeUniqueTopicRecord(key, value);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  EXPECT_TRUE(std::holds_alternative<UniqueCountUpdate>(*r));
  return std::get<UniqueCountUpdate>(*r);
}

TEST(UniqueRecord, CountKeyRoundTrips) {
  constexpr int32_t kMaxPartition = std::numeric_limits<int32_t>::max();
  const std::vector<std::tuple<int32_t, Day, std::string>> cases = {
      {0, 20000, "org/model"},
      {0, -1, "legacy"},
      {3, -719162, "a"},                      // 0001-01-01
      {kMaxPartition, 2932896, "org/model"},  // 9999-12-31
      {7, 0, "x"},
      {123456, std::numeric_limits<Day>::min(), "Org_1/model-v2.5_x"},
      {1, std::numeric_limits<Day>::max(), std::string(96, 'x') + "/" + std::string(96, 'y')},
  };
  for (const auto& [partition, day, model_id] : cases) {
    const UniqueCountUpdate u =
        DecodeCount(UniqueCountKey(partition, day, model_id), EncodeUniqueCountValue(42));
    EXPECT_EQ(
        u, (UniqueCountUpdate{
               .partition = partition, .day = day, .model_id = model_id, .unique_downloads = 42}));
  }
}

TEST(UniqueRecord, CountValueRoundTripsZeroAndLarge) {
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(DecodeCount(UniqueCountKey(1, 2, "m"), EncodeUniqueCountValue(n)).unique_downloads,
              n);
  }
}

TEST(UniqueRecord, CountKeysDifferAndSortByPartitionThenDay) {
  // Every combination of a few partitions, days and models, in the order
  // the keys must sort in (partition, then day; model last).
  const std::vector<int32_t> partitions = {0, 1, 255, 256, 65536, 1 << 30};
  const std::vector<Day> days = {-800000, -1, 0, 1, 255, 256, 20000};
  const std::vector<std::string> models = {"a", "a/b", "b"};
  std::vector<std::string> keys;
  for (int32_t p : partitions) {
    for (Day d : days) {
      for (const std::string& m : models) keys.push_back(UniqueCountKey(p, d, m));
    }
  }
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  // And never equal to a progress key.
  for (int32_t p : partitions) EXPECT_EQ(std::count(keys.begin(), keys.end(), ProgressKey(p)), 0);
}

TEST(UniqueRecord, ProgressRoundTrips) {
  v1::PartitionProgress p;
  p.set_partition(2147483647);
  p.set_next_offset(123456789012);
  p.set_events_read(10);
  p.set_unique_downloads(6);
  p.set_duplicates(2);
  p.set_rejected(2);
  auto* rc = p.add_rejected_by_reason();
  rc->set_reason("too_late");
  rc->set_count(2);
  p.set_watermark_micros(-5);
  p.set_events_lost_to_retention(3);
  absl::StatusOr<UniqueTopicRecord> r =
      DecodeUniqueTopicRecord(ProgressKey(p.partition()), p.SerializeAsString());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(std::holds_alternative<v1::PartitionProgress>(*r));
  EXPECT_EQ(std::get<v1::PartitionProgress>(*r).SerializeAsString(), p.SerializeAsString());

  v1::PartitionProgress zero;  // partition 0: every field at its default
  r = DecodeUniqueTopicRecord(ProgressKey(0), zero.SerializeAsString());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(std::get<v1::PartitionProgress>(*r).has_watermark_micros());
}

TEST(UniqueRecord, ProgressOfAnotherPartitionIsRejected) {
  v1::PartitionProgress p;
  p.set_partition(4);
  absl::StatusOr<UniqueTopicRecord> r =
      DecodeUniqueTopicRecord(ProgressKey(5), p.SerializeAsString());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("partition"));
}

TEST(UniqueRecord, MalformedKeysAndValuesAreRejected) {
  const std::string count_key = UniqueCountKey(1, 2, "m");
  const std::string progress_key = ProgressKey(1);
  const std::string good_count = EncodeUniqueCountValue(1);
  // A field-1 varint whose continuation bit is never cleared.
  const std::string bad_value("\x08\xff\xff", 3);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", good_count},                                            // no key
      {"x", good_count},                                           // unknown kind
      {std::string("\0", 1), good_count},                          // unknown kind
      {count_key.substr(0, 8), good_count},                        // day cut short
      {count_key.substr(0, 9), good_count},                        // no model id
      {UniqueCountKey(1, 2, std::string("a\0b", 3)), good_count},  // invalid model id
      {UniqueCountKey(1, 2, "a--b"), good_count},                  // invalid model id
      {count_key.substr(0, 1), good_count},                        // kind only
      {count_key.substr(0, 5), good_count},                        // day cut off
      {progress_key.substr(0, 4), ""},                             // partition cut off
      {progress_key + "x", ""},                                    // progress key too long
      {count_key, bad_value},                                      // value does not parse
      {progress_key, bad_value},                                   // value does not parse
      {count_key, std::string("\x0a\x05"
                              "ab",
                              4)},  // truncated length-delimited field
  };
  for (const auto& [key, value] : cases) {
    absl::StatusOr<UniqueTopicRecord> r = DecodeUniqueTopicRecord(key, value);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << "key " << absl::CHexEscape(key) << " value " << absl::CHexEscape(value);
  }
}

TEST(UniqueRecord, OffsetMetadataRoundTrips) {
  v1::PartitionProgress p;
  p.set_partition(9);
  p.set_next_offset(77);
  p.set_unique_downloads(5);
  p.set_watermark_micros(1741000000000000);
  const std::string metadata = ProgressToOffsetMetadata(p);
  // Kafka keeps offset metadata as a string: printable ASCII only.
  EXPECT_TRUE(
      std::all_of(metadata.begin(), metadata.end(), [](char c) { return c >= 0x20 && c < 0x7f; }));
  absl::StatusOr<v1::PartitionProgress> back = ProgressFromOffsetMetadata(metadata);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), p.SerializeAsString());

  // The default progress (serialized as no bytes) round-trips too.
  back = ProgressFromOffsetMetadata(ProgressToOffsetMetadata(v1::PartitionProgress()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->partition(), 0);
}

TEST(UniqueRecord, ForeignOffsetMetadataIsRejected) {
  const std::string ours = ProgressToOffsetMetadata(v1::PartitionProgress());
  for (const std::string& metadata :
       {std::string(""), std::string("hello"), std::string("hm1"), std::string("hm2:"),
        std::string("HM1:"), std::string("hm1:!!!not base64!!!"),
        // Base64 of bytes that are no PartitionProgress (a truncated varint).
        std::string("hm1:") + absl::Base64Escape(std::string("\x10\xff", 2))}) {
    absl::StatusOr<v1::PartitionProgress> r = ProgressFromOffsetMetadata(metadata);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << metadata;
    EXPECT_THAT(r.status().message(), HasSubstr("not hubmetrics"));
  }
  EXPECT_TRUE(ProgressFromOffsetMetadata(ours).ok());
}

}  // namespace
}  // namespace hubmetrics
