#include "lib/base/thread_name.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace hubmetrics {
namespace {

// What the kernel reports for the calling thread, read independently of
// pthread_getname_np.
std::string CommOfThisThread() {
  std::ifstream in("/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

TEST(ThreadName, NamesOnlyTheCallingThread) {
  std::thread t([&] {
    SetCurrentThreadName("hm-test-b");
    EXPECT_EQ(CommOfThisThread(), "hm-test-b");
    EXPECT_EQ(CurrentThreadName(), "hm-test-b");
  });
  t.join();
  const std::string mine = CommOfThisThread();
  EXPECT_NE(mine, "hm-test-b");
  SetCurrentThreadName("hm-test-a");
  EXPECT_EQ(CommOfThisThread(), "hm-test-a");
  SetCurrentThreadName(mine);
}

TEST(ThreadName, LongNamesAreCutAt15Bytes) {
  std::thread t([] {
    SetCurrentThreadName("hm-a-very-long-thread-name");
    EXPECT_EQ(CommOfThisThread(), "hm-a-very-long-");
    EXPECT_EQ(CurrentThreadName(), "hm-a-very-long-");
    SetCurrentThreadName(std::string_view("hm-x\0yz", 7));  // stops at the NUL, as C strings
    EXPECT_EQ(CommOfThisThread(), "hm-x");
  });
  t.join();
}

}  // namespace
}  // namespace hubmetrics
