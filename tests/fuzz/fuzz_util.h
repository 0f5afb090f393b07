// Helpers shared by the fuzz targets of tests/fuzz: a check that aborts (so
// libFuzzer, or the corpus replay, reports the input) and small independent
// references that the targets compare the product code against.
#ifndef HUBMETRICS_TESTS_FUZZ_FUZZ_UTIL_H_
#define HUBMETRICS_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

namespace hubmetrics::fuzz {

// Aborts with `what` and the condition when a property of the code under test
// does not hold: a wrong answer is a finding like a crash.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)

// This abseil's string_view is not std::string_view (absl::StrCat takes only its own).
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Bytes, C-escaped, for a failure message.
inline std::string Shown(std::string_view s) {
  return absl::StrFormat("\"%s\"", absl::CHexEscape(absl::string_view(s.data(), s.size())));
}

// `s` as a JSON string literal (RFC 8259): quotes, backslashes and control
// bytes escaped, everything else as is (the caller passes valid UTF-8).
inline std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// The Hub repo id rule of events.h, written the slow and obvious way, as a
// reference for IsValidModelId: "name" or "namespace/name"; each part 1..96
// characters of [A-Za-z0-9_.-] starting and ending with [A-Za-z0-9_]; no "--"
// or ".." anywhere; not ending in ".git".
inline bool ReferenceIsValidModelId(std::string_view id) {
  auto word = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  };
  auto part_ok = [&](std::string_view p) {
    if (p.empty() || p.size() > 96 || !word(p.front()) || !word(p.back())) return false;
    for (char c : p) {
      if (!word(c) && c != '-' && c != '.') return false;
    }
    return true;
  };
  if (id.find("--") != std::string_view::npos || id.find("..") != std::string_view::npos) {
    return false;
  }
  if (id.size() >= 4 && id.substr(id.size() - 4) == ".git") return false;
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos) return part_ok(id);
  return part_ok(id.substr(0, slash)) && part_ok(id.substr(slash + 1));
}

}  // namespace hubmetrics::fuzz

#endif  // HUBMETRICS_TESTS_FUZZ_FUZZ_UTIL_H_
