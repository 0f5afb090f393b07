#include "lib/base/kill_point.h"

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/log.h"

namespace hubmetrics {
namespace {

constexpr KillPointName kNames[] = {
    {"ingest.decoded",
     "a batch of events is decoded, validated and hashed; its rejects are handed to the "
     "dead-letter sink; nothing of it is applied"},
    {"apply.deduped", "a batch is deduplicated in memory; no count of it is staged"},
    {"apply.aggregating",
     "a slice of a batch's live-distribution updates is applied; the rest are not"},
    {"apply.dlq_flushed",
     "a batch's dead letters are acknowledged by the sink; the batch is not committed"},
    {"commit.before", "a commit (events batch or catalog change) is built, not yet written"},
    {"commit.after", "a commit is written to the state store"},
    {"dedup.before_produce",
     "the dedup role began a transaction for a batch; nothing of it is produced"},
    {"dedup.before_commit",
     "the dedup role's batch (counts, progress, dead letters) is on the broker and its offsets "
     "are sent to the transaction; the transaction is not committed"},
    {"dedup.after_commit", "the dedup role committed a batch's transaction"},
    {"catalog.recredit",
     "a changed catalog record's past counts are taken out of the aggregates, not yet "
     "credited anew"},
};

// The armed point: its name (empty: none) and the passes left before the kill.
std::string g_armed_name;
std::atomic<bool> g_armed{false};
int64_t g_armed_pass = 0;
std::atomic<int64_t> g_passes_left{0};

std::string NameList() {
  return absl::StrJoin(kNames, ", ",
                       [](std::string* out, const KillPointName& n) { out->append(n.name); });
}

}  // namespace

std::span<const KillPointName> KillPointNames() { return kNames; }

absl::Status ArmKillPoint(std::string_view spec_view) {
  // The Debian abseil's string_view is its own type, not std::string_view.
  const absl::string_view spec(spec_view.data(), spec_view.size());
  absl::string_view name = spec;
  int64_t pass = 1;
  if (const size_t colon = spec.find(':'); colon != absl::string_view::npos) {
    name = spec.substr(0, colon);
    if (!absl::SimpleAtoi(spec.substr(colon + 1), &pass) || pass < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("kill point '", spec, "': the pass after ':' must be a whole number >= 1"));
    }
  }
  bool known = false;
  for (const KillPointName& n : kNames) {
    known = known || absl::string_view(n.name.data(), n.name.size()) == name;
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown kill point '", name, "'; the points are: ", NameList()));
  }
  g_armed_name = std::string(name);
  g_armed_pass = pass;
  g_passes_left.store(pass, std::memory_order_relaxed);
  g_armed.store(true, std::memory_order_release);
  return absl::OkStatus();
}

void KillPoint(std::string_view name) {
  if (!g_armed.load(std::memory_order_relaxed)) return;
  if (!g_armed.load(std::memory_order_acquire) || name != g_armed_name) return;
  if (g_passes_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  LogError("kill point %s reached (pass %d): SIGKILL", name, g_armed_pass);
  raise(SIGKILL);
}

}  // namespace hubmetrics
