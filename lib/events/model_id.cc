// Hub repo id syntax (IsValidModelId).
#include <array>
#include <cstdint>
#include <string_view>

#include "lib/events/events.h"

namespace hubmetrics {
namespace {

constexpr size_t kMaxPartLength = 96;

// Character classes. ASCII only on purpose: the Hub's `\w` would admit
// Unicode letters, but ids with them do not occur on the Hub and the oracle
// uses the ASCII class.
constexpr uint8_t kWord = 1;   // [A-Za-z0-9_]: may start and end a part
constexpr uint8_t kInner = 2;  // '-' and '.': only inside a part
constexpr uint8_t kSlash = 4;

constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kWord;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kWord;
  for (int c = '0'; c <= '9'; ++c) t[c] = kWord;
  t['_'] = kWord;
  t['-'] = kInner;
  t['.'] = kInner;
  t['/'] = kSlash;
  return t;
}();

uint8_t ClassOf(char c) { return kClass[static_cast<unsigned char>(c)]; }

// The part [start, end) of `id`: 1..96 characters, starting and ending with a
// word character (its inner characters are checked by the caller).
bool IsValidPart(std::string_view id, size_t start, size_t end) {
  return end > start && end - start <= kMaxPartLength && (ClassOf(id[start]) & kWord) &&
         (ClassOf(id[end - 1]) & kWord);
}

}  // namespace

// One pass with few branches: the characters, "--" and "..", at most one
// '/', then each part's length and ends.
bool IsValidModelId(std::string_view id) {
  if (id.ends_with(".git")) return false;
  size_t slash = std::string_view::npos;
  size_t slashes = 0;
  bool bad = false;
  char prev = 0;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const uint8_t cls = ClassOf(c);
    bad |= (cls == 0) | ((cls == kInner) & (c == prev));  // other characters, "--", ".."
    if (cls == kSlash) {
      slash = i;
      ++slashes;  // a second '/' would be in the name part, where it is not allowed
    }
    prev = c;
  }
  if (bad || slashes > 1) return false;
  if (slash == std::string_view::npos) return IsValidPart(id, 0, id.size());
  return IsValidPart(id, 0, slash) && IsValidPart(id, slash + 1, id.size());
}

}  // namespace hubmetrics
