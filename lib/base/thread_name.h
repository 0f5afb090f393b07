// The calling thread's name, as top -H, ps -L, perf and gdb show it.
//
// hubmetricsd names the threads it starts (hm-ingest, hm-apply, hm-lane,
// hm-query, ...) so that an operator looking at a busy process, or a profile,
// can tell which stage is busy: unnamed, they all show the binary's name.
//
// Thread safety: affects only the calling thread.
#ifndef HUBMETRICS_LIB_BASE_THREAD_NAME_H_
#define HUBMETRICS_LIB_BASE_THREAD_NAME_H_

#include <string>
#include <string_view>

namespace hubmetrics {

// Names the calling thread. Linux keeps the first 15 bytes; a longer name is
// cut there. Best effort: a name the system refuses leaves the old one.
void SetCurrentThreadName(std::string_view name);
// The calling thread's name ("" if the system cannot tell).
std::string CurrentThreadName();

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_THREAD_NAME_H_
