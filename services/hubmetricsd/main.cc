// hubmetricsd: the hubmetrics daemon. Starts its components in order — state,
// pipeline, gRPC server, sources — and stops them in reverse on SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
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
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/api/grpc_server.h"
#include "lib/base/kill_point.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/base/thread_name.h"
#include "lib/base/thread_priority.h"
#include "lib/events/events.h"
#include "lib/ingest/file_source.h"
#include "lib/ingest/pipeline.h"
#include "lib/kafka/kafka_dedup.h"
#include "lib/kafka/kafka_ingest.h"
#include "lib/query/query_service.h"
#include "lib/state/state_store.h"
#include "lib/tls/tls.h"
#include "lib/views/views.h"

#ifdef HUBMETRICS_JEMALLOC
// jemalloc reads its options from this symbol at start (MALLOC_CONF in the
// environment adds to them). Allocations from 8 MiB up (a batch's records:
// 200,000 x 64 bytes) otherwise go to an arena that returns their pages to the
// OS on free, so every batch faulted its buffers in again: a few percent of
// ingest CPU, for ~100-200 MB more peak RSS.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "oversize_threshold:0";
}
#endif

ABSL_FLAG(std::string, state_dir, "",
          "Directory of the RocksDB state and the user-hash key (required).");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051", "Address the gRPC API listens on.");
ABSL_FLAG(std::string, events_file, "",
          "Embedded source: an NDJSON file of DownloadEvent, ingested to its end (resuming where "
          "the state says), then the daemon keeps serving.");
ABSL_FLAG(int64_t, events_file_batch_lines, 262144,
          "--events_file lines per batch at most (decoded, counted and committed to the state "
          "together; at most 32 MiB of lines; the first and last batches of a file are smaller). "
          "Larger: fewer commits and more downloads merged per update while replaying; smaller: "
          "fresher answers during a replay, less work lost to a crash, less memory (a batch's "
          "lines and decoded events are held at once: replaying 1,000,000 events, the daemon "
          "peaked at 220 MB with the default, 130 MB with 65536, 100 MB with 8192).");
ABSL_FLAG(std::string, models_file, "",
          "Embedded source: an NDJSON file of ModelInfo, applied at every start.");
ABSL_FLAG(
    std::string, user_hash_key_file, "",
    "File with the 128-bit user-hash key as 32 hex digits. Default: <state_dir>/user_hash.key, "
    "created with a random key on first start.");
ABSL_FLAG(
    int, lateness_days, 3,
    "Events whose UTC day is more than this many days before the watermark's day are rejected "
    "as too_late.");
ABSL_FLAG(absl::Duration, max_future_skew, absl::Hours(1),
          "Events further than this ahead of the wall clock are rejected as future.");
ABSL_FLAG(int64_t, max_event_bytes, 64 * 1024,
          "Longest event record in bytes (an --events_file line without its newline, or a Kafka "
          "value); longer ones are rejected as too_large (counted, logged without their content, "
          "sent to the DLQ) before they are decoded, and the file source skips such a line "
          "without holding it. Default 65536: a real DownloadEvent is a few hundred bytes, so "
          "this leaves room for fields a newer producer adds, bounds what one record costs, and "
          "keeps a rejected record under Kafka's default 1 MB message size so it reaches the DLQ "
          "whole. 1..67108864.");
ABSL_FLAG(int, max_watch_streams, 256,
          "WatchConcentration streams open at once, at most; one more is refused with "
          "RESOURCE_EXHAUSTED and counted (hubctl stats). Each open stream holds a gRPC thread "
          "and polls the state every 100 ms. At least 1.");
ABSL_FLAG(int, max_queued_calls, 1024,
          "Unary calls waiting for one of the API's 4 query threads, at most (GetConcentration "
          "answered from the live snapshot does not wait); one more is refused with "
          "RESOURCE_EXHAUSTED and counted (hubctl stats), so a burst cannot grow the queue and "
          "its memory without bound. At least 1.");
ABSL_FLAG(
    std::vector<std::string>, live_trailing_weeks, std::vector<std::string>({"1", "4", "13", "52"}),
    "Trailing windows (in weeks) kept live and exact per event; others are computed per query.");
// Every view that can be kept live, as ParseViewKey reads it.
static std::vector<std::string> AllLiveViewKeys() {
  std::vector<std::string> out;
  for (const hubmetrics::View& v : hubmetrics::AllLiveableViews()) out.push_back(v.Key());
  return out;
}
ABSL_FLAG(std::vector<std::string>, live_views, AllLiveViewKeys(),
          "Views kept live (updated per event in every live window), as "
          "LEVEL/FILTER/ATTRIBUTION[/SAMPLE]; levels model, developer and country at sample all "
          "only (the default: all of them). "
          "Every other view x window is computed on request from the per-model counts, exactly, "
          "and cached until the next batch. Fewer live views: less ingest work and memory, "
          "slower first answers for the others. Empty: none.");
ABSL_FLAG(std::string, kafka_brokers, "",
          "Kafka bootstrap servers (host:port,...). When set, events and the catalog come from "
          "Kafka instead of --events_file/--models_file.");
ABSL_FLAG(std::string, events_topic, "hub.downloads", "Kafka topic of DownloadEvent values.");
ABSL_FLAG(std::string, models_topic, "hub.models",
          "Compacted Kafka topic of ModelInfo values keyed by model id (null value: tombstone).");
ABSL_FLAG(std::string, dlq_topic, "hub.downloads.dlq",
          "Kafka topic receiving every rejected event with headers reason, source_topic, "
          "source_partition, source_offset.");
ABSL_FLAG(std::string, group_id, "hubmetrics",
          "Kafka consumer group of the events topic (roles all and dedup; all dedup instances "
          "share one group).");
ABSL_FLAG(std::string, role, "all",
          "all: one process reads events, deduplicates, aggregates and serves (state on this "
          "disk, no extra topic). dedup: one of N instances of --group_id over the events topic; "
          "publishes unique counts to --unique_topic in Kafka transactions with the consumed "
          "offsets; no API, no --state_dir (its dedup state is rebuilt from the events topic). "
          "metrics: a replica that reads --unique_topic (and the models topic), keeps aggregates "
          "in --state_dir and serves the API. See README.md, Scaling out.");
ABSL_FLAG(std::string, unique_topic, "hubmetrics.unique",
          "Roles dedup and metrics: the compacted topic of unique counts (created compacted by a "
          "dedup instance when missing).");
ABSL_FLAG(int32_t, unique_topic_partitions, 6,
          "Role dedup: partitions of --unique_topic when it is created.");
ABSL_FLAG(std::string, transactional_id, "",
          "Role dedup: this instance's Kafka transactional id, unique per instance and stable "
          "across its restarts (a restart fences the previous incarnation). Empty (default): "
          "hubmetrics-dedup-<hostname> (a StatefulSet's pod name).");
ABSL_FLAG(std::string, events_format, "binary",
          "Value format of both Kafka topics: binary (protobuf) or json.");
ABSL_FLAG(int64_t, batch_max_events, 200000,
          "A batch of Kafka events (decoded, counted and committed to the state together) ends "
          "at this many events or after --batch_max_time, whichever comes first. Larger: fewer "
          "commits and more downloads merged per update while catching up; smaller: less "
          "memory and less work lost to a crash.");
ABSL_FLAG(absl::Duration, batch_max_time, absl::Milliseconds(200),
          "The longest a batch of Kafka events waits to be committed: the bound on how stale "
          "answers are when events trickle in.");
ABSL_FLAG(std::string, kafka_config, "",
          "File of librdkafka properties, one key=value a line (security.protocol, sasl.*, "
          "ssl.*).");
ABSL_FLAG(std::string, kafka_property, "",
          "A librdkafka property key=value; repeat the flag for several (applied after "
          "--kafka_config).");
ABSL_FLAG(int, ingest_nice, 5,
          "How many nice steps (0..19) below the process's own priority the ingest threads "
          "(consume, decode, apply, commit) and librdkafka's threads (fetch, produce dead "
          "letters) run, capped at nice 19. Above 0, threads answering queries get a core "
          "first when the machine is saturated; ingest, which batches and catches up, gets "
          "what is left. 0: equal shares.");
ABSL_FLAG(int, grpc_realtime_priority, 0,
          "Real-time priority (SCHED_FIFO, 1..99) of gRPC's threads, which read requests, "
          "answer GetConcentration from the live snapshot, run WatchConcentration and write "
          "responses; on a busy machine a query then takes a core at once instead of waiting "
          "up to a scheduler tick behind ingest, the broker or other services (other unary "
          "calls and ingest stay time-shared). Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= the "
          "value: without, the daemon does not start. 0: time-shared like every thread.");
ABSL_FLAG(int64_t, min_free_disk_mb, 512,
          "Free space (MiB) kept on the state's disk: below it, ingest waits (queries are "
          "answered; hubctl stats says disk_full) and resumes by itself once space is freed. "
          "It leaves RocksDB's flushes and compactions room to write; 0: no reserve.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain (leaf first) of the gRPC API. With --tls_key_file the API "
          "serves TLS only, no plaintext port. Empty (default): plaintext.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key (unencrypted) of --tls_cert_file. Empty (default): plaintext.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates; when given (with --tls_cert_file/--tls_key_file), every client "
          "must present a certificate that chains to one of them (mTLS). Empty (default): no "
          "client certificates asked for.");
ABSL_FLAG(
    bool, sync_commits, false,
    "fsync every commit. Off, a process crash loses nothing; a machine crash may lose the last "
    "commits together with their offsets, which are then consumed again.");

ABSL_FLAG(int64_t, state_memtable_mb, 128,
          "Memory for RocksDB's write buffers of all column families together; when full, the "
          "largest is flushed. Lower: less memory, more small flushes and compactions. 0: no "
          "shared bound (each column family up to two 64 MiB buffers).");

ABSL_FLAG(std::string, kill_at, "",
          "For crash tests only: NAME[:N] kills the process with SIGKILL the N-th time (default "
          "1) it passes the named point of the write path (lib/base/kill_point.cc lists them). "
          "Empty: never.");

namespace hubmetrics {
namespace {

absl::StatusOr<PipelineOptions> OptionsFromFlags() {
  PipelineOptions options;
  options.validator.lateness_days = absl::GetFlag(FLAGS_lateness_days);
  if (options.validator.lateness_days < 0 || options.validator.lateness_days > 365) {
    return absl::InvalidArgumentError("--lateness_days must be between 0 and 365");
  }
  options.validator.max_future_skew = absl::GetFlag(FLAGS_max_future_skew);
  if (absl::GetFlag(FLAGS_min_free_disk_mb) < 0) {
    return absl::InvalidArgumentError("--min_free_disk_mb must be 0 or more");
  }
  options.min_free_disk_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_min_free_disk_mb)) << 20;
  const int64_t max_event_bytes = absl::GetFlag(FLAGS_max_event_bytes);
  if (max_event_bytes < 1 || max_event_bytes > (int64_t{64} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_event_bytes must be between 1 and 67108864 (64 MiB), not ", max_event_bytes));
  }
  options.max_event_bytes = static_cast<uint64_t>(max_event_bytes);
  if (const int64_t lines = absl::GetFlag(FLAGS_events_file_batch_lines);
      lines < 1 || lines > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--events_file_batch_lines must be between 1 and 1000000, not ", lines));
  }
  options.aggregates.live_trailing_weeks.clear();
  for (const std::string& w : absl::GetFlag(FLAGS_live_trailing_weeks)) {
    int n = 0;
    if (!absl::SimpleAtoi(w, &n) || n < 1 || n > 1040) {
      return absl::InvalidArgumentError(
          absl::StrCat("--live_trailing_weeks: '", w, "' is not a number of weeks in 1..1040"));
    }
    options.aggregates.live_trailing_weeks.push_back(n);
  }
  options.aggregates.live_views.clear();
  for (const std::string& key : absl::GetFlag(FLAGS_live_views)) {
    if (key.empty()) continue;
    absl::StatusOr<View> view = ParseViewKey(key);
    if (!view.ok())
      return absl::InvalidArgumentError(absl::StrCat("--live_views: ", view.status().message()));
    if (!view->Liveable()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--live_views: '", key,
          "' cannot be kept live: only levels model, developer and country at sample all are; "
          "every other view is computed on request"));
    }
    options.aggregates.live_views.push_back(*view);
  }
  return options;
}

// `state_existed`: the state directory held a state before this start; its
// key is never created afresh then (see Pipeline::Open for a different one).
absl::StatusOr<UserHasher> HasherFromFlags(const std::string& state_dir, bool state_existed) {
  const std::string key_file = absl::GetFlag(FLAGS_user_hash_key_file);
  if (!key_file.empty()) return UserHasher::FromKeyFile(key_file);
  const std::string path = state_dir + "/user_hash.key";
  if (state_existed && access(path.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the state in ", state_dir, " exists but its user-hash key ", path,
        " is missing: restore the key file from a backup (a new key would count every user "
        "again), or start with a new --state_dir"));
  }
  return UserHasher::LoadOrCreateKeyFile(path);
}

std::atomic<int> g_exit_code{0};

// The file sources, on their own thread; a fatal ingest error stops the daemon.
void RunFileSources(Pipeline* pipeline, const std::atomic<bool>* stop) {
  SetCurrentThreadName("hm-files");
  LowerIngestPriority(absl::GetFlag(FLAGS_ingest_nice));
  absl::Status s = absl::OkStatus();
  if (const std::string models = absl::GetFlag(FLAGS_models_file); !models.empty()) {
    s = LoadModelsFile(pipeline, models);
  }
  if (const std::string events = absl::GetFlag(FLAGS_events_file); s.ok() && !events.empty()) {
    // A backfill shows how far it has come: on a terminal one line rewritten
    // every second, else (a log) one line every 5 seconds.
    FileSourceOptions options;
    options.batch_lines = static_cast<size_t>(absl::GetFlag(FLAGS_events_file_batch_lines));
    const bool tty = isatty(STDERR_FILENO) != 0;
    options.clock = &SystemClock::Get();
    options.progress_every = tty ? absl::Seconds(1) : absl::Seconds(5);
    options.on_progress = [tty](const FileProgress& p) {
      if (tty) {
        std::fprintf(stderr, "\r%s%s", FormatFileProgress(p).c_str(), p.done ? "\n" : "");
      } else {
        LogInfo("%s", FormatFileProgress(p));
      }
    };
    s = IngestEventsFile(pipeline, events, *stop, options);
    if (s.ok() && !stop->load()) {
      pipeline->SetSourceExhausted(true);
      LogInfo("events file %s read to its end; serving", events);
    }
  }
  // Cancelled after a stop: a commit that waited for disk space gave up, to be
  // read again after a restart; the stop itself is clean.
  if (!s.ok() && !(stop->load() && s.code() == absl::StatusCode::kCancelled)) {
    LogError("ingest failed: %s", s.ToString());
    pipeline->SetSourceCondition(std::string(s.message()));
    g_exit_code = 1;
    kill(getpid(), SIGTERM);
  }
}

// Every --kafka_property occurrence (absl keeps only the last one).
std::vector<std::string> g_kafka_properties;

void CollectKafkaProperties(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    for (std::string_view prefix : {"--kafka_property=", "-kafka_property="}) {
      if (a.substr(0, prefix.size()) == prefix) {
        g_kafka_properties.emplace_back(a.substr(prefix.size()));
      }
    }
    if ((a == "--kafka_property" || a == "-kafka_property") && i + 1 < argc) {
      g_kafka_properties.emplace_back(argv[i + 1]);
    }
  }
}

absl::StatusOr<KafkaIngestOptions> KafkaOptionsFromFlags() {
  if (!absl::GetFlag(FLAGS_events_file).empty() || !absl::GetFlag(FLAGS_models_file).empty()) {
    return absl::InvalidArgumentError(
        "--kafka_brokers and --events_file/--models_file are exclusive: choose one source");
  }
  KafkaIngestOptions k;
  k.settings.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ASSIGN_OR_RETURN(k.settings.properties,
                   LoadKafkaProperties(absl::GetFlag(FLAGS_kafka_config), g_kafka_properties));
  const std::string format = absl::GetFlag(FLAGS_events_format);
  if (format != "binary" && format != "json") {
    return absl::InvalidArgumentError("--events_format must be binary or json");
  }
  k.events.format = format == "json" ? EventFormat::kJson : EventFormat::kBinary;
  k.catalog.format = k.events.format;
  k.events.topic = absl::GetFlag(FLAGS_events_topic);
  k.events.group_id = absl::GetFlag(FLAGS_group_id);
  if (absl::GetFlag(FLAGS_batch_max_events) < 1 ||
      absl::GetFlag(FLAGS_batch_max_time) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--batch_max_events and --batch_max_time must be positive");
  }
  k.events.max_batch_messages = static_cast<size_t>(absl::GetFlag(FLAGS_batch_max_events));
  k.events.max_batch_time = absl::GetFlag(FLAGS_batch_max_time);
  k.catalog.topic = absl::GetFlag(FLAGS_models_topic);
  k.dlq_topic = absl::GetFlag(FLAGS_dlq_topic);
  k.ingest_nice = absl::GetFlag(FLAGS_ingest_nice);
  k.unique.topic = absl::GetFlag(FLAGS_unique_topic);
  return k;
}

absl::StatusOr<PipelineRole> RoleFromFlags() {
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "all") return PipelineRole::kAll;
  if (role == "metrics") {
    if (absl::GetFlag(FLAGS_kafka_brokers).empty()) {
      return absl::InvalidArgumentError(
          "--role=metrics reads --unique_topic: --kafka_brokers is required");
    }
    return PipelineRole::kMetrics;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--role must be all, dedup or metrics, not '", role, "'"));
}

void StopOnFatal(absl::Status s) {
  LogError("ingest failed: %s", s.ToString());
  g_exit_code = 1;
  kill(getpid(), SIGTERM);
}

// SIGINT and SIGTERM: blocked in every thread (main() blocks them before any
// thread exists, so every thread inherits the mask) and taken by sigwait in
// Run(). A thread started with them unblocked would die of the signal's
// default action instead, killing the process before its clean stop.
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// The transactional id of this dedup instance: the flag, or one derived from
// the host name (a StatefulSet's pod name is stable across restarts).
std::string TransactionalId() {
  if (std::string id = absl::GetFlag(FLAGS_transactional_id); !id.empty()) return id;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "";
  return absl::StrCat("hubmetrics-dedup-", host);
}

// --role=dedup: no state, no API; the Kafka loop until a signal.
int RunDedup(sigset_t* signals) {
  absl::StatusOr<PipelineOptions> options = OptionsFromFlags();
  absl::StatusOr<KafkaIngestOptions> kafka =
      options.ok() ? KafkaOptionsFromFlags() : options.status();
  if (kafka.ok() && kafka->settings.brokers.empty()) {
    kafka = absl::InvalidArgumentError("--role=dedup needs --kafka_brokers");
  }
  if (!kafka.ok()) {
    LogError("%s", kafka.status().message());
    return 2;
  }
  // The key only hashes user ids in memory (nothing is stored here), but
  // instances that share it hash alike: give them one key file.
  const std::string key_file = absl::GetFlag(FLAGS_user_hash_key_file);
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (key_file.empty() && state_dir.empty()) {
    LogError("--role=dedup needs --user_hash_key_file (or a --state_dir to keep one in)");
    return 2;
  }
  absl::StatusOr<UserHasher> hasher =
      !key_file.empty() ? UserHasher::FromKeyFile(key_file)
                        : UserHasher::LoadOrCreateKeyFile(state_dir + "/user_hash.key");
  if (!hasher.ok()) {
    LogError("cannot start: %s", hasher.status().ToString());
    return 1;
  }
  KafkaDedupOptions dedup;
  dedup.settings = kafka->settings;
  dedup.events_topic = kafka->events.topic;
  dedup.unique_topic = absl::GetFlag(FLAGS_unique_topic);
  dedup.dlq_topic = kafka->dlq_topic;
  dedup.group_id = kafka->events.group_id;
  dedup.transactional_id = TransactionalId();
  dedup.unique_topic_partitions = absl::GetFlag(FLAGS_unique_topic_partitions);
  dedup.deduper.validator = options->validator;
  dedup.deduper.format = kafka->events.format;
  dedup.deduper.max_event_bytes = options->max_event_bytes;
  dedup.max_batch_messages = kafka->events.max_batch_messages;
  dedup.max_batch_time = kafka->events.max_batch_time;
  std::atomic<bool> stop{false};
  absl::Status result;
  // The Kafka clients start their threads at the ingest priority (see
  // KafkaIngest::Start).
  std::thread worker([&] {
    SetCurrentThreadName("hm-dedup");
    LowerIngestPriority(kafka->ingest_nice);
    absl::StatusOr<std::unique_ptr<KafkaDedup>> d =
        KafkaDedup::Create(std::move(dedup), &*hasher, &SystemClock::Get());
    result = d.ok() ? (*d)->Run(stop) : d.status();
    if (!result.ok() && !stop.load()) StopOnFatal(result);
  });
  int sig = 0;
  sigwait(signals, &sig);
  LogInfo("stopping on signal %d", sig);
  stop = true;
  worker.join();
  LogInfo("stopped");
  return g_exit_code.load();
}

int Run() {
  if (const std::string kill_at = absl::GetFlag(FLAGS_kill_at); !kill_at.empty()) {
    if (absl::Status s = ArmKillPoint(kill_at); !s.ok()) {
      LogError("--kill_at: %s", s.message());
      return 2;
    }
  }
  sigset_t signals = StopSignals();
  if (absl::GetFlag(FLAGS_role) == "dedup") return RunDedup(&signals);
  absl::StatusOr<PipelineRole> role = RoleFromFlags();
  if (!role.ok()) {
    LogError("%s", role.status().message());
    return 2;
  }
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
  options->role = *role;
  const int realtime_priority = absl::GetFlag(FLAGS_grpc_realtime_priority);
  if (realtime_priority < 0 || realtime_priority > 99) {
    LogError("--grpc_realtime_priority must be 0 (off) or a SCHED_FIFO priority 1..99");
    return 2;
  }
  tls::ServerTlsFiles tls_files;
  tls_files.cert.path = absl::GetFlag(FLAGS_tls_cert_file);
  tls_files.key.path = absl::GetFlag(FLAGS_tls_key_file);
  tls_files.client_ca.path = absl::GetFlag(FLAGS_tls_client_ca_file);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      tls::ServerCredentials(tls_files);
  if (!credentials.ok()) {
    LogError("%s", credentials.status().message());
    return 2;
  }
  const MetricsServiceOptions api_limits{
      .max_watch_streams = absl::GetFlag(FLAGS_max_watch_streams),
      .max_queued_calls = absl::GetFlag(FLAGS_max_queued_calls)};
  if (api_limits.max_watch_streams < 1 || api_limits.max_queued_calls < 1) {
    LogError("--max_watch_streams and --max_queued_calls must be at least 1");
    return 2;
  }
  const bool kafka = !absl::GetFlag(FLAGS_kafka_brokers).empty();
  absl::StatusOr<KafkaIngestOptions> kafka_options =
      kafka ? KafkaOptionsFromFlags() : KafkaIngestOptions{};
  if (!kafka_options.ok()) {
    LogError("%s", kafka_options.status().message());
    return 2;
  }
  kafka_options->role = *role;

  const bool state_existed = StateExists(state_dir);
  absl::StatusOr<std::unique_ptr<StateStore>> store = OpenRocksDbStateStore(
      state_dir,
      RocksDbStateOptions{
          .sync_commits = absl::GetFlag(FLAGS_sync_commits),
          .memtable_budget_bytes =
              static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_state_memtable_mb)))
              << 20});
  absl::StatusOr<UserHasher> hasher =
      store.ok() ? HasherFromFlags(state_dir, state_existed) : store.status();
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
  QueryService queries(pipeline->get());
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start(absl::GetFlag(FLAGS_grpc_listen), &queries,
                        GrpcServerOptions{.realtime_priority = realtime_priority,
                                          .credentials = *std::move(credentials),
                                          .service = api_limits});
  if (!server.ok()) {
    LogError("cannot serve: %s", server.status().ToString());
    return 1;
  }
  LogInfo("hubmetricsd (role %s) serving on %s (%s; state in %s)", absl::GetFlag(FLAGS_role),
          absl::GetFlag(FLAGS_grpc_listen),
          !tls_files.tls()              ? "plaintext"
          : tls_files.client_ca.given() ? "TLS, client certificates required"
                                        : "TLS",
          state_dir);

  std::atomic<bool> stop{false};
  std::thread sources;
  std::unique_ptr<KafkaIngest> kafka_ingest;
  if (kafka) {
    absl::StatusOr<std::unique_ptr<KafkaIngest>> k =
        KafkaIngest::Start(*std::move(kafka_options), pipeline->get(), StopOnFatal);
    if (!k.ok()) {
      LogError("cannot start the Kafka sources: %s", k.status().ToString());
      (*server)->Shutdown();
      return 2;
    }
    kafka_ingest = *std::move(k);
  } else {
    sources = std::thread(RunFileSources, pipeline->get(), &stop);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("stopping on signal %d", sig);
  stop = true;
  (*pipeline)->Stop();  // a commit waiting for disk space gives up: read again after a restart
  if (sources.joinable()) sources.join();
  kafka_ingest.reset();
  (*server)->Shutdown();
  server->reset();
  pipeline->reset();
  LogInfo("stopped");
  return g_exit_code.load();
}

}  // namespace
}  // namespace hubmetrics

int main(int argc, char** argv) {
  const sigset_t stop_signals = hubmetrics::StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  absl::SetProgramUsageMessage(
      "hubmetricsd --state_dir=DIR [--grpc_listen=127.0.0.1:50051] [--events_file=F "
      "--models_file=M | --kafka_brokers=HOST:PORT [--events_format=binary|json] "
      "[--role=all|dedup|metrics]]\nLive, exact "
      "concentration of model downloads; see README.md.");
  hubmetrics::CollectKafkaProperties(argc, argv);
  absl::ParseCommandLine(argc, argv);
  // Debian's absl is built with Mutex deadlock detection on: every lock taken
  // (gRPC takes many per call) updates a global lock-order graph under a global
  // lock. The tests keep it; the binaries do not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return hubmetrics::Run();
}
