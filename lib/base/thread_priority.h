// CPU priority of the calling thread.
//
// hubmetricsd runs its ingest threads at a lower priority than the threads
// that answer queries: on a saturated machine the scheduler then gives a
// waking query thread a core first, and ingest — which batches and catches up
// — takes what is left. Threads started by a thread inherit its priority.
//
// Thread safety: affects only the calling thread (Linux: a per-thread nice).
#ifndef HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_
#define HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_

#include "absl/status/status.h"

namespace hubmetrics {

// Sets the calling thread's nice value to `nice` (-20..19; higher is lower
// priority; 0 is the default). Raising priority (a value below the current
// one) needs CAP_SYS_NICE: PermissionDenied without it. InvalidArgument out
// of range.
absl::Status SetCurrentThreadNice(int nice);
// The calling thread's nice value.
int CurrentThreadNice();

// SetCurrentThreadNice(nice) for an ingest thread: a failure is logged (the
// service works the same, only without the priority) rather than returned.
void LowerIngestPriority(int nice);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_
