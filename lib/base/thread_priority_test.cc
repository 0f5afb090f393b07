#include "lib/base/thread_priority.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace hubmetrics {
namespace {

TEST(ThreadPriority, LowersOnlyTheCallingThreadAndIsInherited) {
  const int main_before = CurrentThreadNice();
  int inside = -100;
  int child = -100;
  std::thread t([&] {
    ASSERT_TRUE(SetCurrentThreadNice(std::min(main_before + 3, 19)).ok());
    inside = CurrentThreadNice();
    std::thread([&] { child = CurrentThreadNice(); }).join();
  });
  t.join();
  EXPECT_EQ(inside, std::min(main_before + 3, 19));
  EXPECT_EQ(child, std::min(main_before + 3, 19));  // threads it starts inherit it
  EXPECT_EQ(CurrentThreadNice(), main_before);      // the caller's own only
}

TEST(ThreadPriority, OutOfRangeIsRefused) {
  EXPECT_EQ(SetCurrentThreadNice(20).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetCurrentThreadNice(-21).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hubmetrics
