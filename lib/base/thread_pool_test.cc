#include "lib/base/thread_pool.h"

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace hubmetrics {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskBeforeTheDestructorReturns) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) pool.Schedule([&ran] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolTest, ABlockedTaskDoesNotHoldUpTheOtherThreads) {
  ThreadPool pool(2);
  absl::Notification release;
  absl::Notification other_ran;
  pool.Schedule([&release] { release.WaitForNotification(); });
  pool.Schedule([&other_ran] { other_ran.Notify(); });
  EXPECT_TRUE(other_ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  release.Notify();
}

TEST(ThreadPoolTest, TasksQueueWhileEveryThreadIsBusyAndRunOnceOneIsFree) {
  auto pool = std::make_unique<ThreadPool>(1);
  absl::Notification release;
  std::atomic<bool> second_ran{false};
  pool->Schedule([&release] { release.WaitForNotification(); });
  pool->Schedule([&second_ran] { second_ran = true; });
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(second_ran.load());
  EXPECT_EQ(pool->pending(), 1u);
  release.Notify();
  pool.reset();
  EXPECT_TRUE(second_ran.load());
}

TEST(ThreadPoolTest, TasksRunOnThePoolsThreadsAndMaySchedule) {
  absl::Mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 100; ++i) {
      pool.Schedule([&, i] {
        {
          absl::MutexLock lock(&mu);
          ids.insert(std::this_thread::get_id());
        }
        if (i % 10 == 0) pool.Schedule([&ran] { ran.fetch_add(1); });
        ran.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(ran.load(), 110);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
  EXPECT_LE(ids.size(), 2u);
}

TEST(ThreadPoolTest, AtLeastOneThread) {
  absl::Notification ran;
  ThreadPool pool(0);
  pool.Schedule([&ran] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace hubmetrics
