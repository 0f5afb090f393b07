// hubmetricsd: the hubmetrics daemon. Starts its components in order — state,
// pipeline, gRPC server, sources — and stops them in reverse on SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/api/grpc_server.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/events/events.h"
#include "lib/ingest/file_source.h"
#include "lib/ingest/pipeline.h"
#include "lib/state/state_store.h"

ABSL_FLAG(std::string, state_dir, "", "Directory of the RocksDB state and the user-hash key (required).");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051", "Address the gRPC API listens on.");
ABSL_FLAG(std::string, events_file, "",
          "Embedded source: an NDJSON file of DownloadEvent, ingested to its end (resuming where "
          "the state says), then the daemon keeps serving.");
ABSL_FLAG(std::string, models_file, "",
          "Embedded source: an NDJSON file of ModelInfo, applied at every start.");
ABSL_FLAG(std::string, user_hash_key_file, "",
          "File with the 128-bit user-hash key as 32 hex digits. Default: <state_dir>/user_hash.key, "
          "created with a random key on first start.");
ABSL_FLAG(int, lateness_days, 3,
          "Events whose UTC day is more than this many days before the watermark's day are rejected "
          "as too_late.");
ABSL_FLAG(absl::Duration, max_future_skew, absl::Hours(1),
          "Events further than this ahead of the wall clock are rejected as future.");
ABSL_FLAG(std::vector<std::string>, live_trailing_weeks, std::vector<std::string>({"1", "4", "13", "52"}),
          "Trailing windows (in weeks) kept live and exact per event; others are computed per query.");
ABSL_FLAG(bool, sync_commits, false,
          "fsync every commit. Off, a process crash loses nothing; a machine crash may lose the last "
          "commits together with their offsets, which are then consumed again.");

namespace hubmetrics {
namespace {

absl::StatusOr<PipelineOptions> OptionsFromFlags() {
  PipelineOptions options;
  options.validator.lateness_days = absl::GetFlag(FLAGS_lateness_days);
  if (options.validator.lateness_days < 0 || options.validator.lateness_days > 365) {
    return absl::InvalidArgumentError("--lateness_days must be between 0 and 365");
  }
  options.validator.max_future_skew = absl::GetFlag(FLAGS_max_future_skew);
  options.aggregates.live_trailing_weeks.clear();
  for (const std::string& w : absl::GetFlag(FLAGS_live_trailing_weeks)) {
    int n = 0;
    if (!absl::SimpleAtoi(w, &n) || n < 1 || n > 1040) {
      return absl::InvalidArgumentError(
          absl::StrCat("--live_trailing_weeks: '", w, "' is not a number of weeks in 1..1040"));
    }
    options.aggregates.live_trailing_weeks.push_back(n);
  }
  return options;
}

absl::StatusOr<UserHasher> HasherFromFlags(const std::string& state_dir) {
  const std::string key_file = absl::GetFlag(FLAGS_user_hash_key_file);
  if (!key_file.empty()) return UserHasher::FromKeyFile(key_file);
  return UserHasher::LoadOrCreateKeyFile(state_dir + "/user_hash.key");
}

std::atomic<int> g_exit_code{0};

// The file sources, on their own thread; a fatal ingest error stops the daemon.
void RunFileSources(Pipeline* pipeline, const std::atomic<bool>* stop) {
  absl::Status s = absl::OkStatus();
  if (const std::string models = absl::GetFlag(FLAGS_models_file); !models.empty()) {
    s = LoadModelsFile(pipeline, models);
  }
  if (const std::string events = absl::GetFlag(FLAGS_events_file); s.ok() && !events.empty()) {
    s = IngestEventsFile(pipeline, events, *stop, FileSourceOptions{});
    if (s.ok() && !stop->load()) {
      pipeline->SetSourceExhausted(true);
      LogInfo("events file %s read to its end; serving", events);
    }
  }
  if (!s.ok()) {
    LogError("ingest failed: %s", s.ToString());
    pipeline->SetSourceCondition(std::string(s.message()));
    g_exit_code = 1;
    kill(getpid(), SIGTERM);
  }
}

int Run() {
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) {
    LogError("--state_dir is required (a directory for the RocksDB state)");
    return 2;
  }
  absl::StatusOr<PipelineOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    LogError("%s", options.status().message());
    return 2;
  }
  // Block the stop signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<StateStore>> store =
      OpenRocksDbStateStore(state_dir, RocksDbStateOptions{.sync_commits = absl::GetFlag(FLAGS_sync_commits)});
  absl::StatusOr<UserHasher> hasher = store.ok() ? HasherFromFlags(state_dir) : store.status();
  if (!hasher.ok()) {
    LogError("cannot start: %s", hasher.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
      Pipeline::Open(*std::move(options), *std::move(store), &SystemClock::Get(), *hasher);
  if (!pipeline.ok()) {
    LogError("cannot load state: %s", pipeline.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start(absl::GetFlag(FLAGS_grpc_listen), pipeline->get());
  if (!server.ok()) {
    LogError("cannot serve: %s", server.status().ToString());
    return 1;
  }
  LogInfo("hubmetricsd serving on %s (state in %s)", absl::GetFlag(FLAGS_grpc_listen), state_dir);

  std::atomic<bool> stop{false};
  std::thread sources(RunFileSources, pipeline->get(), &stop);

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("stopping on signal %d", sig);
  stop = true;
  sources.join();
  (*server)->Shutdown();
  server->reset();
  pipeline->reset();
  LogInfo("stopped");
  return g_exit_code.load();
}

}  // namespace
}  // namespace hubmetrics

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "hubmetricsd --state_dir=DIR [--grpc_listen=127.0.0.1:50051] [--events_file=F "
      "--models_file=M]\nLive, exact concentration of model downloads; see README.md.");
  absl::ParseCommandLine(argc, argv);
  return hubmetrics::Run();
}
