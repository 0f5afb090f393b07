// Differential test of the binary event decoder (a CodedInputStream reader
// over string_views) against protobuf itself: DownloadEvent::ParseFromArray
// followed by the same checks is the oracle. Inputs are generated: valid
// events, unknown fields of every wire type, known fields with the wrong wire
// type, repeated fields and timestamps, groups (nested past the recursion
// limit), over-long varints, non-minimal tags and lengths, bad UTF-8, then
// truncations and random corruption of all of these.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "lib/events/events.h"
#include "proto/hubmetrics/v1/events.pb.h"

namespace hubmetrics {
namespace {

// The decoder as it was before the fast path: protobuf parses, then the
// checks of DecodeBinaryEvent (events.h).
DecodeResult OracleDecode(std::string_view bytes) {
  // protobuf logs every string field that is not UTF-8.
  google::protobuf::LogSilencer quiet;
  v1::DownloadEvent event;
  if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return {std::nullopt,
            Rejection{RejectReason::kMalformed,
                      absl::StrCat("not a valid binary DownloadEvent (", bytes.size(), " bytes)")}};
  }
  if (event.model_id().empty() || event.user_id().empty() || !event.has_time()) {
    return {std::nullopt, Rejection{RejectReason::kMissingField, ""}};
  }
  if (!IsValidModelId(event.model_id())) {
    return {std::nullopt, Rejection{RejectReason::kInvalidModelId, ""}};
  }
  const int64_t seconds = event.time().seconds();
  const int32_t nanos = event.time().nanos();
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 || nanos >= 1000000000) {
    return {std::nullopt,
            Rejection{RejectReason::kInvalidTime,
                      absl::StrCat("invalid time {seconds: ", seconds, ", nanos: ", nanos,
                                   "}: expected years 0001..9999 and nanos in [0, 1e9)")}};
  }
  return {DecodedEvent{event.model_id(), event.user_id(),
                       absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos)},
          std::nullopt};
}

// ---- a small wire-format writer that can also write what protobuf would not ----

void Varint(std::string* out, uint64_t v, int pad = 0) {
  // `pad` extra continuation bytes (non-minimal encoding; may exceed 10 bytes).
  while (v >= 0x80 || pad > 0) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
    if (v == 0 && pad > 0) {
      --pad;
      if (pad == 0) break;
    }
  }
  out->push_back(static_cast<char>(v & 0x7f));
}

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }

  int Pad() { return OneIn(8) ? static_cast<int>(Below(8)) : 0; }

  void Tag(std::string* out, uint32_t field, uint32_t wire_type) {
    Varint(out, (static_cast<uint64_t>(field) << 3) | wire_type, Pad());
  }
  void Len(std::string* out, std::string_view payload) {
    Varint(out, payload.size(), Pad());
    out->append(payload);
  }

  std::string Id() {
    static const std::vector<std::string> kIds = {
        "google-bert/bert-base-uncased",
        "gpt2",
        "a/b",
        "a--b",
        "",
        "org/m.git",
        "x",
        std::string("a/\xc3\xa9"),
        std::string("\xff\xfe"),
        std::string("a\0b", 3),
        std::string("\xed\xa0\x80"),      // a UTF-16 surrogate: not UTF-8
        std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
        std::string("\xc0\xaf"),          // over-long
        std::string("\xe2\x82\xac"),
        std::string("\xf0\x9f\x98\x80"),
        std::string("\xe2\x82"),
        "u-81723",
        std::string(200, 'm')};
    if (OneIn(4)) {
      std::string s;
      const size_t n = Below(12);
      for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(Below(256)));
      return s;
    }
    return kIds[Below(kIds.size())];
  }

  uint64_t VarintValue() {
    switch (Below(6)) {
      case 0:
        return Below(128);
      case 1:
        return 1741091696 + Below(1000);
      case 2:
        return static_cast<uint64_t>(-static_cast<int64_t>(Below(1000000)));
      case 3:
        return 253402300799 + Below(3) - 1;
      case 4:
        return static_cast<uint64_t>(-62135596800 + static_cast<int64_t>(Below(3)) - 1);
      default:
        return rng_();
    }
  }

  // An unknown field (or a known field number with a wire type of its own).
  void Unknown(std::string* out, int depth) {
    uint32_t field;
    switch (Below(4)) {
      case 0:
        field = 1 + static_cast<uint32_t>(Below(3));
        break;
      case 1:
        field = static_cast<uint32_t>(Below(1u << 29));
        break;
      case 2:
        field = OneIn(8) ? 0 : 4 + static_cast<uint32_t>(Below(20));
        break;
      default:
        field = 15 + static_cast<uint32_t>(Below(10));
    }
    const uint32_t wt =
        OneIn(20) ? 6 + static_cast<uint32_t>(Below(2)) : static_cast<uint32_t>(Below(6));
    Tag(out, field, wt);
    switch (wt) {
      case 0:
        Varint(out, VarintValue(), Pad());
        break;
      case 1:
        for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(Below(256)));
        break;
      case 2:
        Len(out, Id());
        break;
      case 3: {
        const size_t n = depth > 3 ? 0 : Below(3);
        for (size_t i = 0; i < n; ++i) Unknown(out, depth + 1);
        Tag(out, OneIn(10) ? field + 1 : field, 4);
        break;
      }
      case 5:
        for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(Below(256)));
        break;
      default:
        break;  // 4 (a stray end group), 6, 7: nothing follows
    }
  }

  std::string Timestamp() {
    std::string t;
    const size_t n = Below(5);
    for (size_t i = 0; i < n; ++i) {
      switch (Below(4)) {
        case 0:
          Tag(&t, 1, 0);
          Varint(&t, VarintValue(), Pad());
          break;
        case 1:
          Tag(&t, 2, 0);
          Varint(&t, OneIn(3) ? rng_() : Below(1000000001), Pad());
          break;
        case 2:
          Unknown(&t, 0);
          break;
        default:
          Tag(&t, 1 + static_cast<uint32_t>(Below(2)), 0);
          Varint(&t, Below(1000000000), Pad());
      }
    }
    return t;
  }

  std::string Event() {
    // Half of them start as a valid event, so that what follows decides.
    std::string out = OneIn(2) ? Valid() : "";
    const size_t n = Below(7);
    for (size_t i = 0; i < n; ++i) {
      switch (Below(5)) {
        case 0:
          Tag(&out, 1, 2);
          Len(&out, Id());
          break;
        case 1:
          Tag(&out, 2, 2);
          Len(&out, Id());
          break;
        case 2:
        case 3:
          Tag(&out, 3, 2);
          Len(&out, Timestamp());
          break;
        default:
          Unknown(&out, 0);
      }
    }
    return out;
  }

  // A valid event, as protobuf writes it; mostly the layout the decoder reads
  // on its fast path, sometimes just past it (ids of 128 bytes or more, a time
  // before 1970 with 10-byte varints, seconds or nanos 0 and so not written,
  // non-ASCII user ids).
  std::string Valid() {
    v1::DownloadEvent e;
    switch (Below(4)) {
      case 0:
        e.set_model_id("google-bert/bert-base-uncased");
        break;
      case 1:
        e.set_model_id(absl::StrCat("org/", std::string(Below(126), 'm'), "1"));
        break;
      default:
        e.set_model_id(absl::StrCat("org/m-", Below(99)));
    }
    e.set_user_id(OneIn(8) ? absl::StrCat("\xc3\xa9-", Below(1000000))
                           : absl::StrCat("u-", Below(1000000)));
    int64_t seconds = static_cast<int64_t>(1741091696 + Below(86400 * 30));
    if (OneIn(10)) seconds = -seconds;
    if (OneIn(20)) seconds = 0;
    e.mutable_time()->set_seconds(seconds);
    e.mutable_time()->set_nanos(OneIn(5) ? 0 : static_cast<int32_t>(Below(1000000000)));
    return e.SerializeAsString();
  }

  std::string Mutate(std::string s) {
    switch (Below(5)) {
      case 0:
        if (!s.empty()) s.resize(Below(s.size()));
        break;
      case 1:
        if (!s.empty()) s[Below(s.size())] = static_cast<char>(Below(256));
        break;
      case 2:
        if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1u << Below(8));
        break;
      case 3:
        s.insert(Below(s.size() + 1), 1, static_cast<char>(Below(256)));
        break;
      default:
        break;
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

void ExpectSame(std::string_view bytes) {
  const DecodeResult want = OracleDecode(bytes);
  const DecodeResult got = DecodeBinaryEvent(bytes);
  const DecodeViewResult view = DecodeBinaryEventView(bytes);
  const std::string shown = absl::CHexEscape(absl::string_view(bytes.data(), bytes.size()));
  ASSERT_EQ(want.event.has_value(), got.event.has_value())
      << shown << " oracle: " << (want.rejection ? want.rejection->detail : "accepted")
      << " fast: " << (got.rejection ? got.rejection->detail : "accepted");
  ASSERT_EQ(got.event.has_value(), view.event.has_value()) << shown;
  if (want.event) {
    EXPECT_EQ(got.event->model_id, want.event->model_id) << shown;
    EXPECT_EQ(got.event->user_id, want.event->user_id) << shown;
    EXPECT_EQ(got.event->time, want.event->time) << shown;
    EXPECT_EQ(view.event->model_id, want.event->model_id) << shown;
    EXPECT_EQ(view.event->user_id, want.event->user_id) << shown;
    EXPECT_EQ(view.event->time, want.event->time) << shown;
    // Zero copy: the views point into the record.
    EXPECT_GE(view.event->model_id.data(), bytes.data());
    EXPECT_LE(view.event->model_id.data() + view.event->model_id.size(),
              bytes.data() + bytes.size());
    return;
  }
  ASSERT_TRUE(got.rejection.has_value());
  ASSERT_EQ(RejectReasonName(got.rejection->reason), RejectReasonName(want.rejection->reason))
      << shown << " oracle: " << want.rejection->detail << " fast: " << got.rejection->detail;
  if (!want.rejection->detail.empty()) {
    EXPECT_EQ(got.rejection->detail, want.rejection->detail) << shown;
  }
  EXPECT_EQ(view.rejection->detail, got.rejection->detail) << shown;
}

TEST(DecodeBinaryDiffTest, ValidEventsAndTheirCorruptions) {
  Gen g(1);
  for (int i = 0; i < 20000; ++i) {
    const std::string s = g.Valid();
    ExpectSame(s);
    ExpectSame(g.Mutate(s));
    ExpectSame(g.Mutate(g.Mutate(s)));
  }
}

TEST(DecodeBinaryDiffTest, GeneratedWireFormat) {
  Gen g(2);
  int accepted = 0;
  int by_reason[kNumRejectReasons] = {};
  for (int i = 0; i < 200000; ++i) {
    const std::string s = g.OneIn(3) ? g.Mutate(g.Event()) : g.Event();
    ExpectSame(s);
    if (HasFailure()) return;
    const DecodeResult r = OracleDecode(s);
    if (r.event) {
      ++accepted;
    } else {
      ++by_reason[static_cast<int>(r.rejection->reason)];
    }
  }
  // The generator must reach every outcome often enough to mean something.
  EXPECT_GT(accepted, 10000);
  for (RejectReason reason : {RejectReason::kMalformed, RejectReason::kMissingField,
                              RejectReason::kInvalidModelId, RejectReason::kInvalidTime}) {
    EXPECT_GT(by_reason[static_cast<int>(reason)], 1000) << RejectReasonName(reason);
  }
}

TEST(DecodeBinaryDiffTest, EveryTruncationOfARichEvent) {
  Gen g(3);
  std::string s;
  Varint(&s, (3 << 3) | 2);
  std::string t;
  Varint(&t, (1 << 3) | 0);
  Varint(&t, 1741091696);
  Varint(&t, (9 << 3) | 3);  // a group inside the timestamp
  Varint(&t, (1 << 3) | 1);
  t.append(8, 'x');
  Varint(&t, (9 << 3) | 4);
  Varint(&t, (2 << 3) | 0);
  Varint(&t, 5, 4);
  g.Len(&s, t);
  Varint(&s, (1 << 3) | 2);
  g.Len(&s, "google-bert/bert-base-uncased");
  Varint(&s, (7 << 3) | 5);
  s.append("abcd");
  Varint(&s, (2 << 3) | 2);
  g.Len(&s, "u-1");
  for (size_t n = 0; n <= s.size(); ++n) ExpectSame(s.substr(0, n));
}

// Groups nested around the recursion limit (100), at the top level and inside
// the timestamp (one level of the budget already used).
TEST(DecodeBinaryDiffTest, NestedGroupsAtTheRecursionLimit) {
  for (bool in_timestamp : {false, true}) {
    for (int depth = 95; depth <= 105; ++depth) {
      std::string groups;
      for (int i = 0; i < depth; ++i) Varint(&groups, (5 << 3) | 3);
      for (int i = 0; i < depth; ++i) Varint(&groups, (5 << 3) | 4);
      std::string ts;
      Varint(&ts, (1 << 3) | 0);
      Varint(&ts, 1741091696);
      if (in_timestamp) ts += groups;
      std::string s;
      Varint(&s, (1 << 3) | 2);
      Varint(&s, 3);
      s += "a/b";
      Varint(&s, (2 << 3) | 2);
      Varint(&s, 1);
      s += "u";
      Varint(&s, (3 << 3) | 2);
      Varint(&s, ts.size());
      s += ts;
      if (!in_timestamp) s += groups;
      ExpectSame(s);
    }
  }
}

// Over-long and non-minimal varints in every position.
TEST(DecodeBinaryDiffTest, VarintLengths) {
  for (int pad = 0; pad <= 11; ++pad) {
    for (int where = 0; where < 5; ++where) {
      std::string ts;
      Varint(&ts, (1 << 3) | 0, where == 0 ? pad : 0);
      Varint(&ts, 1741091696, where == 1 ? pad : 0);
      std::string s;
      Varint(&s, (1 << 3) | 2, where == 2 ? pad : 0);
      Varint(&s, 3, where == 3 ? pad : 0);
      s += "a/b";
      Varint(&s, (2 << 3) | 2);
      Varint(&s, 1);
      s += "u";
      Varint(&s, (3 << 3) | 2);
      Varint(&s, ts.size());
      s += ts;
      Varint(&s, (6 << 3) | 0);
      Varint(&s, UINT64_MAX, where == 4 ? pad : 0);
      ExpectSame(s);
    }
  }
}

}  // namespace
}  // namespace hubmetrics
