#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"
#include "lib/events/events.h"
#include "lib/events/internal.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The user id of every test record: it must never show up in a detail.
constexpr char kUser[] = "SECRET-USER-42";

absl::Time At(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

std::string Json(const std::string& model_id, const std::string& time) {
  return absl::StrCat(R"({"model_id":")", model_id, R"(","user_id":")", kUser, R"(","time":")",
                      time, R"("})");
}

// Expects `line` to be rejected with `reason`; returns the detail.
std::string ExpectJsonReject(std::string_view line, RejectReason reason) {
  DecodeResult r = DecodeJsonEvent(line);
  EXPECT_FALSE(r.event.has_value()) << line;
  if (!r.rejection.has_value()) {
    ADD_FAILURE() << "accepted: " << line;
    return "";
  }
  EXPECT_EQ(RejectReasonName(r.rejection->reason), RejectReasonName(reason))
      << line << " -> " << r.rejection->detail;
  EXPECT_THAT(r.rejection->detail, Not(HasSubstr(kUser))) << line;
  EXPECT_FALSE(r.rejection->detail.empty()) << line;
  return r.rejection->detail;
}

DecodedEvent ExpectJsonAccept(std::string_view line) {
  DecodeResult r = DecodeJsonEvent(line);
  EXPECT_FALSE(r.rejection.has_value())
      << line << " -> " << (r.rejection ? r.rejection->detail : "");
  EXPECT_TRUE(r.event.has_value()) << line;
  return r.event.value_or(DecodedEvent{});
}

TEST(DecodeJsonEventTest, Accepts) {
  DecodedEvent e = ExpectJsonAccept(
      R"({"model_id":"google-bert/bert-base-uncased","user_id":"u-81723","time":"2025-03-04T12:34:56Z"})");
  EXPECT_EQ(e.model_id, "google-bert/bert-base-uncased");
  EXPECT_EQ(e.user_id, "u-81723");
  EXPECT_EQ(e.time, At(2025, 3, 4, 12, 34, 56));
}

// An empty view without data (a default std::string_view) is an empty line,
// not undefined behaviour: simdjson copied from its null pointer (found by
// the tests/fuzz corpus replay under UBSan; this test fails there without the fix).
TEST(DecodeJsonEventTest, RejectsADefaultStringView) {
  ExpectJsonReject(std::string_view(), RejectReason::kMalformed);
  // An empty protobuf message is a DownloadEvent without its fields.
  EXPECT_EQ(DecodeBinaryEvent(std::string_view()).rejection->reason, RejectReason::kMissingField);
}

TEST(DecodeJsonEventTest, AcceptsWhitespaceUnknownFieldsAndAnyOrder) {
  const absl::Time t = At(2025, 3, 4, 12, 34, 56);
  for (const std::string& line : std::vector<std::string>{
           std::string(" \t") + Json("a/b", "2025-03-04T12:34:56Z") + " \r\n",
           Json("a/b", "2025-03-04T12:34:56Z") + "\r",
           std::string("\n") + Json("a/b", "2025-03-04T12:34:56Z") + "\n",
           absl::StrCat(R"({ "time" : "2025-03-04T12:34:56Z" , "extra": {"x":[1,2,{"y":null}]},)",
                        R"( "user_id":")", kUser,
                        R"(", "n": 1e300, "b": false, "model_id":"a/b"})"),
           // A repeated key: the last value wins (Python's json, the oracle, does the same).
           absl::StrCat(R"({"model_id":5,"model_id":"a/b","user_id":")", kUser,
                        R"(","time":null,"time":"2025-03-04T12:34:56Z"})"),
       }) {
    DecodedEvent e = ExpectJsonAccept(line);
    EXPECT_EQ(e.model_id, "a/b") << line;
    EXPECT_EQ(e.user_id, kUser) << line;
    EXPECT_EQ(e.time, t) << line;
  }
}

// RFC 8259 numbers beyond double / 64-bit range are valid JSON (and Python's
// json takes them); in ignored fields they must not make the line malformed.
TEST(DecodeJsonEventTest, AcceptsHugeNumbersInIgnoredFields) {
  for (const std::string& extra : std::vector<std::string>{
           "1e400", "-1e400", "123456789012345678901234567890", "-123456789012345678901234567890",
           "[1e400, {\"y\": 18446744073709551616}]", "1.5E+999", "0.0e-99999"}) {
    const std::string line = absl::StrCat(R"({"x":)", extra, R"(,"model_id":"a/b","user_id":")",
                                          kUser, R"(","time":"2025-03-04T12:34:56Z","s":"1e400"})");
    DecodedEvent e = ExpectJsonAccept(line);
    EXPECT_EQ(e.model_id, "a/b");
  }
  // Still the wrong type in a known field, and still no repair of real syntax errors.
  ExpectJsonReject(R"({"model_id":1e400,"user_id":"u","time":"2025-03-04T12:34:56Z"})",
                   RejectReason::kMalformed);
  for (const std::string& bad : std::vector<std::string>{"01", "1.", ".5", "1e", "1e+", "--1",
                                                         "1.5.5", "+1", "0x10", "1e400x"}) {
    ExpectJsonReject(absl::StrCat(R"({"x":)", bad, R"(,"y":1e400,"model_id":"a/b","user_id":")",
                                  kUser, R"(","time":"2025-03-04T12:34:56Z"})"),
                     RejectReason::kMalformed);
  }
}

TEST(DecodeJsonEventTest, LongLines) {
  const std::string big(3 << 20, 'p');
  DecodedEvent e =
      ExpectJsonAccept(absl::StrCat(R"({"pad":")", big, R"(","model_id":"a/b","user_id":")", kUser,
                                    R"(","time":"2025-03-04T12:34:56Z"})"));
  EXPECT_EQ(e.model_id, "a/b");
  ExpectJsonAccept(Json("a/b", "2025-03-04T12:34:56Z"));  // the reused parser still works
  EXPECT_THAT(ExpectJsonReject(Json("a/b", "2025-03-04T12:34:56Z") + big, RejectReason::kMalformed),
              Not(HasSubstr("ppp")));
}

TEST(DecodeJsonEventTest, UnescapesStringsAndKeepsNonAsciiUserIds) {
  DecodedEvent e = ExpectJsonAccept(
      R"({"model\u005fid":"gpt2","user_id":"\u00e9\"\\\n\ud83d\ude00","time":"2025-03-04T12:34:56Z"})");
  EXPECT_EQ(e.model_id, "gpt2");
  EXPECT_EQ(e.user_id, "\xc3\xa9\"\\\n\xf0\x9f\x98\x80");
}

TEST(DecodeJsonEventTest, TimeForms) {
  struct Case {
    const char* text;
    absl::Time want;
  };
  for (const Case& c : std::vector<Case>{
           {"2025-03-04T12:34:56Z", At(2025, 3, 4, 12, 34, 56)},
           {"2025-03-04T12:34:56.5Z", At(2025, 3, 4, 12, 34, 56) + absl::Milliseconds(500)},
           {"2025-03-04T12:34:56.123456789Z",
            At(2025, 3, 4, 12, 34, 56) + absl::Nanoseconds(123456789)},
           {"2025-03-04T12:34:56+01:00", At(2025, 3, 4, 11, 34, 56)},
           {"2025-03-04T00:30:00-02:00", At(2025, 3, 4, 2, 30, 0)},
           {"0001-01-01T00:00:00Z", At(1, 1, 1)},
           {"9999-12-31T23:59:59Z", At(9999, 12, 31, 23, 59, 59)},
           {"2024-02-29T00:00:00Z", At(2024, 2, 29)},
       }) {
    DecodedEvent e = ExpectJsonAccept(Json("a", c.text));
    EXPECT_EQ(e.time, c.want) << c.text;
  }
}

TEST(DecodeJsonEventTest, Malformed) {
  for (const std::string& line : std::vector<std::string>{
           std::string(""),
           std::string("   "),
           std::string("{"),
           std::string("}"),
           std::string("{}x"),
           std::string("{}{}"),
           std::string("[1"),
           std::string("nul"),
           std::string("{'model_id':'a'}"),
           std::string(R"({"model_id":"a",})"),
           std::string(R"({"model_id" "a"})"),
           std::string(R"({model_id:"a"})"),
           std::string(R"({"a":tru})"),            // bad literal in an ignored field
           std::string(R"({"a":01})"),             // bad number in an ignored field
           std::string(R"({"a":"\x"})"),           // bad escape in an ignored field
           std::string("{\"a\":\"\x01\"}"),        // raw control character in a string
           std::string("{\"user_id\":\"\xff\"}"),  // invalid UTF-8
           Json("a/b", "2025-03-04T12:34:56Z") + "x",
           Json("a/b", "2025-03-04T12:34:56Z") + "\n" + Json("a/b", "2025-03-04T12:34:56Z"),
           Json("a/b", "2025-03-04T12:34:56Z").substr(0, 40),
           std::string("{\"model_id\":\"a\"}\0", 18),
       }) {
    ExpectJsonReject(line, RejectReason::kMalformed);
  }
}

TEST(DecodeJsonEventTest, WrongFieldTypeIsMalformedBeforeAnythingElse) {
  // A wrong type wins over a missing field, an invalid model id and an invalid time.
  for (const std::string& line : std::vector<std::string>{
           std::string(
               R"({"model_id":5,"user_id":"SECRET-USER-42","time":"2025-03-04T12:34:56Z"})"),
           std::string(R"({"model_id":5})"),
           std::string(R"({"model_id":["a/b"],"user_id":"x","time":"2025-03-04T12:34:56Z"})"),
           std::string(R"({"model_id":{"id":"a"},"user_id":"x","time":"x"})"),
           std::string(R"({"model_id":true})"),
           std::string(R"({"user_id":12345,"model_id":"a/b","time":"2025-03-04T12:34:56Z"})"),
           std::string(R"({"user_id":false})"),
           std::string(R"({"model_id":"--bad--","user_id":"u","time":1741091696})"),
           std::string(R"({"model_id":"a","user_id":"u","time":{"seconds":1741091696}})"),
           std::string(R"({"model_id":"a","user_id":"u","time":1.5})"),
       }) {
    const std::string detail = ExpectJsonReject(line, RejectReason::kMalformed);
    EXPECT_THAT(detail, HasSubstr("expected a string")) << line;
    EXPECT_THAT(detail, Not(HasSubstr("12345")));
  }
  EXPECT_THAT(ExpectJsonReject(R"({"time":[],"model_id":"a"})", RejectReason::kMalformed),
              HasSubstr("time"));
}

TEST(DecodeJsonEventTest, NotObject) {
  for (const std::string& line :
       std::vector<std::string>{"[1]", "[]", "42", "-1.5e3", "\"str\"", "true", "false", "null",
                                " [ {\"model_id\":\"a\"} ] \r\n"}) {
    ExpectJsonReject(line, RejectReason::kNotObject);
  }
}

TEST(DecodeJsonEventTest, MissingField) {
  const std::string time = R"("time":"2025-03-04T12:34:56Z")";
  const std::string user = absl::StrCat(R"("user_id":")", kUser, R"(")");
  struct Case {
    std::string line;
    std::vector<std::string> missing;
  };
  for (const Case& c : std::vector<Case>{
           {"{}", {"model_id", "user_id", "time"}},
           {absl::StrCat("{", user, ",", time, "}"), {"model_id"}},
           {absl::StrCat(R"({"model_id":"a/b",)", time, "}"), {"user_id"}},
           {absl::StrCat(R"({"model_id":"a/b",)", user, "}"), {"time"}},
           {absl::StrCat(R"({"model_id":null,)", user, ",", time, "}"), {"model_id"}},
           {absl::StrCat(R"({"model_id":"a/b","user_id":null,)", time, "}"), {"user_id"}},
           {absl::StrCat(R"({"model_id":"a/b",)", user, R"(,"time":null})"), {"time"}},
           {absl::StrCat(R"({"model_id":"",)", user, ",", time, "}"), {"model_id"}},
           {absl::StrCat(R"({"model_id":"a/b","user_id":"",)", time, "}"), {"user_id"}},
           {absl::StrCat(R"({"model_id":"a/b",)", user, R"(,"time":""})"), {"time"}},
           {absl::StrCat(R"({"Model_Id":"a/b","modelId":"a/b",)", user, ",", time, "}"),
            {"model_id"}},
           // Missing wins over an invalid model id or time.
           {absl::StrCat(R"({"model_id":"a--b","time":"yesterday"})"), {"user_id"}},
           {absl::StrCat(R"({"model_id":"a--b",)", user, "}"), {"time"}},
       }) {
    const std::string detail = ExpectJsonReject(c.line, RejectReason::kMissingField);
    for (const std::string& field : c.missing) EXPECT_THAT(detail, HasSubstr(field)) << c.line;
  }
}

TEST(DecodeJsonEventTest, InvalidModelId) {
  for (const std::string& id : std::vector<std::string>{
           "-a/b", "a/b-", "a--b", "a..b", "a/b.git", "a/b/c", "/a", "a/", "a b", "caf\xc3\xa9",
           "caf\\u00e9", "a\\/b\\/c", std::string(97, 'x'), "ns/" + std::string(97, 'x')}) {
    const std::string detail =
        ExpectJsonReject(Json(id, "2025-03-04T12:34:56Z"), RejectReason::kInvalidModelId);
    EXPECT_THAT(detail, HasSubstr("model id")) << id;
  }
  // Checked before the time.
  ExpectJsonReject(Json("a--b", "yesterday"), RejectReason::kInvalidModelId);
  // The detail quotes the id, escaped and bounded.
  EXPECT_THAT(ExpectJsonReject(Json("a..b", "2025-03-04T12:34:56Z"), RejectReason::kInvalidModelId),
              HasSubstr("\"a..b\""));
  EXPECT_LT(ExpectJsonReject(Json(std::string(100000, 'x'), "2025-03-04T12:34:56Z"),
                             RejectReason::kInvalidModelId)
                .size(),
            400u);
  EXPECT_THAT(
      ExpectJsonReject(Json("a\\nb", "2025-03-04T12:34:56Z"), RejectReason::kInvalidModelId),
      Not(HasSubstr("\n")));
  // A valid 96-character name is accepted.
  ExpectJsonAccept(Json(std::string(96, 'x'), "2025-03-04T12:34:56Z"));
  ExpectJsonAccept(Json(std::string(96, 'n') + "/" + std::string(96, 'x'), "2025-03-04T12:34:56Z"));
}

TEST(DecodeJsonEventTest, InvalidTime) {
  for (const std::string& t : std::vector<std::string>{
           "yesterday",
           "2025-03-04t12:34:56z",  // lowercase: the protobuf JSON mapping and the reference use T
                                    // and Z
           "2025-03-04T12:34:56+0100",
           "1741091696",
           "2025-03-04",
           "2025-03-04T12:34:56",   // no zone
           "2025-03-04 12:34:56Z",  // space instead of T
           "2025-3-4T12:34:56Z",
           "2025-13-01T00:00:00Z",
           "2025-02-29T00:00:00Z",  // not a leap year
           "2025-03-04T24:00:01Z",
           "2025-03-04T12:34:56+25:00",
           "0000-12-31T23:59:59Z",
           "10000-01-01T00:00:00Z",
           "2025-03-04T12:34:56.Z",
           "2025-03-04T12:34:56ZZ",
           " 2025-03-04T12:34:56Z",
           "2025-03-04T12:34:56Z ",  // absl::ParseTime alone would skip these three
           "2025-03-04T12:34:56Z\\n",
           "2025-03-04T12:34:56Z\\u0000",
       }) {
    ExpectJsonReject(Json("a/b", t), RejectReason::kInvalidTime);
  }
  // Hostile time strings do not end up verbatim in the detail.
  const std::string detail =
      ExpectJsonReject(Json("a/b", std::string(5000, '9')), RejectReason::kInvalidTime);
  EXPECT_LT(detail.size(), 400u);
  EXPECT_THAT(
      ExpectJsonReject(Json("a/b", "2025-03-04T12:34:56Z\\u0000"), RejectReason::kInvalidTime),
      Not(HasSubstr(std::string(1, '\0'))));
}

// The time check is ParseRfc3339 (the oracle here) plus a fast path; they
// must agree on every string over the RFC 3339 alphabet.
void ExpectSameAsParseRfc3339(const std::string& text) {
  absl::StatusOr<absl::Time> want = ParseRfc3339(text);
  absl::StatusOr<absl::Time> got = events_internal::ParseEventTime(text);
  ASSERT_EQ(got.ok(), want.ok()) << text << ": " << (want.ok() ? "" : want.status().message());
  if (want.ok()) {
    ASSERT_EQ(*got, *want) << text;
  }
}

TEST(ParseEventTimeTest, AgreesWithParseRfc3339OnFieldCombinations) {
  int checked = 0;
  for (const char* year : {"0000", "0001", "0004", "0100", "0400", "1900", "1969", "1970", "2000",
                           "2024", "2025", "9999"}) {
    for (int month = 0; month <= 13; ++month) {
      for (int day : {0, 1, 28, 29, 30, 31, 32}) {
        for (int hour : {0, 23, 24}) {
          for (int minute : {0, 59, 60}) {
            for (int second : {0, 59, 60, 99}) {
              for (const char* fraction : {"", ".", ".5", ".123456789", ".1234567891"}) {
                for (const char* zone : {"Z", "z", "+01:00"}) {
                  const std::string text =
                      absl::StrFormat("%s-%02d-%02dT%02d:%02d:%02d%s%s", year, month, day, hour,
                                      minute, second, fraction, zone);
                  ExpectSameAsParseRfc3339(text);
                  ++checked;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 300000);
}

TEST(ParseEventTimeTest, AgreesWithParseRfc3339OnMutations) {
  const std::string alphabet = "0123456789-:.+TtZz";
  const std::vector<std::string> seeds = {"2025-03-04T12:34:56Z", "2024-02-29T23:59:59.999999999Z",
                                          "0001-01-01T00:00:00z", "9999-12-31t23:59:59.5Z",
                                          "2025-03-04T12:34:56.123+05:30"};
  std::mt19937 rng(20250304);
  for (int i = 0; i < 200000; ++i) {
    std::string text = seeds[i % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const char c = alphabet[rng() % alphabet.size()];
      const size_t pos = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (pos < text.size()) text[pos] = c;
          break;
        case 1:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        default:
          if (pos < text.size()) text.erase(pos, 1);
      }
    }
    ExpectSameAsParseRfc3339(text);
  }
}

TEST(ParseEventTimeTest, RejectsWhatParseTimeWouldSkip) {
  for (const std::string& text : std::vector<std::string>{
           "2025-03-04T12:34:56Z ", "2025-03-04T12:34:56Z\n", "2025-03-04T12:34:56Z\t",
           std::string("2025-03-04T12:34:56Z\0", 21), std::string("2025-03-04T12:34:56Z\0junk", 25),
           std::string("2025-03-04T12:34:56.5Z\0", 23)}) {
    EXPECT_FALSE(events_internal::ParseEventTime(text).ok()) << text;
  }
}

// The fast path (flat objects of plain strings) and the general path (simdjson)
// decide every line alike: same event (same bytes, same time) or same rejection
// (reason and detail), and the model id check called for the same ids.
void ExpectFastPathAgrees(std::string_view line, int* fast) {
  std::vector<std::string> fast_ids, general_ids;
  DecodeViewResult a = DecodeJsonEventView(line, [&](std::string_view id) {
    fast_ids.emplace_back(id);
    return IsValidModelId(id);
  });
  std::optional<DecodedEvent> a_event;
  if (a.event) {
    a_event =
        DecodedEvent{std::string(a.event->model_id), std::string(a.event->user_id), a.event->time};
  }
  DecodeViewResult b = events_internal::DecodeJsonEventViewGeneral(line, [&](std::string_view id) {
    general_ids.emplace_back(id);
    return IsValidModelId(id);
  });
  *fast += events_internal::JsonEventFastPathTaken(line) ? 1 : 0;
  ASSERT_EQ(a_event.has_value(), b.event.has_value()) << line;
  EXPECT_EQ(fast_ids, general_ids) << line;
  if (a_event) {
    EXPECT_EQ(a_event->model_id, b.event->model_id) << line;
    EXPECT_EQ(a_event->user_id, b.event->user_id) << line;
    EXPECT_EQ(a_event->time, b.event->time) << line;
  } else {
    EXPECT_EQ(RejectReasonName(a.rejection->reason), RejectReasonName(b.rejection->reason)) << line;
    EXPECT_EQ(a.rejection->detail, b.rejection->detail) << line;
  }
}

TEST(DecodeJsonEventTest, FastPathAgreesWithTheGeneralPath) {
  int fast = 0;
  const std::vector<std::string> fixed = {
      Json("org/model", "2025-03-04T12:34:56Z"),
      R"(  { "time" : "2025-03-04T12:34:56.5Z" ,"user_id":"u", "model_id":"gpt2" }  )",
      "\t{\"model_id\":\"a/b\",\"user_id\":\"u\",\"time\":\"2025-03-04T12:34:56Z\"}\r\n ",
      R"({"model_id":"a/b","model_id":"c/d","user_id":"u","time":"2025-03-04T12:34:56Z"})",
      R"({"model_id":"a/b","user_id":"","time":"2025-03-04T12:34:56Z"})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z","x":"y","":""})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56+01:00"})",
      R"({"model_id":"a b","user_id":"u","time":"2025-03-04T12:34:56Z"})",
      R"({"model_id":"a/b","user_id":"u","time":"yesterday"})",
      R"({"model_id":"a/b","user_id":"u","time":null})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z","n":1e400})",
      R"({"model_id":"a/b","user_id":"u\u0041","time":"2025-03-04T12:34:56Z"})",
      R"({"model_id":"a/b","user_id":"\u00e9","time":"2025-03-04T12:34:56Z"})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z"}})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z",})",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z"} x)",
      R"({"model_id":"a/b" "user_id":"u","time":"2025-03-04T12:34:56Z"})",
      "{\"model_id\":\"a/b\",\"user_id\":\"u\x7f\",\"time\":\"2025-03-04T12:34:56Z\"}",
      "{\"model_id\":\"a/b\",\"user_id\":\"u\x01\",\"time\":\"2025-03-04T12:34:56Z\"}",
      "{\"model_id\":\"a/b\",\"user_id\":\"\xc3\xa9\",\"time\":\"2025-03-04T12:34:56Z\"}",
      "{\"model_id\":\"a/b\",\"user_id\":\"\xff\",\"time\":\"2025-03-04T12:34:56Z\"}",
      std::string("{\"model_id\":\"a/b\",\"user_id\":\"u\0\",\"time\":\"2025-03-04T12:34:56Z\"}",
                  55),
      "{}",
      " {  } ",
      "{",
      "}",
      "",
      "  ",
      "[]",
      "\"x\"",
      "null",
      "{\"a\"}",
      "{\"a\":}",
      "{,}",
      "{\"a\":\"b\"",
      "{\"a\":\"b",
      "{\"a",
      "{\"\":\"\"}",
      "\f{}",
      "{}\f",
      "\v{}",
  };
  for (const std::string& line : fixed) ExpectFastPathAgrees(line, &fast);
  EXPECT_GE(fast, 8);
  // Mutations of event lines with bytes that matter to either path.
  const std::string alphabet =
      std::string("{}[]:,\"\\ \t\r\nnul0123456789-eE.+aZT/x\x7f\x80\xc3\xa9") +
      std::string(1, '\0');
  const std::vector<std::string> seeds = {
      Json("org/model", "2025-03-04T12:34:56Z"),
      R"({ "user_id" : "abc" , "time":"2024-02-29T23:59:59.5Z", "model_id" : "gpt2", "k":"v" })",
      R"({"model_id":"a/b","user_id":"u","time":"2025-03-04T12:34:56Z","m":{"n":[1,"x"]}})"};
  std::mt19937 rng(1807);
  fast = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string line = seeds[i % seeds.size()];
    const int edits = static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const char c = alphabet[rng() % alphabet.size()];
      const size_t pos = rng() % (line.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (pos < line.size()) line[pos] = c;
          break;
        case 1:
          line.insert(line.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        default:
          if (pos < line.size()) line.erase(pos, 1);
      }
    }
    ExpectFastPathAgrees(line, &fast);
    if (HasFailure()) break;
  }
  EXPECT_GT(fast, 10000);
}

// ---- binary ----

std::string Binary(std::string_view model_id, std::string_view user_id,
                   std::optional<std::pair<int64_t, int32_t>> time) {
  v1::DownloadEvent e;
  e.set_model_id(std::string(model_id));
  e.set_user_id(std::string(user_id));
  if (time.has_value()) {
    e.mutable_time()->set_seconds(time->first);
    e.mutable_time()->set_nanos(time->second);
  }
  return e.SerializeAsString();
}

std::string ExpectBinaryReject(std::string_view bytes, RejectReason reason) {
  DecodeResult r = DecodeBinaryEvent(bytes);
  EXPECT_FALSE(r.event.has_value());
  if (!r.rejection.has_value()) {
    ADD_FAILURE() << "accepted " << bytes.size() << " bytes";
    return "";
  }
  EXPECT_EQ(RejectReasonName(r.rejection->reason), RejectReasonName(reason)) << r.rejection->detail;
  EXPECT_THAT(r.rejection->detail, Not(HasSubstr(kUser)));
  return r.rejection->detail;
}

TEST(DecodeBinaryEventTest, RoundTrips) {
  const int64_t s = absl::ToUnixSeconds(At(2025, 3, 4, 12, 34, 56));
  struct Case {
    std::string model_id;
    std::string user_id;
    int64_t seconds;
    int32_t nanos;
    absl::Time want;
  };
  for (const Case& c : std::vector<Case>{
           {"google-bert/bert-base-uncased", kUser, s, 0, At(2025, 3, 4, 12, 34, 56)},
           {"gpt2", "u", s, 999999999, At(2025, 3, 4, 12, 34, 56) + absl::Nanoseconds(999999999)},
           {"a/b", std::string(1000, 'u'), 0, 0, absl::UnixEpoch()},
           {"a/b", "\xc3\xa9", -62135596800, 0, At(1, 1, 1)},
           {"a/b", "x", 253402300799, 999999999,
            At(9999, 12, 31, 23, 59, 59) + absl::Nanoseconds(999999999)},
       }) {
    DecodeResult r = DecodeBinaryEvent(Binary(c.model_id, c.user_id, {{c.seconds, c.nanos}}));
    ASSERT_TRUE(r.event.has_value()) << (r.rejection ? r.rejection->detail : "");
    EXPECT_FALSE(r.rejection.has_value());
    EXPECT_EQ(r.event->model_id, c.model_id);
    EXPECT_EQ(r.event->user_id, c.user_id);
    EXPECT_EQ(r.event->time, c.want);
  }
}

TEST(DecodeBinaryEventTest, IgnoresUnknownFields) {
  std::string bytes = Binary("a/b", kUser, {{1741091696, 0}});
  bytes += std::string("\x78\x01", 2);       // field 15, varint 1
  bytes += std::string("\x82\x01\x01z", 4);  // field 16, length-delimited "z"
  DecodeResult r = DecodeBinaryEvent(bytes);
  ASSERT_TRUE(r.event.has_value());
  EXPECT_EQ(r.event->model_id, "a/b");
}

TEST(DecodeBinaryEventTest, Malformed) {
  const std::string good = Binary("a/b", kUser, {{1741091696, 0}});
  for (const std::string& bytes : std::vector<std::string>{
           std::string("\xff\xff\xff"),
           std::string("\x0a\x05"
                       "ab",
                       4),                       // length past the end
           good.substr(0, good.size() - 1),      // truncated
           std::string("{\"model_id\":\"a\"}"),  // JSON is not a binary event
           std::string("\x12\x01\xff", 3) + Binary("a/b", "", {{1, 0}}),  // user_id not UTF-8
           std::string("\x0b", 1),                                        // start-group without end
       }) {
    ExpectBinaryReject(bytes, RejectReason::kMalformed);
  }
}

TEST(DecodeBinaryEventTest, MissingField) {
  EXPECT_THAT(ExpectBinaryReject("", RejectReason::kMissingField), HasSubstr("model_id"));
  EXPECT_THAT(ExpectBinaryReject(Binary("", kUser, {{1, 0}}), RejectReason::kMissingField),
              HasSubstr("model_id"));
  EXPECT_THAT(ExpectBinaryReject(Binary("a/b", "", {{1, 0}}), RejectReason::kMissingField),
              HasSubstr("user_id"));
  EXPECT_THAT(ExpectBinaryReject(Binary("a/b", kUser, std::nullopt), RejectReason::kMissingField),
              HasSubstr("time"));
  // Missing wins over an invalid model id and an invalid time.
  ExpectBinaryReject(Binary("a--b", "", {{-1LL << 60, 0}}), RejectReason::kMissingField);
  // A set time of zero is the epoch, not a missing time.
  DecodeResult r = DecodeBinaryEvent(Binary("a/b", kUser, {{0, 0}}));
  ASSERT_TRUE(r.event.has_value());
  EXPECT_EQ(r.event->time, absl::UnixEpoch());
}

TEST(DecodeBinaryEventTest, InvalidModelId) {
  for (const std::string& id :
       std::vector<std::string>{"-a/b", "a/b-", "a--b", "a..b", "a/b.git", "a/b/c", "caf\xc3\xa9",
                                std::string(97, 'x')}) {
    ExpectBinaryReject(Binary(id, kUser, {{1741091696, 0}}), RejectReason::kInvalidModelId);
  }
  ExpectBinaryReject(Binary("a--b", kUser, {{-1LL << 60, 0}}), RejectReason::kInvalidModelId);
}

TEST(DecodeBinaryEventTest, InvalidTime) {
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {-62135596801, 0},  // 0000-12-31T23:59:59Z
           {-62135596801, 999999999},
           {253402300800, 0},  // 10000-01-01T00:00:00Z
           {INT64_MAX, 0},
           {INT64_MIN, 0},
           {1741091696, -1},
           {1741091696, 1000000000},
           {1741091696, INT32_MIN},
       }) {
    ExpectBinaryReject(Binary("a/b", kUser, {{seconds, nanos}}), RejectReason::kInvalidTime);
  }
}

// The model id check is the caller's: called once for each event that gets
// as far as it (so once for each accepted one), and never for events refused
// before it; its answer decides invalid_model_id, and the checks after it
// (the time) still run.
TEST(DecodeEventViewTest, ModelIdCheckIsTheCallersAndRunsOncePerEventThatReachesIt) {
  std::vector<std::string> asked;
  bool answer = true;
  auto check = [&](std::string_view id) {
    asked.emplace_back(id);
    return answer;
  };
  const std::string good_json =
      R"({"model_id":"org/m","user_id":"u","time":"2025-03-04T12:34:56Z"})";
  const std::string good_binary = Binary("org/m", kUser, {{1741091696, 5}});
  EXPECT_TRUE(DecodeJsonEventView(good_json, check).event.has_value());
  EXPECT_TRUE(DecodeBinaryEventView(good_binary, check).event.has_value());
  EXPECT_EQ(asked, (std::vector<std::string>{"org/m", "org/m"}));

  asked.clear();
  EXPECT_FALSE(DecodeJsonEventView("not json", check).event.has_value());
  EXPECT_FALSE(DecodeJsonEventView(R"({"model_id":"org/m","time":"2025-03-04T12:34:56Z"})", check)
                   .event.has_value());
  EXPECT_FALSE(DecodeBinaryEventView("\xff\xff", check).event.has_value());
  EXPECT_FALSE(
      DecodeBinaryEventView(Binary("org/m", kUser, std::nullopt), check).event.has_value());
  EXPECT_TRUE(asked.empty());

  // The time is still checked after a model id the caller vouches for.
  DecodeViewResult late = DecodeBinaryEventView(Binary("org/m", kUser, {{INT64_MAX, 0}}), check);
  ASSERT_TRUE(late.rejection.has_value());
  EXPECT_EQ(late.rejection->reason, RejectReason::kInvalidTime);

  answer = false;
  for (DecodeViewResult r :
       {DecodeJsonEventView(good_json, check), DecodeBinaryEventView(good_binary, check)}) {
    ASSERT_TRUE(r.rejection.has_value());
    EXPECT_EQ(r.rejection->reason, RejectReason::kInvalidModelId);
  }
}

// ---- models ----

TEST(DecodeModelTest, JsonFullRecord) {
  absl::StatusOr<v1::ModelInfo> m = DecodeJsonModel(
      R"({"model_id":"org/m","developer":"Org","country":"US","org_type":"company",)"
      R"("created_at":"2024-11-02T00:00:00Z","base_model":"base/m","parameters":"110000000",)"
      R"("pipeline_tag":"fill-mask","license":"apache-2.0","likes":12,"tags":["a"]})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model_id(), "org/m");
  EXPECT_EQ(m->developer(), "Org");
  EXPECT_EQ(m->country(), "US");
  EXPECT_EQ(m->org_type(), "company");
  EXPECT_EQ(m->created_at().seconds(), absl::ToUnixSeconds(At(2024, 11, 2)));
  EXPECT_EQ(m->base_model(), "base/m");
  EXPECT_EQ(m->parameters(), 110000000);
  EXPECT_EQ(m->pipeline_tag(), "fill-mask");
  EXPECT_EQ(m->license(), "apache-2.0");
}

TEST(DecodeModelTest, JsonMinimalRecord) {
  absl::StatusOr<v1::ModelInfo> m = DecodeJsonModel(R"( {"model_id":"gpt2"} )");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model_id(), "gpt2");
  EXPECT_FALSE(m->has_created_at());
  EXPECT_EQ(m->base_model(), "");
}

TEST(DecodeModelTest, JsonRejects) {
  struct Case {
    std::string line;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {"", ""},
           {"{", ""},
           {"[1]", ""},
           {R"({"model_id":5})", ""},
           {R"({"model_id":"a","created_at":"yesterday"})", ""},
           {R"({"model_id":"a","parameters":"many"})", ""},
           {"{}", "model_id"},
           {R"({"developer":"x"})", "model_id"},
           {R"({"model_id":"a--b"})", "\"a--b\""},
           {R"({"model_id":"a/b/c","base_model":"x"})", "\"a/b/c\""},
           {R"({"model_id":"org/m","base_model":"-bad"})", "\"-bad\""},
           {R"({"model_id":"org/m","base_model":"a/b.git"})", "base_model"},
       }) {
    absl::StatusOr<v1::ModelInfo> m = DecodeJsonModel(c.line);
    ASSERT_FALSE(m.ok()) << c.line;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_THAT(m.status().message(), HasSubstr(c.mentions)) << c.line;
  }
  // A base_model error names the model too.
  EXPECT_THAT(DecodeJsonModel(R"({"model_id":"org/m","base_model":"-bad"})").status().message(),
              HasSubstr("\"org/m\""));
}

TEST(DecodeModelTest, BinaryRoundTripAndRejects) {
  v1::ModelInfo in;
  in.set_model_id("org/m");
  in.set_base_model("base/m");
  in.set_country("International");
  in.mutable_created_at()->set_seconds(absl::ToUnixSeconds(At(2024, 11, 2)));
  absl::StatusOr<v1::ModelInfo> out = DecodeBinaryModel(in.SerializeAsString());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->SerializeAsString(), in.SerializeAsString());

  EXPECT_EQ(DecodeBinaryModel("\xff\xff").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeBinaryModel("").status().code(), absl::StatusCode::kInvalidArgument);

  v1::ModelInfo bad = in;
  bad.mutable_created_at()->set_seconds(253402300800);  // year 10000
  absl::StatusOr<v1::ModelInfo> r = DecodeBinaryModel(bad.SerializeAsString());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("created_at"));
  EXPECT_THAT(r.status().message(), HasSubstr("\"org/m\""));
  bad = in;
  bad.mutable_created_at()->set_nanos(-1);
  EXPECT_EQ(DecodeBinaryModel(bad.SerializeAsString()).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = in;
  bad.set_base_model("a..b");
  EXPECT_EQ(DecodeBinaryModel(bad.SerializeAsString()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateModelTest, BoundedFieldsAcceptTheLimitAndRejectOneByteMoreNamingModelAndField) {
  using Setter = void (v1::ModelInfo::*)(const std::string&);
  const std::vector<std::pair<std::string, Setter>> fields = {
      {"developer", &v1::ModelInfo::set_developer},
      {"country", &v1::ModelInfo::set_country},
      {"org_type", &v1::ModelInfo::set_org_type},
      {"pipeline_tag", &v1::ModelInfo::set_pipeline_tag},
      {"license", &v1::ModelInfo::set_license},
  };
  ASSERT_EQ(kMaxCatalogFieldBytes, 256u);
  for (const auto& [name, set] : fields) {
    v1::ModelInfo m;
    m.set_model_id("org/m");
    (m.*set)(std::string(256, 'x'));
    EXPECT_TRUE(ValidateModel(m).ok()) << name;
    EXPECT_TRUE(DecodeBinaryModel(m.SerializeAsString()).ok()) << name;
    (m.*set)(std::string(257, 'x'));
    const absl::Status s = ValidateModel(m);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("field ", name, " is 257 bytes"))) << name;
    EXPECT_THAT(s.message(), HasSubstr("\"org/m\"")) << name;
    EXPECT_EQ(DecodeBinaryModel(m.SerializeAsString()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
    // The JSON path applies the same bound (to the decoded bytes).
    const std::string json =
        absl::StrCat(R"({"model_id":"org/m",")", name, R"(":")", std::string(257, 'x'), R"("})");
    EXPECT_THAT(DecodeJsonModel(json).status().message(), HasSubstr(absl::StrCat("field ", name)))
        << name;
  }
  // A multi-byte character counts in bytes: 86 x 3 = 258.
  v1::ModelInfo m;
  m.set_model_id("org/m");
  std::string developer;
  for (int i = 0; i < 86; ++i) developer += "\xe2\x82\xac";  // U+20AC
  m.set_developer(developer);
  EXPECT_FALSE(ValidateModel(m).ok());
}

TEST(DecodeModelTest, AWholeRecordOverTheLimitIsRejectedBeforeParsing) {
  // Unknown fields are ignored, but still count towards the record's size.
  const std::string head = R"({"model_id":"org/m","pad":")";
  const std::string tail = R"("})";
  const std::string at_limit =
      head + std::string(kMaxCatalogRecordBytes - head.size() - tail.size(), 'p') + tail;
  ASSERT_EQ(at_limit.size(), kMaxCatalogRecordBytes);
  EXPECT_TRUE(DecodeJsonModel(at_limit).ok()) << DecodeJsonModel(at_limit).status();
  const std::string over =
      head + std::string(at_limit.size() - head.size() - tail.size() + 1, 'p') + tail;
  absl::StatusOr<v1::ModelInfo> r = DecodeJsonModel(over);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(absl::StrCat(kMaxCatalogRecordBytes + 1, " bytes")));

  v1::ModelInfo m;
  m.set_model_id("org/m");
  std::string binary = m.SerializeAsString();
  // An unknown length-delimited field 100 (tag 0xA2 0x06) of padding, up to one byte over.
  const size_t pad = kMaxCatalogRecordBytes + 1 - binary.size() - 2 - 2;
  binary += "\xa2\x06";
  binary += static_cast<char>(0x80 | (pad & 0x7f));
  binary += static_cast<char>(pad >> 7);
  binary += std::string(pad, 'p');
  ASSERT_EQ(binary.size(), kMaxCatalogRecordBytes + 1);
  EXPECT_THAT(DecodeBinaryModel(binary).status().message(), HasSubstr("longer than the limit"));
  EXPECT_TRUE(DecodeBinaryModel(binary.substr(0, m.ByteSizeLong())).ok());
}

TEST(ValidateModelTest, Boundaries) {
  v1::ModelInfo m;
  m.set_model_id("a");
  EXPECT_TRUE(ValidateModel(m).ok());
  m.mutable_created_at()->set_seconds(-62135596800);
  EXPECT_TRUE(ValidateModel(m).ok());
  m.mutable_created_at()->set_seconds(253402300799);
  m.mutable_created_at()->set_nanos(999999999);
  EXPECT_TRUE(ValidateModel(m).ok());
  m.mutable_created_at()->set_seconds(-62135596801);
  EXPECT_FALSE(ValidateModel(m).ok());
  m.clear_created_at();
  m.set_model_id(std::string(97, 'a'));
  EXPECT_FALSE(ValidateModel(m).ok());
}

}  // namespace
}  // namespace hubmetrics
