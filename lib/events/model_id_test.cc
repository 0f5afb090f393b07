// GCC 12 with -fsanitize reports a false -Wmaybe-uninitialized inside
// std::regex's std::function (a known false positive); the oracle needs std::regex.
// Clang has no such warning (and -Werror refuses an unknown one).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

// Independent oracle: huggingface_hub's validate_repo_id, whose repo id regex
// is used literally (std::regex ECMAScript: \w and \b are ASCII, as the spec
// wants), plus its "--"/".." and ".git" rules, and the 96-character bound on
// the namespace that the Hub applies on creation.
bool OracleIsValidModelId(const std::string& id) {
  static const std::regex kRepoId(R"(^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$)");
  if (!std::regex_match(id, kRepoId)) return false;
  if (id.find("--") != std::string::npos || id.find("..") != std::string::npos) return false;
  if (id.size() >= 4 && id.compare(id.size() - 4, 4, ".git") == 0) return false;
  const size_t slash = id.find('/');
  return slash == std::string::npos || slash <= 96;
}

TEST(IsValidModelIdTest, Valid) {
  for (const std::string& id : std::vector<std::string>{
           "a",
           "Z",
           "0",
           "_",
           "gpt2",
           "bert-base-uncased",
           "google-bert/bert-base-uncased",
           "meta-llama/Llama-3.1-8B-Instruct",
           "a/b",
           "a.b-c_d/e.f-g_h",
           "user_1/model.v2",
           "a/b.gi",
           "a/git",
           "a.git/b",  // only the whole id must not end with .git
           "_a_/_b_",
       }) {
    EXPECT_TRUE(IsValidModelId(id)) << id;
    EXPECT_TRUE(OracleIsValidModelId(id)) << id;
  }
  EXPECT_TRUE(IsValidModelId(std::string(96, 'a')));
  EXPECT_TRUE(IsValidModelId(std::string(96, 'n') + "/" + std::string(96, 'm')));
}

TEST(IsValidModelIdTest, Invalid) {
  for (const std::string& id : std::vector<std::string>{
           "",
           "/",
           "a/",
           "/a",
           "-a/b",
           "a-/b",
           "a/-b",
           "a/b-",
           ".a",
           "a.",
           "a--b",
           "a/b--c",
           "a..b",
           "a/b..c",
           "a/b.git",
           "b.git",
           "a/b/c",
           "a//b",
           "a b",
           "a/b c",
           "a\tb",
           "a:b",
           "a@b",
           "caf\xc3\xa9",  // non-ASCII (é)
           "\xc3\xa9t\xc3\xa9/model",
           "a\nb",
           std::string("a\0b", 3),
       }) {
    EXPECT_FALSE(IsValidModelId(id)) << id;
    EXPECT_FALSE(OracleIsValidModelId(id)) << id;
  }
  EXPECT_FALSE(IsValidModelId(std::string(97, 'a')));
  EXPECT_FALSE(IsValidModelId("ns/" + std::string(97, 'a')));
  EXPECT_FALSE(IsValidModelId(std::string(97, 'a') + "/b"));
}

// Every string up to length 5 over an alphabet that exercises each rule.
TEST(IsValidModelIdTest, AgreesWithOracleExhaustively) {
  const std::string alphabet = std::string("aZ0_-./ ") + "\xc3";
  std::vector<std::string> level = {""};
  int checked = 0;
  for (int len = 0; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const std::string& s : level) {
      ASSERT_EQ(IsValidModelId(s), OracleIsValidModelId(s)) << "id: " << s;
      ++checked;
      if (len < 5) {
        for (char c : alphabet) next.push_back(s + c);
      }
    }
    level = std::move(next);
  }
  EXPECT_GT(checked, 60000);
}

// Lengths around the 96-character bound, with and without a namespace, and
// with a ".git" suffix (the suffix rule is not about length).
TEST(IsValidModelIdTest, AgreesWithOracleOnLengths) {
  for (int ns_len : {0, 1, 95, 96, 97}) {
    for (int name_len : {0, 1, 95, 96, 97}) {
      for (const std::string& suffix : std::vector<std::string>{"", ".git", "x"}) {
        std::string id = ns_len > 0 ? std::string(ns_len, 'n') + "/" : "";
        id += std::string(name_len, 'm') + suffix;
        EXPECT_EQ(IsValidModelId(id), OracleIsValidModelId(id))
            << "ns " << ns_len << " name " << name_len << " suffix " << suffix;
      }
    }
  }
}

}  // namespace
}  // namespace hubmetrics
