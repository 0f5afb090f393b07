#include "lib/catalog/model_id_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace hubmetrics {
namespace {

// Against std::map, with ids around the inline limit and prefixes of each
// other, through many growths.
TEST(ModelIdTable, AgreesWithAMapThroughGrowth) {
  std::mt19937_64 rng(7);
  ModelIdTable table;
  std::map<std::string, ModelIdx> oracle;
  auto random_id = [&] {
    const size_t len = 1 + rng() % (ModelIdTable::kInlineBytes + 12);
    std::string id(len, 'a');
    for (char& c : id) c = "ab/-"[rng() % 4];
    return id;
  };
  for (int i = 0; i < 20000; ++i) {
    std::string id = random_id();
    const std::optional<ModelIdx> found = table.Find(id);
    auto it = oracle.find(id);
    ASSERT_EQ(found.has_value(), it != oracle.end()) << id;
    if (found) {
      EXPECT_EQ(*found, it->second) << id;
      continue;
    }
    const ModelIdx m = static_cast<ModelIdx>(oracle.size());
    table.Insert(id, m);
    oracle.emplace(id, m);
    ASSERT_EQ(table.size(), oracle.size());
  }
  for (const auto& [id, m] : oracle) {
    ASSERT_EQ(table.Find(id), m) << id;
    // Every strict prefix is either in the table with its own index or absent.
    const std::string shorter = id.substr(0, id.size() - 1);
    auto it = oracle.find(shorter);
    EXPECT_EQ(table.Find(shorter), it == oracle.end() ? std::nullopt : std::optional(it->second));
  }
  EXPECT_GT(oracle.size(), 5000u);
}

TEST(ModelIdTable, TheInlineLimitIsExact) {
  ModelIdTable table;
  const std::string at_limit(ModelIdTable::kInlineBytes, 'x');
  const std::string past_limit(ModelIdTable::kInlineBytes + 1, 'x');
  table.Insert(at_limit, 1);
  EXPECT_EQ(table.Find(at_limit), 1u);
  EXPECT_EQ(table.Find(past_limit), std::nullopt);
  table.Insert(past_limit, 2);
  EXPECT_EQ(table.Find(past_limit), 2u);
  EXPECT_EQ(table.Find(at_limit), 1u);
  EXPECT_EQ(table.Find(""), std::nullopt);
  EXPECT_EQ(table.size(), 2u);
}

}  // namespace
}  // namespace hubmetrics
