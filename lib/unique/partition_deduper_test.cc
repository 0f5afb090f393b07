#include "lib/unique/partition_deduper.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "proto/hubmetrics/v1/events.pb.h"

namespace hubmetrics {
namespace {

constexpr int32_t kPartition = 5;
constexpr uint64_t kMaxEventBytes = 300;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2025, 3, 4, 0, 0, 0), absl::UTCTimeZone());

UserHasher TestHasher() {
  return UserHasher(std::array<uint8_t, 16>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
}

ValidatorOptions TestValidatorOptions() {
  return ValidatorOptions{.lateness_days = 2, .max_future_skew = absl::Hours(1)};
}

PartitionDeduperOptions TestOptions(EventFormat format) {
  return PartitionDeduperOptions{
      .validator = TestValidatorOptions(), .format = format, .max_event_bytes = kMaxEventBytes};
}

v1::PartitionProgress NewPartition() {
  v1::PartitionProgress p;
  p.set_partition(kPartition);
  return p;
}

// What the test means a record to be; the oracle judges from this, never
// from the bytes.
enum class Kind { kEvent, kMalformed, kInvalidModelId, kTooLarge };

struct StreamRecord {
  Kind kind = Kind::kEvent;
  std::string model_id;
  std::string user_id;
  absl::Time time;
  int64_t offset = 0;
  // When the producer wrote it: never before the event time of an event it
  // stamps itself (near-future events excepted, by at most the skew).
  absl::Time produce_time;
  absl::Time kafka_timestamp;
  std::string value;
};

std::string EncodeEvent(EventFormat format, const std::string& model_id, const std::string& user_id,
                        absl::Time time, size_t pad_bytes) {
  if (format == EventFormat::kJson) {
    std::string line = absl::StrCat(R"({"model_id":")", model_id, R"(","user_id":")", user_id,
                                    R"(","time":")", FormatRfc3339(time), R"(")");
    if (pad_bytes > 0) absl::StrAppend(&line, R"(,"pad":")", std::string(pad_bytes, 'p'), R"(")");
    line += "}";
    return line;
  }
  v1::DownloadEvent e;
  e.set_model_id(model_id);
  e.set_user_id(user_id);
  const int64_t micros = ::hubmetrics::ToUnixMicros(time);
  e.mutable_time()->set_seconds(micros / 1000000);
  e.mutable_time()->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
  std::string bytes = e.SerializeAsString();
  if (pad_bytes > 0) {
    // An unknown field 15 (length-delimited), as a newer producer might add.
    bytes.push_back(static_cast<char>(15 << 3 | 2));
    for (size_t n = pad_bytes;; n >>= 7) {
      if (n < 0x80) {
        bytes.push_back(static_cast<char>(n));
        break;
      }
      bytes.push_back(static_cast<char>((n & 0x7f) | 0x80));
    }
    bytes.append(pad_bytes, 'p');
  }
  return bytes;
}

struct StreamOptions {
  EventFormat format = EventFormat::kJson;
  int records = 1500;
  // Rejected future events a little over the skew: the clock catches up
  // with them later, so a rebuild (which cannot know they were rejected)
  // would count them. Only streams judged without a rebuild have them.
  bool near_future_rejects = false;
  // Kafka timestamps: the event time (producer-stamped) or the produce time.
  bool kafka_timestamp_is_event_time = false;
};

std::vector<StreamRecord> RandomStream(uint64_t seed, const StreamOptions& options) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  auto micros = [](absl::Duration d) { return absl::ToInt64Microseconds(d); };
  const std::vector<std::string> models = {"org/alpha", "org/beta", "gamma", "x/y-z_1.2"};
  const std::vector<std::string> bad_models = {"bad--id", "-lead", "a/b/c", "x.git"};
  std::vector<StreamRecord> stream;
  absl::Time produce = kT0;
  int64_t offset = uniform(0, 3);
  for (int i = 0; i < options.records; ++i) {
    produce += absl::Microseconds(uniform(0, micros(absl::Minutes(20))));
    StreamRecord r;
    r.offset = offset;
    offset += uniform(0, 9) == 0 ? uniform(2, 4) : 1;  // transaction markers skip offsets
    r.produce_time = produce;
    r.model_id = models[uniform(0, models.size() - 1)];
    // Few users, so that many events are duplicates.
    r.user_id = absl::StrCat("user-SECRET-", uniform(0, 5));
    const int64_t roll = uniform(0, 99);
    if (roll < 60) {  // recent
      r.time = produce - absl::Microseconds(uniform(0, micros(absl::Hours(6))));
    } else if (roll < 75) {  // days late: some too_late
      r.time = produce -
               absl::Microseconds(uniform(micros(absl::Hours(20)), micros(absl::Hours(5 * 24))));
    } else if (roll < 80) {  // ahead of the producer, within the skew
      r.time = produce + absl::Microseconds(uniform(0, micros(absl::Hours(1))));
    } else if (roll < 83) {  // far future: never accepted
      r.time = produce + absl::Hours(24 * 3650) + absl::Seconds(uniform(0, 1000));
    } else if (roll < 87 && options.near_future_rejects) {  // around the future boundary
      r.time = produce + absl::Hours(1) +
               absl::Microseconds(uniform(-micros(absl::Minutes(30)), micros(absl::Minutes(30))));
    } else if (roll < 90) {
      r.kind = Kind::kMalformed;
    } else if (roll < 93) {
      r.kind = Kind::kInvalidModelId;
      r.model_id = bad_models[uniform(0, bad_models.size() - 1)];
      r.time = produce;
    } else if (roll < 96) {
      r.kind = Kind::kTooLarge;
      r.time = produce;
    } else {  // a repeat of an earlier event: the same triple again
      r.time = produce - absl::Microseconds(uniform(0, micros(absl::Hours(3))));
      if (!stream.empty()) {
        const StreamRecord& earlier = stream[uniform(0, stream.size() - 1)];
        if (earlier.kind == Kind::kEvent) {
          r.model_id = earlier.model_id;
          r.user_id = earlier.user_id;
          r.time = earlier.time;
        }
      }
    }
    switch (r.kind) {
      case Kind::kEvent:
        r.value = EncodeEvent(options.format, r.model_id, r.user_id, r.time, 0);
        break;
      case Kind::kInvalidModelId:
        r.value = EncodeEvent(options.format, r.model_id, r.user_id, r.time, 0);
        break;
      case Kind::kTooLarge:
        r.value = EncodeEvent(options.format, r.model_id, r.user_id, r.time, kMaxEventBytes);
        break;
      case Kind::kMalformed:
        // Cut inside the user id: a decoder must not quote it back.
        r.value = EncodeEvent(options.format, r.model_id, r.user_id, produce, 0);
        r.value.resize(r.value.find("SECRET") + 3);
        break;
    }
    r.kafka_timestamp =
        options.kafka_timestamp_is_event_time && r.kind == Kind::kEvent ? r.time : r.produce_time;
    stream.push_back(std::move(r));
  }
  return stream;
}

// One call's output, comparable across dedupers: rejections by offset
// (indices depend on where the call starts), counts in a fixed order.
struct CallResult {
  std::vector<UniqueCountUpdate> counts;
  std::vector<std::pair<int64_t, RejectReason>> rejected;
  std::string progress;

  friend bool operator==(const CallResult&, const CallResult&) = default;
};

void SortCounts(std::vector<UniqueCountUpdate>* counts) {
  std::sort(counts->begin(), counts->end(), [](const auto& a, const auto& b) {
    return std::tie(a.day, a.model_id) < std::tie(b.day, b.model_id);
  });
}

std::string Describe(const CallResult& r) {
  std::string s = "counts:";
  for (const UniqueCountUpdate& u : r.counts) {
    absl::StrAppend(&s, " (p", u.partition, " d", u.day, " ", u.model_id, " ", u.unique_downloads,
                    ")");
  }
  absl::StrAppend(&s, "\nrejected:");
  for (const auto& [offset, reason] : r.rejected) {
    absl::StrAppend(&s, " ", offset, ":", std::string(RejectReasonName(reason)));
  }
  absl::StrAppend(&s, "\nprogress: ", r.progress);
  return s;
}

// The wall clock of a call over stream[begin, end): read after its last
// record was produced.
absl::Time NowOfCall(const std::vector<StreamRecord>& stream, size_t end) {
  return stream[end - 1].produce_time;
}

CallResult RunCall(PartitionDeduper& deduper, ManualClock& clock,
                   const std::vector<StreamRecord>& stream, size_t begin, size_t end) {
  clock.Set(NowOfCall(stream, end));
  std::vector<PartitionRecord> records;
  for (size_t i = begin; i < end; ++i) {
    records.push_back({.value = stream[i].value, .offset = stream[i].offset});
  }
  PartitionDeduper::Output out = deduper.Process(records);
  CallResult r;
  r.counts = std::move(out.counts);
  SortCounts(&r.counts);
  for (const auto& [i, rejection] : out.rejected) {
    r.rejected.emplace_back(records[i].offset, rejection.reason);
  }
  r.progress = deduper.progress().ShortDebugString();
  return r;
}

// Brute force, from the definitions: every (model, user, day) ever counted
// is kept; the lateness horizon is the day of the partition's largest
// accepted event time so far, minus lateness_days.
class Oracle {
 public:
  explicit Oracle(ValidatorOptions options) : options_(options) {}

  CallResult Process(const std::vector<StreamRecord>& stream, size_t begin, size_t end) {
    const absl::Time now = NowOfCall(stream, end);
    std::set<std::pair<std::string, Day>> changed;
    CallResult result;
    for (size_t i = begin; i < end; ++i) {
      const StreamRecord& r = stream[i];
      ++events_read_;
      next_offset_ = r.offset + 1;
      std::optional<RejectReason> reason;
      const Day day = DayOf(r.time);
      switch (r.kind) {
        case Kind::kMalformed:
          reason = RejectReason::kMalformed;
          break;
        case Kind::kInvalidModelId:
          reason = RejectReason::kInvalidModelId;
          break;
        case Kind::kTooLarge:
          reason = RejectReason::kTooLarge;
          break;
        case Kind::kEvent:
          if (r.time > now + options_.max_future_skew) {
            reason = RejectReason::kFuture;
          } else if (watermark_ && day < DayOf(*watermark_) - options_.lateness_days) {
            reason = RejectReason::kTooLate;
          }
          break;
      }
      if (reason) {
        ++rejected_[static_cast<int>(*reason)];
        result.rejected.emplace_back(r.offset, *reason);
        continue;
      }
      watermark_ = watermark_ ? std::max(*watermark_, r.time) : r.time;
      if (triples_.insert({r.model_id, r.user_id, day}).second) {
        ++unique_;
        ++counts_[{r.model_id, day}];
        changed.insert({r.model_id, day});
      } else {
        ++duplicates_;
      }
    }
    for (const auto& [model_id, day] : changed) {
      result.counts.push_back({.partition = kPartition,
                               .day = day,
                               .model_id = model_id,
                               .unique_downloads = counts_[{model_id, day}]});
    }
    SortCounts(&result.counts);
    result.progress = Progress().ShortDebugString();
    return result;
  }

  v1::PartitionProgress Progress() const {
    static constexpr std::array<const char*, 8> kReasons = {
        "malformed",    "not_object", "missing_field", "invalid_model_id",
        "invalid_time", "future",     "too_late",      "too_large"};
    v1::PartitionProgress p;
    p.set_partition(kPartition);
    p.set_next_offset(next_offset_);
    p.set_events_read(events_read_);
    p.set_unique_downloads(unique_);
    p.set_duplicates(duplicates_);
    uint64_t rejected = 0;
    for (size_t r = 0; r < kReasons.size(); ++r) {
      auto* rc = p.add_rejected_by_reason();
      rc->set_reason(kReasons[r]);
      rc->set_count(rejected_[r]);
      rejected += rejected_[r];
    }
    p.set_rejected(rejected);
    if (watermark_) p.set_watermark_micros(::hubmetrics::ToUnixMicros(*watermark_));
    return p;
  }

 private:
  const ValidatorOptions options_;
  std::set<std::tuple<std::string, std::string, Day>> triples_;
  std::map<std::pair<std::string, Day>, uint64_t> counts_;
  std::optional<absl::Time> watermark_;
  std::array<uint64_t, 8> rejected_{};
  uint64_t events_read_ = 0;
  uint64_t unique_ = 0;
  uint64_t duplicates_ = 0;
  int64_t next_offset_ = 0;
};

// Random call boundaries (indices into the stream), from 0 to size, plus
// any of `extra`.
std::vector<size_t> RandomBoundaries(uint64_t seed, size_t size, std::vector<size_t> extra = {}) {
  std::mt19937_64 rng(seed);
  std::set<size_t> b(extra.begin(), extra.end());
  b.insert(0);
  b.insert(size);
  for (size_t i = 0; i < size;) {
    i += std::uniform_int_distribution<size_t>(1, 60)(rng);
    b.insert(std::min(i, size));
  }
  return {b.begin(), b.end()};
}

class PartitionDeduperTest : public ::testing::TestWithParam<EventFormat> {
 protected:
  PartitionDeduperTest() : clock_(kT0) {}

  StreamRecord Event(const std::string& model_id, const std::string& user_id, absl::Time time,
                     int64_t offset) {
    StreamRecord r;
    r.model_id = model_id;
    r.user_id = user_id;
    r.time = time;
    r.offset = offset;
    r.value = EncodeEvent(GetParam(), model_id, user_id, time, 0);
    return r;
  }
  // A record no decoder accepts (a truncated length-delimited field; not JSON).
  static StreamRecord Garbage(int64_t offset) {
    StreamRecord r;
    r.kind = Kind::kMalformed;
    r.offset = offset;
    r.value = std::string(
        "\x0a\x05"
        "ab",
        4);
    return r;
  }
  PartitionDeduper::Output ProcessAt(PartitionDeduper& d, absl::Time now,
                                     const std::vector<StreamRecord>& records) {
    clock_.Set(now);
    std::vector<PartitionRecord> in;
    for (const StreamRecord& r : records) in.push_back({.value = r.value, .offset = r.offset});
    return d.Process(in);
  }

  const UserHasher hasher_ = TestHasher();
  ManualClock clock_;
};

std::string FormatName(const ::testing::TestParamInfo<EventFormat>& format) {
  return format.param == EventFormat::kJson ? "Json" : "Binary";
}

INSTANTIATE_TEST_SUITE_P(Formats, PartitionDeduperTest,
                         ::testing::Values(EventFormat::kJson, EventFormat::kBinary), FormatName);

TEST_P(PartitionDeduperTest, CountsUniqueDownloadsPerModelAndDay) {
  PartitionDeduper d(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
  EXPECT_EQ(d.RebuildFrom(), std::nullopt);
  EXPECT_EQ(d.live_from(), 0);
  const absl::Time t = kT0 + absl::Hours(10);
  PartitionDeduper::Output out =
      ProcessAt(d, t,
                {Event("org/a", "u1", t, 0), Event("org/a", "u1", t - absl::Hours(1), 1),
                 Event("org/a", "u2", t, 2), Event("org/b", "u1", t - absl::Hours(24), 4)});
  const Day day = DayOf(t);
  SortCounts(&out.counts);
  EXPECT_EQ(
      out.counts,
      (std::vector<UniqueCountUpdate>{
          {.partition = kPartition, .day = day - 1, .model_id = "org/b", .unique_downloads = 1},
          {.partition = kPartition, .day = day, .model_id = "org/a", .unique_downloads = 2},
      }));
  EXPECT_TRUE(out.rejected.empty());
  const v1::PartitionProgress& p = d.progress();
  EXPECT_EQ(p.partition(), kPartition);
  EXPECT_EQ(p.next_offset(), 5);
  EXPECT_EQ(p.events_read(), 4u);
  EXPECT_EQ(p.unique_downloads(), 3u);
  EXPECT_EQ(p.duplicates(), 1u);
  EXPECT_EQ(p.rejected(), 0u);
  ASSERT_EQ(p.rejected_by_reason_size(), kNumRejectReasons);
  for (int r = 0; r < kNumRejectReasons; ++r) {
    EXPECT_EQ(p.rejected_by_reason(r).reason(), RejectReasonName(static_cast<RejectReason>(r)));
    EXPECT_EQ(p.rejected_by_reason(r).count(), 0u);
  }
  EXPECT_EQ(p.watermark_micros(), ::hubmetrics::ToUnixMicros(t));
  EXPECT_EQ(d.open_model_days(), 2u);
  EXPECT_EQ(d.open_triples(), 3u);

  // Only what changed is told again, with its absolute count.
  out = ProcessAt(d, t, {Event("org/a", "u3", t, 5), Event("org/b", "u1", t - absl::Hours(24), 6)});
  EXPECT_EQ(
      out.counts,
      (std::vector<UniqueCountUpdate>{
          {.partition = kPartition, .day = day, .model_id = "org/a", .unique_downloads = 3}}));
  EXPECT_EQ(d.progress().duplicates(), 2u);
  EXPECT_EQ(d.progress().next_offset(), 7);
}

TEST_P(PartitionDeduperTest, FutureBoundaryIsTheSkewAfterTheCallsClock) {
  PartitionDeduper d(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
  const absl::Time now = kT0 + absl::Hours(5);
  PartitionDeduper::Output out =
      ProcessAt(d, now,
                {Event("m", "u1", now + absl::Hours(1), 0),
                 Event("m", "u2", now + absl::Hours(1) + absl::Microseconds(1), 1)});
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].first, 1u);
  EXPECT_EQ(out.rejected[0].second.reason, RejectReason::kFuture);
  EXPECT_EQ(d.progress().rejected_by_reason(static_cast<int>(RejectReason::kFuture)).count(), 1u);
  EXPECT_EQ(d.progress().watermark_micros(), ::hubmetrics::ToUnixMicros(now + absl::Hours(1)));
}

TEST_P(PartitionDeduperTest, ClosedDaysAreDroppedAfterTellingTheirLastCount) {
  PartitionDeduper d(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
  const absl::Time t = kT0 + absl::Hours(1);  // lateness 2 days
  ProcessAt(d, t + absl::Hours(96), {Event("m", "u1", t, 0)});
  EXPECT_EQ(d.open_triples(), 1u);
  // Its day gets a second user, then the watermark moves 3 days on: the
  // day's count is told, then it is closed.
  PartitionDeduper::Output out = ProcessAt(
      d, t + absl::Hours(96), {Event("m", "u2", t, 1), Event("m", "u1", t + absl::Hours(72), 2)});
  SortCounts(&out.counts);
  EXPECT_EQ(
      out.counts,
      (std::vector<UniqueCountUpdate>{
          {.partition = kPartition, .day = DayOf(t), .model_id = "m", .unique_downloads = 2},
          {.partition = kPartition, .day = DayOf(t) + 3, .model_id = "m", .unique_downloads = 1},
      }));
  EXPECT_EQ(d.open_model_days(), 1u);
  EXPECT_EQ(d.open_triples(), 1u);
  out = ProcessAt(d, t + absl::Hours(96), {Event("m", "u3", t, 3)});
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].second.reason, RejectReason::kTooLate);
}

TEST_P(PartitionDeduperTest, RebuildRestoresOpenDaysWithoutOutputOrCounters) {
  const absl::Time t = kT0 + absl::Hours(12);
  PartitionDeduper first(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
  // Bytes that decode to nothing are rejected live and never rebuild anything.
  const std::vector<StreamRecord> before = {Event("m", "u1", t - absl::Hours(72), 0),  // closes
                                            Garbage(1), Event("m", "u1", t - absl::Hours(24), 2),
                                            Event("m", "u2", t, 3)};
  ProcessAt(first, t, before);
  first.CountLostToRetention(7);
  const v1::PartitionProgress stored = first.progress();
  EXPECT_EQ(stored.rejected(), 1u);

  PartitionDeduper second(TestOptions(GetParam()), stored, &hasher_, &clock_);
  EXPECT_EQ(second.live_from(), 4);
  EXPECT_EQ(second.RebuildFrom(), StartOfDay(DayOf(t) - 2) - absl::Hours(1));
  PartitionDeduper::Output out = ProcessAt(second, t, before);
  EXPECT_TRUE(out.counts.empty());
  EXPECT_TRUE(out.rejected.empty());
  EXPECT_EQ(second.progress().ShortDebugString(), stored.ShortDebugString());
  EXPECT_EQ(second.progress().events_lost_to_retention(), 7u);
  EXPECT_EQ(second.open_triples(), 2u);

  out = ProcessAt(second, t, {Event("m", "u1", t - absl::Hours(24), 4), Event("m", "u3", t, 5)});
  EXPECT_EQ(
      out.counts,
      (std::vector<UniqueCountUpdate>{
          {.partition = kPartition, .day = DayOf(t), .model_id = "m", .unique_downloads = 2}}));
  EXPECT_EQ(second.progress().duplicates(), 1u);
  EXPECT_EQ(second.progress().unique_downloads(), 4u);
  EXPECT_EQ(second.progress().next_offset(), 6);
}

TEST_P(PartitionDeduperTest, MatchesTheOracleOnRandomStreams) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const std::vector<StreamRecord> stream =
        RandomStream(seed, {.format = GetParam(), .near_future_rejects = true});
    PartitionDeduper d(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
    Oracle oracle(TestValidatorOptions());
    std::array<uint64_t, kNumRejectReasons> seen{};
    const std::vector<size_t> b = RandomBoundaries(seed, stream.size());
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      const CallResult got = RunCall(d, clock_, stream, b[k], b[k + 1]);
      const CallResult want = oracle.Process(stream, b[k], b[k + 1]);
      ASSERT_EQ(got, want) << "call over [" << b[k] << ", " << b[k + 1]
                           << ")\ngot:  " << Describe(got) << "\nwant: " << Describe(want);
      for (const auto& [offset, reason] : got.rejected) ++seen[static_cast<int>(reason)];
    }
    // The streams exercise every reason they are meant to.
    for (RejectReason r :
         {RejectReason::kMalformed, RejectReason::kInvalidModelId, RejectReason::kFuture,
          RejectReason::kTooLate, RejectReason::kTooLarge}) {
      EXPECT_GT(seen[static_cast<int>(r)], 0u) << RejectReasonName(r);
    }
    EXPECT_GT(d.progress().duplicates(), 0u);
    // Closed days are gone: at most lateness_days + 1 days (and the skew's
    // next one) of 4 models are held.
    EXPECT_LE(d.open_model_days(), 4u * 4u);
  }
}

TEST_P(PartitionDeduperTest, RawUserIdsNeverAppearInOutputs) {
  const std::vector<StreamRecord> stream =
      RandomStream(11, {.format = GetParam(), .near_future_rejects = true});
  PartitionDeduper d(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
  const std::vector<size_t> b = RandomBoundaries(11, stream.size());
  for (size_t k = 0; k + 1 < b.size(); ++k) {
    clock_.Set(NowOfCall(stream, b[k + 1]));
    std::vector<PartitionRecord> records;
    for (size_t i = b[k]; i < b[k + 1]; ++i) {
      records.push_back({.value = stream[i].value, .offset = stream[i].offset});
    }
    const PartitionDeduper::Output out = d.Process(records);
    for (const UniqueCountUpdate& u : out.counts) {
      EXPECT_EQ(u.model_id.find("SECRET"), std::string::npos);
    }
    for (const auto& [i, rejection] : out.rejected) {
      EXPECT_EQ(rejection.detail.find("SECRET"), std::string::npos) << rejection.detail;
      EXPECT_EQ(rejection.detail.find("user-"), std::string::npos) << rejection.detail;
    }
    EXPECT_EQ(d.progress().SerializeAsString().find("SECRET"), std::string::npos);
  }
}

// The scale-out property: a deduper rebuilt from a stored progress, reading
// from RebuildFrom() on, continues exactly as the one that never stopped.
TEST_P(PartitionDeduperTest, RebuiltDeduperContinuesAsTheOneThatNeverStopped) {
  int rebuilds_with_state = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    for (const bool kafka_timestamp_is_event_time : {false, true}) {
      const std::vector<StreamRecord> stream = RandomStream(
          100 + seed, {.format = GetParam(),
                       .records = 800,
                       .kafka_timestamp_is_event_time = kafka_timestamp_is_event_time});
      std::mt19937_64 rng(seed);
      for (int trial = 0; trial < 4; ++trial) {
        const size_t c = std::uniform_int_distribution<size_t>(0, stream.size())(rng);
        SCOPED_TRACE(absl::StrCat("seed ", seed, " kafka time is event time ",
                                  kafka_timestamp_is_event_time, " split at ", c));
        // Calls break at c, so that each deduper's calls from c on hold the
        // same records and read the same clock.
        const std::vector<size_t> b = RandomBoundaries(seed * 31 + trial, stream.size(), {c});
        PartitionDeduper whole(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
        std::vector<CallResult> whole_after_c;
        for (size_t k = 0; k + 1 < b.size(); ++k) {
          CallResult r = RunCall(whole, clock_, stream, b[k], b[k + 1]);
          if (b[k] >= c) whole_after_c.push_back(std::move(r));
        }

        PartitionDeduper before(TestOptions(GetParam()), NewPartition(), &hasher_, &clock_);
        for (size_t k = 0; k + 1 < b.size() && b[k] < c; ++k)
          RunCall(before, clock_, stream, b[k], b[k + 1]);
        const v1::PartitionProgress stored = before.progress();

        // Reading from RebuildFrom(), and (harmlessly) from the start.
        for (const bool from_start : {false, true}) {
          PartitionDeduper after(TestOptions(GetParam()), stored, &hasher_, &clock_);
          size_t read_from = c;
          if (from_start) {
            read_from = 0;
          } else if (const std::optional<absl::Time> from = after.RebuildFrom()) {
            read_from =
                std::find_if(stream.begin(), stream.end(),
                             [&](const StreamRecord& r) { return r.kafka_timestamp >= *from; }) -
                stream.begin();
            read_from = std::min(read_from, c);
            if (read_from < c) ++rebuilds_with_state;
          }
          // The rebuild's records and the first live call's go in one call.
          std::vector<CallResult> after_c;
          for (size_t k = 0; k + 1 < b.size(); ++k) {
            if (b[k] < c) continue;
            after_c.push_back(
                RunCall(after, clock_, stream, after_c.empty() ? read_from : b[k], b[k + 1]));
          }
          if (after_c.empty() && read_from < c) {
            // c is the end: the rebuild alone.
            EXPECT_TRUE(RunCall(after, clock_, stream, read_from, c).counts.empty());
          }
          ASSERT_EQ(after_c.size(), whole_after_c.size());
          for (size_t k = 0; k < after_c.size(); ++k) {
            CallResult& got = after_c[k];
            // Indices of rejections differ only by where the first call started.
            ASSERT_EQ(got.counts, whole_after_c[k].counts)
                << "call " << k << " after the split (from start " << from_start
                << ")\ngot:  " << Describe(got) << "\nwant: " << Describe(whole_after_c[k]);
            ASSERT_EQ(got, whole_after_c[k])
                << "call " << k << " after the split (from start " << from_start
                << ")\ngot:  " << Describe(got) << "\nwant: " << Describe(whole_after_c[k]);
          }
          EXPECT_EQ(after.progress().ShortDebugString(), whole.progress().ShortDebugString());
          EXPECT_EQ(after.open_triples(), whole.open_triples());
          EXPECT_EQ(after.open_model_days(), whole.open_model_days());
        }
      }
    }
  }
  EXPECT_GT(rebuilds_with_state, 0);
}

}  // namespace
}  // namespace hubmetrics
