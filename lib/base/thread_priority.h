// CPU priority of the calling thread.
//
// hubmetricsd runs its ingest threads at a lower priority than the threads
// that answer queries: on a saturated machine the scheduler then gives a
// waking query thread a core first, and ingest — which batches and catches up
// — takes what is left. Threads started by a thread inherit its priority (the
// nice value and the scheduling policy alike).
//
// A nice value changes shares, not how soon a waking thread runs: Linux's
// fair scheduler lets the running thread finish its slice, and notices the end
// of a slice at the next tick (4 ms at HZ=250). For an answer in well under a
// millisecond on a busy machine, the threads that answer need real-time
// priority (RunAtRealtimePriority).
//
// Thread safety: affects only the calling thread (Linux: a per-thread nice
// and policy).
#ifndef HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_
#define HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace hubmetrics {

// Sets the calling thread's nice value to `nice` (-20..19; higher is lower
// priority; 0 is the default). Raising priority (a value below the current
// one) needs CAP_SYS_NICE: PermissionDenied without it. InvalidArgument out
// of range.
absl::Status SetCurrentThreadNice(int nice);
// The calling thread's nice value.
int CurrentThreadNice();

// Runs `start` on the calling thread at real-time priority `priority`
// (SCHED_FIFO, 1..99), then returns the calling thread to the policy and nice
// value it had. Threads that `start` starts inherit the real-time priority, and
// so do the threads those start: this is how threads that a library starts
// (gRPC's) get it.
//
// A SCHED_FIFO thread runs as soon as it is runnable, ahead of every
// time-shared thread on its core, until it blocks; only the kernel's real-time
// throttling (sched_rt_runtime_us, by default 95% of each second) keeps a
// thread that never blocks from starving the rest. Give it only to threads
// that do little per wake-up.
//
// Errors: InvalidArgument for a priority outside 1..99; PermissionDenied when
// the process may not use real-time scheduling (it needs CAP_SYS_NICE, or an
// RLIMIT_RTPRIO of at least `priority`): `start` does not run then. Internal
// when the calling thread cannot return to its policy (`start` has run).
absl::Status RunAtRealtimePriority(int priority, absl::FunctionRef<void()> start);
// The calling thread's real-time priority; 0 when it is time-shared.
int CurrentThreadRealtimePriority();

// For an ingest thread: raises the calling thread's nice value by `by` (0..19)
// above what it has, capped at 19, so that ingest stays below the threads that
// answer queries whatever nice value the process was started with (under
// `nice -n 19`, an absolute value would have raised ingest above them). A
// failure is logged (the service works the same, only without the priority)
// rather than returned.
void LowerIngestPriority(int by);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_THREAD_PRIORITY_H_
