#include "lib/base/status_macros.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace hubmetrics {
namespace {

absl::Status FailIf(bool fail) { return fail ? absl::NotFoundError("gone") : absl::OkStatus(); }

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail) {
  if (fail) return absl::UnavailableError("later");
  return std::make_unique<int>(7);
}

absl::Status Chain(bool fail_first, bool fail_second, int* reached) {
  RETURN_IF_ERROR(FailIf(fail_first));
  *reached = 1;
  ASSIGN_OR_RETURN(std::unique_ptr<int> v, MakeInt(fail_second));  // move-only value
  *reached = *v;
  return absl::OkStatus();
}

TEST(StatusMacros, ReturnEarlyWithTheOriginalStatus) {
  int reached = 0;
  absl::Status s = Chain(true, false, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "gone");
  EXPECT_EQ(reached, 0);
  s = Chain(false, true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(reached, 1);
  EXPECT_TRUE(Chain(false, false, &reached).ok());
  EXPECT_EQ(reached, 7);
}

}  // namespace
}  // namespace hubmetrics
