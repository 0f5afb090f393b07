// Decoding of download events (JSON and binary) and catalog records.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/wire_format_lite.h"
#include "lib/events/events.h"
#include "lib/events/internal.h"
#include "simdjson.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hubmetrics {
namespace {

// Bounds what a hostile record can put into a log line or DLQ header.
constexpr size_t kMaxQuotedBytes = 120;
// Lines longer than this are parsed with a parser of their own, so that one
// huge record does not leave the thread's reusable parser at its size forever.
constexpr size_t kMaxReusedParserBytes = 1 << 20;

// Timestamp range of years 0001..9999 (the protobuf Timestamp range).
constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z

// absl::StrCat does not take std::string_view in this abseil (see BUILD-NOTES).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// `s` in double quotes, C-escaped (so control bytes and non-ASCII cannot
// corrupt a log line), cut after kMaxQuotedBytes input bytes.
std::string Quote(std::string_view s) {
  const bool cut = s.size() > kMaxQuotedBytes;
  if (cut) s = s.substr(0, kMaxQuotedBytes);
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(s.data(), s.size())), "\"",
                      cut ? "..." : "");
}

DecodeViewResult Reject(RejectReason reason, std::string detail) {
  return DecodeViewResult{std::nullopt, Rejection{reason, std::move(detail)}};
}

std::string_view JsonTypeName(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY:
      return "an array";
    case T::OBJECT:
      return "an object";
    case T::INT64:
    case T::UINT64:
    case T::DOUBLE:
      return "a number";
    case T::STRING:
      return "a string";
    case T::BOOL:
      return "a boolean";
    case T::NULL_VALUE:
      return "null";
  }
  return "an unknown value";
}

// Checks 4 and 5, shared by both wire formats: presence, then the model id.
// Empty strings count as absent, as in the protobuf mapping of proto3 strings.
std::optional<Rejection> CheckPresenceAndModelId(
    std::string_view model_id, std::string_view user_id, bool has_time,
    absl::FunctionRef<bool(std::string_view)> is_valid_model_id) {
  if (model_id.empty() || user_id.empty() || !has_time) {
    std::string missing;
    if (model_id.empty()) absl::StrAppend(&missing, "model_id");
    if (user_id.empty()) absl::StrAppend(&missing, missing.empty() ? "" : ", ", "user_id");
    if (!has_time) absl::StrAppend(&missing, missing.empty() ? "" : ", ", "time");
    return Rejection{RejectReason::kMissingField,
                     absl::StrCat("missing or empty field(s): ", missing)};
  }
  if (!is_valid_model_id(model_id)) {
    return Rejection{RejectReason::kInvalidModelId,
                     absl::StrCat("invalid model id ", Quote(model_id),
                                  ": expected a Hub repo id like \"namespace/name\" or \"name\"")};
  }
  return std::nullopt;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The characters an RFC 3339 timestamp is made of. ParseRfc3339 (absl::ParseTime)
// skips trailing whitespace and stops at a NUL byte, so without this check
// "2025-03-04T12:34:56Z \n" or "...Z\u0000junk" would pass as times.
bool IsRfc3339Alphabet(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || c == '-' || c == ':' || c == '.' || c == '+' ||
                    c == 'T' || c == 't' || c == 'Z' || c == 'z';
    if (!ok) return false;
  }
  return true;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int64_t>(era) * 146097 + doe - 719468;
}

// The common shape "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" (uppercase T and Z, as ParseRfc3339), parsed
// without the allocation and generality of absl::ParseTime (a third of the decode time). Returns
// nullopt for anything else, including shapes it could parse but leaves to ParseRfc3339 so that
// there is one source of truth for them (second 60, year 0000, other offsets, longer fractions).
// The unit test checks that both agree.
std::optional<absl::Time> ParseCommonUtcTime(std::string_view s) {
  if (s.size() < 20 || s.size() > 30) return std::nullopt;
  auto digits = [&](size_t pos, size_t n, int& out) {
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d) ||
      s[10] != 'T' || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' ||
      !digits(17, 2, sec)) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
      d > kDaysInMonth[mo - 1] + (mo == 2 && IsLeapYear(y) ? 1 : 0) || h > 23 || mi > 59 ||
      sec > 59) {
    return std::nullopt;
  }
  int64_t nanos = 0;
  size_t pos = 19;
  if (s[pos] == '.') {
    const size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') nanos = nanos * 10 + (s[pos++] - '0');
    const size_t n = pos - start;
    if (n == 0 || n > 9) return std::nullopt;
    for (size_t i = n; i < 9; ++i) nanos *= 10;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
  const int64_t seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  // Adding a Duration normalizes it: skipped for the usual whole seconds.
  if (nanos == 0) return absl::FromUnixSeconds(seconds);
  return absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos);
}

}  // namespace

namespace events_internal {

absl::StatusOr<absl::Time> ParseEventTime(std::string_view text) {
  if (std::optional<absl::Time> t = ParseCommonUtcTime(text); t.has_value()) return *t;
  if (!IsRfc3339Alphabet(text)) {
    return absl::InvalidArgumentError("characters outside the RFC 3339 alphabet");
  }
  return ParseRfc3339(text);
}

}  // namespace events_internal

namespace {

// RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

// simdjson refuses numbers beyond double or 64-bit integer range (1e400,
// 2^64), which RFC 8259 allows and other decoders (Python's json, the test
// oracle) accept. Their values never matter here: they sit in ignored fields,
// or in a known field, where any number is the wrong type. So on a number
// error the line is checked again with every well-formed number outside
// strings replaced by 0 (and spaces); nullopt when there is nothing to replace.
std::optional<std::string> WithNumbersZeroed(std::string_view line) {
  std::string out(line);
  bool changed = false;
  size_t i = 0;
  while (i < out.size()) {
    const char c = out[i];
    if (c == '"') {
      for (++i; i < out.size() && out[i] != '"'; ++i) {
        if (out[i] == '\\') ++i;
      }
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t end = i;
      while (end < out.size() &&
             std::string_view("0123456789+-.eE").find(out[end]) != std::string_view::npos) {
        ++end;
      }
      if (IsJsonNumber(std::string_view(out).substr(i, end - i)) && end - i > 1) {
        out[i] = '0';
        std::fill(out.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                  out.begin() + static_cast<std::ptrdiff_t>(end), ' ');
        changed = true;
      }
      i = end;
    } else {
      ++i;
    }
  }
  if (!changed) return std::nullopt;
  return out;
}

enum class FieldState : uint8_t { kAbsent, kString, kWrongType };

struct JsonField {
  FieldState state = FieldState::kAbsent;
  simdjson::dom::element_type type = simdjson::dom::element_type::NULL_VALUE;
  std::string_view value;
};

// JSON whitespace (RFC 8259): space, tab, line feed, carriage return.
bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The bytes a string may hold on the fast path: printable ASCII and DEL, no
// quote and no backslash (so its JSON text is its value, unescaped).
constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> ok{};
  for (int c = 0x20; c < 0x80; ++c) ok[c] = c != '"' && c != '\\';
  return ok;
}();

// 0 for "model_id", 1 for "user_id", 2 for "time", -1 for any other key.
int FieldIndex(std::string_view key) {
  switch (key.size()) {
    case 8:
      return std::memcmp(key.data(), "model_id", 8) == 0 ? 0 : -1;
    case 7:
      return std::memcmp(key.data(), "user_id", 7) == 0 ? 1 : -1;
    case 4:
      return std::memcmp(key.data(), "time", 4) == 0 ? 2 : -1;
    default:
      return -1;
  }
}

// The first byte at or after `p` that is not a plain string byte, or `end`.
const char* SkipPlainStringBytes(const char* p, const char* const end) {
#if defined(__SSE2__)
  // 16 bytes at a time: a quote, a backslash, or a byte below 0x20 or from
  // 0x80 on (below 0x20 as signed bytes) ends the run.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i special =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                     _mm_cmplt_epi8(v, space));
    if (const int mask = _mm_movemask_epi8(special); mask != 0) return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
  while (p < end && kPlainStringByte[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// The fast path of DecodeJsonEventView, for the common shape of an event
// line: one flat object whose keys and values are all strings of plain bytes
// (kPlainStringByte). Fills `fields` as the general path does (the last of a
// repeated key wins), with views into `line`, and returns true; returns false,
// deciding nothing, for anything else (escapes, non-ASCII bytes, values that
// are not strings, nesting, any syntax error), which the general path
// (simdjson) then parses. Every line it accepts is valid JSON that the general
// path reads to the same fields (decode_test checks both on many lines).
bool ScanFlatStringObject(std::string_view line, JsonField (&fields)[3]) {
  const char* p = line.data();
  const char* const end = p + line.size();
  auto skip_space = [&] {
    while (p < end && IsJsonSpace(*p)) ++p;
  };
  auto plain_string = [&](std::string_view* out) {
    if (p == end || *p != '"') return false;
    const char* const start = ++p;
    p = SkipPlainStringBytes(p, end);
    if (p == end || *p != '"') return false;
    *out = std::string_view(start, static_cast<size_t>(p - start));
    ++p;
    return true;
  };
  skip_space();
  if (p == end || *p != '{') return false;
  ++p;
  skip_space();
  if (p != end && *p == '}') {
    ++p;
    skip_space();
    return p == end;
  }
  while (true) {
    std::string_view key, value;
    if (!plain_string(&key)) return false;
    skip_space();
    if (p == end || *p != ':') return false;
    ++p;
    skip_space();
    if (!plain_string(&value)) return false;
    const int index = FieldIndex(key);
    if (index >= 0) {
      fields[index] = JsonField{FieldState::kString, simdjson::dom::element_type::STRING, value};
    }
    skip_space();
    if (p == end) return false;
    if (*p == ',') {
      ++p;
      skip_space();
      continue;
    }
    if (*p != '}') return false;
    ++p;
    skip_space();
    return p == end;
  }
}

// The general path of DecodeJsonEventView: `line` parsed by simdjson. Fills
// `fields` (index 0 model_id, 1 user_id, 2 time; a repeated key: the last one
// wins, as in Python's json module and most JSON decoders), or returns the
// rejection (malformed, not_object).
std::optional<Rejection> ParseJsonFields(std::string_view line, JsonField (&fields)[3]) {
  // A default std::string_view has no data: simdjson would memcpy from a null
  // pointer (undefined behaviour even for 0 bytes).
  if (line.data() == nullptr) line = std::string_view("", 0);
  thread_local simdjson::dom::parser reused_parser;
  // The parser of the last huge line: the returned views point into it, so it
  // lives until the next call (which frees it, whatever that line's size).
  thread_local std::unique_ptr<simdjson::dom::parser> own_parser;
  own_parser.reset();
  if (line.size() > kMaxReusedParserBytes) own_parser = std::make_unique<simdjson::dom::parser>();
  simdjson::dom::parser& parser = own_parser != nullptr ? *own_parser : reused_parser;

  simdjson::dom::element root;
  simdjson::error_code err = parser.parse(line.data(), line.size()).get(root);
  std::string renumbered;  // only on the rare path below; strings are copied into the parser
  if (err == simdjson::NUMBER_ERROR) {
    if (std::optional<std::string> r = WithNumbersZeroed(line); r.has_value()) {
      renumbered = std::move(*r);
      err = parser.parse(renumbered.data(), renumbered.size()).get(root);
    }
  }
  if (err) {
    return Rejection{RejectReason::kMalformed,
                     absl::StrCat("not valid JSON: ", simdjson::error_message(err))};
  }
  simdjson::dom::object object;
  if (root.get(object) != simdjson::SUCCESS) {
    return Rejection{
        RejectReason::kNotObject,
        absl::StrCat("JSON value is ", AV(JsonTypeName(root.type())), ", not an object")};
  }
  for (const simdjson::dom::key_value_pair kv : object) {
    int index;
    if (kv.key == "model_id") {
      index = 0;
    } else if (kv.key == "user_id") {
      index = 1;
    } else if (kv.key == "time") {
      index = 2;
    } else {
      continue;
    }
    JsonField& f = fields[index];
    f.type = kv.value.type();
    if (f.type == simdjson::dom::element_type::NULL_VALUE) {
      f = JsonField{};  // null means absent (protobuf JSON mapping)
    } else if (kv.value.get(f.value) == simdjson::SUCCESS) {
      f.state = FieldState::kString;
    } else {
      f.state = FieldState::kWrongType;
      f.value = {};
    }
  }
  return std::nullopt;
}

DecodeViewResult DecodeJsonEventViewImpl(
    std::string_view line, absl::FunctionRef<bool(std::string_view)> is_valid_model_id,
    bool fast_path) {
  JsonField fields[3];
  if (!fast_path || !ScanFlatStringObject(line, fields)) {
    for (JsonField& f : fields) f = JsonField{};
    if (std::optional<Rejection> r = ParseJsonFields(line, fields); r.has_value()) {
      return DecodeViewResult{std::nullopt, std::move(r)};
    }
  }
  static constexpr std::string_view kNames[3] = {"model_id", "user_id", "time"};
  for (int i = 0; i < 3; ++i) {
    if (fields[i].state == FieldState::kWrongType) {
      return Reject(RejectReason::kMalformed,
                    absl::StrCat("field ", AV(kNames[i]), " is ", AV(JsonTypeName(fields[i].type)),
                                 ", expected a string"));
    }
  }

  const std::string_view model_id = fields[0].value;
  const std::string_view user_id = fields[1].value;
  const std::string_view time_text = fields[2].value;
  if (std::optional<Rejection> r =
          CheckPresenceAndModelId(model_id, user_id, !time_text.empty(), is_valid_model_id);
      r.has_value()) {
    return DecodeViewResult{std::nullopt, std::move(r)};
  }
  absl::StatusOr<absl::Time> time = events_internal::ParseEventTime(time_text);
  if (!time.ok()) {
    // ParseRfc3339 quotes the text as is; that is only fit for a log when short and printable.
    if (time_text.size() <= 40 && IsPrintableAscii(time_text) && IsRfc3339Alphabet(time_text)) {
      return Reject(RejectReason::kInvalidTime, std::string(time.status().message()));
    }
    return Reject(RejectReason::kInvalidTime,
                  absl::StrCat("invalid time ", Quote(time_text),
                               ": expected RFC 3339 like 2025-03-04T12:34:56Z"));
  }
  return DecodeViewResult{DecodedEventView{model_id, user_id, *time}, std::nullopt};
}

}  // namespace

namespace events_internal {

bool JsonEventFastPathTaken(std::string_view line) {
  JsonField fields[3];
  return ScanFlatStringObject(line, fields);
}

DecodeViewResult DecodeJsonEventViewGeneral(
    std::string_view line, absl::FunctionRef<bool(std::string_view)> is_valid_model_id) {
  return DecodeJsonEventViewImpl(line, is_valid_model_id, /*fast_path=*/false);
}

}  // namespace events_internal

DecodeViewResult DecodeJsonEventView(std::string_view line,
                                     absl::FunctionRef<bool(std::string_view)> is_valid_model_id) {
  return DecodeJsonEventViewImpl(line, is_valid_model_id, /*fast_path=*/true);
}

namespace {

DecodeResult Owning(DecodeViewResult r) {
  if (r.rejection) return DecodeResult{std::nullopt, std::move(r.rejection)};
  return DecodeResult{
      DecodedEvent{std::string(r.event->model_id), std::string(r.event->user_id), r.event->time},
      std::nullopt};
}

}  // namespace

DecodeResult DecodeJsonEvent(std::string_view line) { return Owning(DecodeJsonEventView(line)); }

namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// What protobuf's own parser (ParseContext, behind ParseFromArray) allows and
// CodedInputStream alone does not check: tags and lengths of at most 5 bytes
// (CodedInputStream reads up to 10 and drops the high bits), field number 0
// refused, and a nesting budget of 100 (the default recursion limit) shared by
// submessages and groups.
constexpr int kMaxTagOrSizeBytes = 5;
constexpr int kRecursionLimit = 100;

bool ReadTag(CodedInputStream& in, uint32_t* tag) {
  const int start = in.CurrentPosition();
  *tag = in.ReadTagNoLastTag();
  return *tag != 0 && in.CurrentPosition() - start <= kMaxTagOrSizeBytes &&
         WireFormatLite::GetTagFieldNumber(*tag) != 0;
}

bool ReadSize(CodedInputStream& in, int* size) {
  const int start = in.CurrentPosition();
  return in.ReadVarintSizeAsInt(size) && in.CurrentPosition() - start <= kMaxTagOrSizeBytes;
}

// A length-delimited value as a view into `base` (the stream's buffer).
bool ReadView(CodedInputStream& in, const char* base, std::string_view* out) {
  int size;
  if (!ReadSize(in, &size)) return false;
  const int start = in.CurrentPosition();
  if (!in.Skip(size)) return false;
  *out = std::string_view(base + start, static_cast<size_t>(size));
  return true;
}

bool SkipField(CodedInputStream& in, uint32_t tag, int depth);

// The fields of a group up to its end tag (for `field`), skipped.
bool SkipGroup(CodedInputStream& in, int field, int depth) {
  if (--depth < 0) return false;
  while (true) {
    uint32_t tag;
    if (!ReadTag(in, &tag)) return false;  // also at the end of the data or submessage
    if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_END_GROUP) {
      return WireFormatLite::GetTagFieldNumber(tag) == field;
    }
    if (!SkipField(in, tag, depth)) return false;
  }
}

// An unknown field (or a known one with another wire type), skipped.
bool SkipField(CodedInputStream& in, uint32_t tag, int depth) {
  switch (WireFormatLite::GetTagWireType(tag)) {
    case WireFormatLite::WIRETYPE_VARINT: {
      uint64_t v;
      return in.ReadVarint64(&v);
    }
    case WireFormatLite::WIRETYPE_FIXED64:
      return in.Skip(8);
    case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
      int size;
      return ReadSize(in, &size) && in.Skip(size);
    }
    case WireFormatLite::WIRETYPE_START_GROUP:
      return SkipGroup(in, WireFormatLite::GetTagFieldNumber(tag), depth);
    case WireFormatLite::WIRETYPE_FIXED32:
      return in.Skip(4);
    default:  // an end group without a start, or wire types 6 and 7
      return false;
  }
}

// As protobuf's parser checks proto3 strings.
bool IsValidUtf8(std::string_view s) {
  // ASCII, the common case, eight bytes at a time.
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080u) return simdjson::validate_utf8(s.data(), s.size());
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      return simdjson::validate_utf8(s.data(), s.size());
    }
  }
  return true;
}

struct WireEvent {
  std::string_view model_id;
  std::string_view user_id;
  bool has_time = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
};

// The fields of a google.protobuf.Timestamp, merged into `e` (as protobuf
// merges repeated submessages). The stream's limit is the submessage's end.
bool ReadTimestamp(CodedInputStream& in, int end, int depth, WireEvent* e) {
  while (in.CurrentPosition() < end) {
    uint32_t tag;
    if (!ReadTag(in, &tag)) return false;
    uint64_t v;
    switch (tag) {
      case WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT):
        if (!in.ReadVarint64(&v)) return false;
        e->seconds = static_cast<int64_t>(v);
        break;
      case WireFormatLite::MakeTag(2, WireFormatLite::WIRETYPE_VARINT):
        if (!in.ReadVarint64(&v)) return false;
        e->nanos = static_cast<int32_t>(static_cast<uint32_t>(v));
        break;
      default:
        if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_END_GROUP) {
          return false;
        }
        if (!SkipField(in, tag, depth)) return false;
    }
  }
  return true;
}

// The layout protobuf's serializer writes for a DownloadEvent with all three
// fields set and short ids: model_id, user_id, time (seconds and/or nanos),
// each once, in field order, lengths and tags of one byte, varints of at most
// 9 bytes. Reads it without CodedInputStream's bookkeeping; false (leaving `e`
// to the general reader) for anything else, so both give the same results.
bool ReadCanonicalDownloadEvent(std::string_view bytes, WireEvent* e) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* const end = p + bytes.size();
  auto view = [&](uint8_t tag, std::string_view* out) {
    if (end - p < 2 || p[0] != tag || p[1] >= 0x80 || end - p - 2 < p[1]) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p + 2), p[1]);
    p += 2 + p[1];
    return true;
  };
  auto varint = [&](const uint8_t* limit, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 63 && p < limit; shift += 7) {
      const uint8_t b = *p++;
      *v |= uint64_t{b & 0x7fu} << shift;
      if (b < 0x80) return true;
    }
    return false;  // 10 bytes or more, or cut: the general reader decides
  };
  std::string_view model_id, user_id;
  if (!view(0x0A, &model_id) || !view(0x12, &user_id)) return false;
  if (end - p < 2 || p[0] != 0x1A || p[1] >= 0x80 || end - p - 2 != p[1]) return false;
  p += 2;
  int64_t seconds = 0;
  int32_t nanos = 0;
  uint64_t v;
  if (p < end && *p == 0x08) {
    ++p;
    if (!varint(end, &v)) return false;
    seconds = static_cast<int64_t>(v);
  }
  if (p < end && *p == 0x10) {
    ++p;
    if (!varint(end, &v)) return false;
    nanos = static_cast<int32_t>(static_cast<uint32_t>(v));
  }
  if (p != end || !IsValidUtf8(model_id) || !IsValidUtf8(user_id)) return false;
  e->model_id = model_id;
  e->user_id = user_id;
  e->has_time = true;
  e->seconds = seconds;
  e->nanos = nanos;
  return true;
}

bool ReadDownloadEvent(std::string_view bytes, WireEvent* e) {
  if (ReadCanonicalDownloadEvent(bytes, e)) return true;
  const char* base = bytes.data();
  CodedInputStream in(reinterpret_cast<const uint8_t*>(base), static_cast<int>(bytes.size()));
  const int end = static_cast<int>(bytes.size());
  while (in.CurrentPosition() < end) {
    uint32_t tag;
    if (!ReadTag(in, &tag)) return false;
    switch (tag) {
      case WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED):
        if (!ReadView(in, base, &e->model_id) || !IsValidUtf8(e->model_id)) return false;
        break;
      case WireFormatLite::MakeTag(2, WireFormatLite::WIRETYPE_LENGTH_DELIMITED):
        if (!ReadView(in, base, &e->user_id) || !IsValidUtf8(e->user_id)) return false;
        break;
      case WireFormatLite::MakeTag(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED): {
        int size;
        if (!ReadSize(in, &size) || size > end - in.CurrentPosition()) return false;
        e->has_time = true;
        const CodedInputStream::Limit sub = in.PushLimit(size);
        if (!ReadTimestamp(in, in.CurrentPosition() + size, kRecursionLimit - 1, e)) return false;
        in.PopLimit(sub);
        break;
      }
      default:
        if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_END_GROUP) {
          return false;
        }
        if (!SkipField(in, tag, kRecursionLimit)) return false;
    }
  }
  return true;
}

}  // namespace

DecodeViewResult DecodeBinaryEventView(
    std::string_view bytes, absl::FunctionRef<bool(std::string_view)> is_valid_model_id) {
  WireEvent e;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) || !ReadDownloadEvent(bytes, &e)) {
    return Reject(RejectReason::kMalformed,
                  absl::StrCat("not a valid binary DownloadEvent (", bytes.size(), " bytes)"));
  }
  if (std::optional<Rejection> r =
          CheckPresenceAndModelId(e.model_id, e.user_id, e.has_time, is_valid_model_id);
      r.has_value()) {
    return DecodeViewResult{std::nullopt, std::move(r)};
  }
  if (e.seconds < kMinTimestampSeconds || e.seconds > kMaxTimestampSeconds || e.nanos < 0 ||
      e.nanos >= 1000000000) {
    return Reject(RejectReason::kInvalidTime,
                  absl::StrCat("invalid time {seconds: ", e.seconds, ", nanos: ", e.nanos,
                               "}: expected years 0001..9999 and nanos in [0, 1e9)"));
  }
  // Filled in place: a braced return made GCC zero the whole result first.
  DecodeViewResult out;
  out.event.emplace(DecodedEventView{
      e.model_id, e.user_id, absl::FromUnixSeconds(e.seconds) + absl::Nanoseconds(e.nanos)});
  return out;
}

DecodeResult DecodeBinaryEvent(std::string_view bytes) {
  return Owning(DecodeBinaryEventView(bytes));
}

absl::Status ValidateModel(const v1::ModelInfo& m) {
  if (m.model_id().empty()) return absl::InvalidArgumentError("model record has no model_id");
  if (!IsValidModelId(m.model_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid model id ", Quote(m.model_id()),
                     ": expected a Hub repo id like \"namespace/name\" or \"name\""));
  }
  const std::pair<std::string_view, const std::string*> bounded[] = {
      {"developer", &m.developer()}, {"country", &m.country()},
      {"org_type", &m.org_type()},   {"pipeline_tag", &m.pipeline_tag()},
      {"license", &m.license()},     {"base_relation", &m.base_relation()},
  };
  for (const auto& [field, value] : bounded) {
    if (value->size() > kMaxCatalogFieldBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("model ", Quote(m.model_id()), ": field ", AV(field), " is ", value->size(),
                       " bytes long; at most ", kMaxCatalogFieldBytes, " bytes allowed"));
    }
  }
  if (!m.base_model().empty() && !IsValidModelId(m.base_model())) {
    return absl::InvalidArgumentError(absl::StrCat("model ", Quote(m.model_id()),
                                                   ": invalid base_model ", Quote(m.base_model()),
                                                   ": expected a Hub repo id or empty"));
  }
  if (m.has_created_at()) {
    const int64_t seconds = m.created_at().seconds();
    const int32_t nanos = m.created_at().nanos();
    if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds || nanos < 0 ||
        nanos >= 1000000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("model ", Quote(m.model_id()), ": created_at {seconds: ", seconds,
                       ", nanos: ", nanos, "} is outside years 0001..9999"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckModelRecordSize(size_t size) {
  if (size <= kMaxCatalogRecordBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("model record of ", size,
                                                 " bytes is longer than the limit of ",
                                                 kMaxCatalogRecordBytes, " bytes"));
}

}  // namespace

absl::StatusOr<v1::ModelInfo> DecodeJsonModel(std::string_view line) {
  if (absl::Status s = CheckModelRecordSize(line.size()); !s.ok()) return s;
  v1::ModelInfo m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &m, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model record is not a valid ModelInfo JSON object: ", status.ToString()));
  }
  if (absl::Status s = ValidateModel(m); !s.ok()) return s;
  return m;
}

absl::StatusOr<v1::ModelInfo> DecodeBinaryModel(std::string_view bytes) {
  if (absl::Status s = CheckModelRecordSize(bytes.size()); !s.ok()) return s;
  v1::ModelInfo m;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("model record is not a valid binary ModelInfo (", bytes.size(), " bytes)"));
  }
  if (absl::Status s = ValidateModel(m); !s.ok()) return s;
  return m;
}

}  // namespace hubmetrics
