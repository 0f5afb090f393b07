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

TEST(ThreadPriority, IngestPriorityIsRelativeToTheThreadsOwn) {
  // A thread already at a high nice value (as under `nice -n 10`): ingest goes
  // below it, never back up to the absolute value.
  int started = -100;
  int lowered = -100;
  int capped = -100;
  std::thread([&] {
    ASSERT_TRUE(SetCurrentThreadNice(std::min(CurrentThreadNice() + 10, 19)).ok());
    started = CurrentThreadNice();
    LowerIngestPriority(5);
    lowered = CurrentThreadNice();
    LowerIngestPriority(19);
    capped = CurrentThreadNice();
  }).join();
  EXPECT_EQ(lowered, std::min(started + 5, 19));
  EXPECT_EQ(capped, 19);
}

TEST(ThreadPriority, OutOfRangeIsRefused) {
  EXPECT_EQ(SetCurrentThreadNice(20).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetCurrentThreadNice(-21).code(), absl::StatusCode::kInvalidArgument);
  bool ran = false;
  EXPECT_EQ(RunAtRealtimePriority(0, [&] { ran = true; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunAtRealtimePriority(100, [&] { ran = true; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ran);
}

TEST(ThreadPriority, RealtimeReachesThreadsStartedInsideOnly) {
  std::thread t([] {
    // A nice value of its own, to see that the way back keeps it.
    ASSERT_TRUE(SetCurrentThreadNice(std::min(CurrentThreadNice() + 2, 19)).ok());
    const int nice_before = CurrentThreadNice();
    int during = -1;
    int started_inside = -1;
    int grandchild = -1;
    absl::Status s = RunAtRealtimePriority(3, [&] {
      during = CurrentThreadRealtimePriority();
      std::thread([&] {
        started_inside = CurrentThreadRealtimePriority();
        std::thread([&] { grandchild = CurrentThreadRealtimePriority(); }).join();
      }).join();
    });
    if (s.code() == absl::StatusCode::kPermissionDenied) {
      // Without CAP_SYS_NICE or RLIMIT_RTPRIO: refused, and start never ran.
      EXPECT_EQ(during, -1);
      GTEST_SKIP() << "real-time scheduling not permitted here: " << s.message();
    }
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(during, 3);
    EXPECT_EQ(started_inside, 3);
    EXPECT_EQ(grandchild, 3);
    EXPECT_EQ(CurrentThreadRealtimePriority(), 0);  // back to time-shared
    EXPECT_EQ(CurrentThreadNice(), nice_before);    // with its nice value
    int started_after = -1;
    std::thread([&] { started_after = CurrentThreadRealtimePriority(); }).join();
    EXPECT_EQ(started_after, 0);
  });
  t.join();
  EXPECT_EQ(CurrentThreadRealtimePriority(), 0);
}

}  // namespace
}  // namespace hubmetrics
