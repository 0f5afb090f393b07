#include "lib/base/kill_point.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;

TEST(KillPointTest, RefusesUnknownNamesAndBadPasses) {
  absl::Status s = ArmKillPoint("commit.bfore");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("commit.before"));  // the list of names
  EXPECT_EQ(ArmKillPoint("commit.before:0").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ArmKillPoint("commit.before:x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ArmKillPoint("commit.before:-2").code(), absl::StatusCode::kInvalidArgument);
}

TEST(KillPointTest, NamesAreUniqueAndDescribed) {
  std::set<std::string_view> seen;
  for (const KillPointName& n : KillPointNames()) {
    EXPECT_TRUE(seen.insert(n.name).second) << n.name;
    EXPECT_FALSE(n.meaning.empty()) << n.name;
  }
  EXPECT_GE(seen.size(), 7u);
}

// Runs `body` in a child process; returns its wait status.
template <typename F>
int InChild(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(KillPointTest, KillsOnTheArmedPassOnly) {
  // Passes counted per name: other names and the passes before N do nothing.
  for (int armed = 1; armed <= 3; ++armed) {
    int passes_survived = -1;
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const int status = InChild([&] {
      close(pipe_fds[0]);
      if (!ArmKillPoint("apply.deduped:" + std::to_string(armed)).ok()) _exit(3);
      for (unsigned char i = 0; i < 5; ++i) {
        KillPoint("commit.after");
        KillPoint("apply.deduped");
        (void)!write(pipe_fds[1], &i, 1);
      }
    });
    close(pipe_fds[1]);
    unsigned char buf[8];
    const ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    close(pipe_fds[0]);
    passes_survived = static_cast<int>(n < 0 ? 0 : n);
    ASSERT_TRUE(WIFSIGNALED(status)) << "armed pass " << armed;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    EXPECT_EQ(passes_survived, armed - 1) << "armed pass " << armed;
  }
}

TEST(KillPointTest, UnarmedPointsDoNothing) {
  const int status = InChild([] {
    for (const KillPointName& n : KillPointNames()) KillPoint(n.name);
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace hubmetrics
