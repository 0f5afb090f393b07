// Hub repo id syntax (IsValidModelId).
#include <string_view>

#include "lib/events/events.h"

namespace hubmetrics {
namespace {

constexpr size_t kMaxPartLength = 96;

// ASCII only on purpose: the Hub's `\w` would admit Unicode letters, but ids
// with them do not occur on the Hub and the oracle uses the ASCII class.
bool IsWordChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool IsIdChar(char c) { return IsWordChar(c) || c == '-' || c == '.'; }

bool IsValidPart(std::string_view part) {
  if (part.empty() || part.size() > kMaxPartLength) return false;
  if (!IsWordChar(part.front()) || !IsWordChar(part.back())) return false;
  for (char c : part) {
    if (!IsIdChar(c)) return false;
  }
  return true;
}

}  // namespace

bool IsValidModelId(std::string_view id) {
  if (id.ends_with(".git")) return false;
  if (id.find("--") != std::string_view::npos || id.find("..") != std::string_view::npos) {
    return false;
  }
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos) return IsValidPart(id);
  // A second '/' lands in the name part, where IsIdChar rejects it.
  return IsValidPart(id.substr(0, slash)) && IsValidPart(id.substr(slash + 1));
}

}  // namespace hubmetrics
