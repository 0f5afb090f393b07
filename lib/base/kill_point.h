// Kill points: named places of the write path where a crash test makes the
// process die at once, as `kill -9` would, so that a crash lands where the
// test says on any machine, however fast (the way RocksDB's crash test uses
// its kill points).
//
// A process arms at most one point at start, with ArmKillPoint("NAME:N"): the
// N-th time any thread passes NAME, the process logs one line ("kill point
// NAME reached (pass N): SIGKILL") and raises SIGKILL. Unarmed, a point costs
// one relaxed atomic load. Arming is for tests; nothing in production sets it.
//
// The closed list of names is KillPointNames(): arming an unknown name is an
// error, so a typo cannot make a test wait for a crash that never comes.
//
// Thread safety: KillPoint() may be called from any thread at any time;
// ArmKillPoint() once, before the threads that pass points start.
#ifndef HUBMETRICS_LIB_BASE_KILL_POINT_H_
#define HUBMETRICS_LIB_BASE_KILL_POINT_H_

#include <span>
#include <string_view>

#include "absl/status/status.h"

namespace hubmetrics {

// Every name a KillPoint() call of this program uses, each with what has
// happened when it is passed.
struct KillPointName {
  std::string_view name;
  std::string_view meaning;
};
std::span<const KillPointName> KillPointNames();

// `spec` is "NAME" (the first pass) or "NAME:N" (the N-th pass, N >= 1).
// InvalidArgument for an unknown name or a bad count, listing the names.
absl::Status ArmKillPoint(std::string_view spec);

// Passes the point `name` (one of KillPointNames(); a literal).
void KillPoint(std::string_view name);

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_BASE_KILL_POINT_H_
