#include "lib/base/thread_name.h"

#include <pthread.h>

#include <array>

namespace hubmetrics {

namespace {
// Linux's TASK_COMM_LEN, terminator included.
constexpr size_t kMaxName = 16;
}  // namespace

void SetCurrentThreadName(std::string_view name) {
  std::array<char, kMaxName> buf{};
  name.copy(buf.data(), kMaxName - 1);
  pthread_setname_np(pthread_self(), buf.data());
}

std::string CurrentThreadName() {
  std::array<char, kMaxName> buf{};
  if (pthread_getname_np(pthread_self(), buf.data(), buf.size()) != 0) return "";
  return std::string(buf.data());
}

}  // namespace hubmetrics
