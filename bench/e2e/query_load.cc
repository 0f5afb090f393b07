// query_load: open-loop GetConcentration (or GetConcentrations) load against
// hubmetricsd, for the end-to-end benchmark (issue 18: GetConcentration p99
// under 1 ms at 1,000 requests/s during live ingest, with non-live windows in
// the mix, the server CPU per call, and the batch RPC's answers per second).
//
//   query_load --addr=127.0.0.1:50051 --rps=5000 --seconds=15 [--timeout=5s]
//              [--realtime_priority=N] [--non_live_windows=auto|W,W,...]
//              [--batch=N] [--server_pid=PID [--server_baseline_seconds=2]]
//
// Request i is scheduled at start + i / rps, fixed in advance; a sender thread
// issues it at that time (or at once when it is late) on an async stub, and a
// completion thread records its latency measured from the SCHEDULED time, so a
// stall of the server or of the client delays every request behind it and shows
// in the tail (no coordinated omission).
//
// The mix: every level lib/views keeps live (LevelTable()'s live rows; filter
// all, attribution direct, the server's default top_k) x the windows all,
// trailing:4, trailing:52 (answered from the live snapshot) and the
// --non_live_windows (computed on request, under the engine's lock, cached
// until the next batch changes counts). "auto" (the default): week:W-1 and
// range:W-4..W-1, W the watermark's week as GetIngestStats reports it at
// start (none before the first event); a list: those window words. Requests
// rotate over the mix.
//
// --batch=N: GetConcentrations calls of N items each (1..1024) at --rps calls
// per second, item j of call i being mix[(i * N + j) % mix size]; latency is
// per call, answers are the items answered (not errors). 0 (the default):
// single GetConcentration calls.
//
// --server_pid=PID (hubmetricsd's): its CPU time (utime + stime of
// /proc/PID/stat) is read over --server_baseline_seconds before the load (the
// background rate: ingest, the broker's client, ...) and from the first
// scheduled send to the last completion; server_cpu_us_per_call is that CPU
// minus the background rate over the same time, per completed call
// (server_cpu_us_per_call_gross without the subtraction). A background that
// changes during the load makes it noisy, not biased.
//
// --realtime_priority=N runs every thread of the client at SCHED_FIFO N: on
// the benchmark machine the client shares two cores with the broker, the
// probe and the daemon, and a time-shared client would measure its own wait
// for a core (up to a scheduler tick) as server latency. Real clients run on
// other machines. Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= N.
//
// Prints one JSON line on stdout:
//   {"rps_target":..,"rps_achieved":..,"requests":..,"errors":..,"p50_us":..,
//    "p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,"batch":..,"answers":..,
//    "item_errors":..,"answers_per_sec":..,"windows":[..],"non_live_windows":[..],
//    "server_pid":..,"server_background_cores":..,"server_cpu_us_per_call":..,
//    "server_cpu_us_per_call_gross":..,"server_cpu_us_per_answer":..}
// requests = completed calls (ok or not); errors = calls not OK (deadline
// included); percentiles are over all completed calls. rps_achieved = calls /
// (last completion - first scheduled send); answers_per_sec = answers over the
// same time (for single calls, answers = OK calls). The server_* figures are
// null without --server_pid. Exit status 1 when no call succeeded or the server
// cannot be reached, 2 on bad flags.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/base/thread_priority.h"
#include "lib/time/time.h"
#include "lib/tls/client_flags.h"
#include "lib/tls/tls.h"
#include "lib/views/views.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "hubmetricsd's gRPC address, HOST:PORT.");
ABSL_FLAG(double, rps, 5000, "Requests per second (open loop).");
ABSL_FLAG(double, seconds, 15, "How long to send.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "Deadline of each request.");
ABSL_FLAG(int, channels, 2, "gRPC channels (connections) the requests are spread over.");
ABSL_FLAG(int, realtime_priority, 0,
          "SCHED_FIFO priority (1..99) of every client thread; 0: time-shared.");
ABSL_FLAG(std::string, non_live_windows, "auto",
          "Windows of the mix answered on request (not live), comma-separated window words; "
          "auto: week:W-1 and range:W-4..W-1 of the watermark's week W; empty: none.");
ABSL_FLAG(int, batch, 0,
          "0: GetConcentration calls; N (1..1024): GetConcentrations calls of N items each, at "
          "--rps calls per second.");
ABSL_FLAG(int, server_pid, 0,
          "hubmetricsd's pid: report its CPU per call (/proc/PID/stat, minus the background "
          "rate); 0: not measured.");
ABSL_FLAG(double, server_baseline_seconds, 2,
          "With --server_pid: how long the server's background CPU rate is measured before the "
          "load.");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = hubmetrics::v1;

// One call in flight: its own context, request and response.
struct CallBase {
  virtual ~CallBase() = default;
  // Items answered (single call: 1 when OK), and items answered with an error.
  virtual int64_t Answers() const = 0;
  virtual int64_t ItemErrors() const = 0;
  Clock::time_point scheduled;
  grpc::ClientContext context;
  grpc::Status status;
};

struct SingleCall final : CallBase {
  int64_t Answers() const override { return status.ok() ? 1 : 0; }
  int64_t ItemErrors() const override { return 0; }
  v1::Concentration response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Concentration>> reader;
};

struct BatchCall final : CallBase {
  int64_t Answers() const override {
    if (!status.ok()) return 0;
    return std::count_if(response.results().begin(), response.results().end(),
                         [](const v1::ConcentrationResult& r) { return r.has_concentration(); });
  }
  int64_t ItemErrors() const override {
    if (!status.ok()) return 0;
    return std::count_if(response.results().begin(), response.results().end(),
                         [](const v1::ConcentrationResult& r) { return !r.has_concentration(); });
  }
  v1::ConcentrationsRequest request;
  v1::ConcentrationsResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ConcentrationsResponse>> reader;
};

// Windows the daemon keeps live (all, trailing:N of --live_trailing_weeks' defaults).
constexpr const char* kLiveWindows[] = {"all", "trailing:4", "trailing:52"};

std::vector<v1::ConcentrationRequest> Requests(const std::vector<std::string>& windows) {
  std::vector<v1::ConcentrationRequest> out;
  for (const std::string& window : windows) {
    for (const hubmetrics::LevelRow& level : hubmetrics::LevelTable()) {
      if (!level.live) continue;  // the levels the daemon can keep live
      v1::ConcentrationRequest r;
      r.mutable_view()->set_level(std::string(level.name));
      r.mutable_view()->set_filter("all");
      r.mutable_view()->set_attribution("direct");
      r.set_window(window);
      out.push_back(r);
    }
  }
  return out;
}

// --non_live_windows resolved: "auto" from the watermark `stub` reports.
std::optional<std::vector<std::string>> NonLiveWindows(v1::MetricsService::Stub* stub) {
  const std::string flag = absl::GetFlag(FLAGS_non_live_windows);
  std::vector<std::string> out;
  if (flag != "auto") {
    for (absl::string_view w : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
      const std::string word(w);
      if (absl::Status s = hubmetrics::ParseWindow(word).status(); !s.ok()) {
        std::fprintf(stderr, "query_load: --non_live_windows: %s\n",
                     std::string(s.message()).c_str());
        return std::nullopt;
      }
      out.push_back(word);
    }
    return out;
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::IngestStats stats;
  if (grpc::Status s = stub->GetIngestStats(&ctx, v1::IngestStatsRequest(), &stats); !s.ok()) {
    std::fprintf(stderr, "query_load: GetIngestStats: %s\n", s.error_message().c_str());
    return std::nullopt;
  }
  if (!stats.has_watermark()) {
    std::fprintf(stderr, "query_load: no watermark yet: the mix has no non-live window\n");
    return out;
  }
  const absl::Time watermark = absl::FromUnixSeconds(stats.watermark().seconds());
  const hubmetrics::IsoWeek week = hubmetrics::IsoWeek::Containing(hubmetrics::DayOf(watermark));
  out.push_back(absl::StrCat("week:", week.Plus(-1).Label()));
  out.push_back(absl::StrCat("range:", week.Plus(-4).Label(), "..", week.Plus(-1).Label()));
  return out;
}

// utime + stime of process `pid` in seconds; nullopt if it cannot be read.
std::optional<double> ProcessCpuSeconds(int pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  const std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces: the
  // fields after its ')' start with field 3 (state); utime, stime are 14, 15.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(paren + 1));
  std::string field;
  long long utime = 0;
  long long stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  if (!in) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (i >= sorted.size()) i = sorted.size() - 1;
  return static_cast<double>(sorted[i]);
}

std::string JsonList(const std::vector<std::string>& words) {
  return absl::StrCat("[",
                      absl::StrJoin(words, ",",
                                    [](std::string* out, const std::string& w) {
                                      absl::StrAppend(out, "\"", w, "\"");
                                    }),
                      "]");
}

// A number, or null.
std::string Num(std::optional<double> v, int decimals) {
  return v ? absl::StrFormat("%.*f", decimals, *v) : "null";
}

int Run() {
  const double rps = absl::GetFlag(FLAGS_rps);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int num_channels = std::max(1, absl::GetFlag(FLAGS_channels));
  const int batch = absl::GetFlag(FLAGS_batch);
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  const double baseline_seconds = absl::GetFlag(FLAGS_server_baseline_seconds);
  if (rps <= 0 || seconds <= 0) {
    std::fprintf(stderr, "query_load: --rps and --seconds must be > 0\n");
    return 2;
  }
  if (batch < 0 || static_cast<size_t>(batch) > hubmetrics::kMaxConcentrationsPerCall) {
    std::fprintf(stderr, "query_load: --batch must be 0..%zu\n",
                 hubmetrics::kMaxConcentrationsPerCall);
    return 2;
  }
  if (server_pid < 0 || baseline_seconds < 0 ||
      (server_pid > 0 && !ProcessCpuSeconds(server_pid))) {
    std::fprintf(stderr, "query_load: --server_pid=%d: cannot read /proc/%d/stat\n", server_pid,
                 server_pid);
    return 2;
  }
  const hubmetrics::tls::ClientTlsFiles tls_files = hubmetrics::tls::ClientTlsFilesFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      hubmetrics::tls::ChannelCredentials(tls_files);
  if (!credentials.ok()) {
    std::fprintf(stderr, "query_load: %s\n", std::string(credentials.status().message()).c_str());
    return 2;
  }
  std::vector<std::unique_ptr<v1::MetricsService::Stub>> stubs;
  for (int c = 0; c < num_channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", c);  // distinct arguments: distinct connections
    auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_addr), *credentials, args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "query_load: cannot connect to %s\n", absl::GetFlag(FLAGS_addr).c_str());
      return 1;
    }
    stubs.push_back(v1::MetricsService::NewStub(channel));
  }
  const std::optional<std::vector<std::string>> non_live = NonLiveWindows(stubs[0].get());
  if (!non_live) return absl::GetFlag(FLAGS_non_live_windows) == "auto" ? 1 : 2;
  std::vector<std::string> windows(std::begin(kLiveWindows), std::end(kLiveWindows));
  windows.insert(windows.end(), non_live->begin(), non_live->end());
  const std::vector<v1::ConcentrationRequest> requests = Requests(windows);
  const auto total = static_cast<int64_t>(rps * seconds);
  const auto period = std::chrono::duration<double>(1.0 / rps);
  const auto timeout = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_timeout));

  // The server's background CPU rate, before any call.
  std::optional<double> background_cores;
  if (server_pid > 0 && baseline_seconds > 0) {
    const Clock::time_point t0 = Clock::now();
    const std::optional<double> cpu0 = ProcessCpuSeconds(server_pid);
    std::this_thread::sleep_for(std::chrono::duration<double>(baseline_seconds));
    const std::optional<double> cpu1 = ProcessCpuSeconds(server_pid);
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    if (cpu0 && cpu1) background_cores = (*cpu1 - *cpu0) / elapsed;
  }

  grpc::CompletionQueue cq;
  std::vector<int64_t> latencies_us;
  latencies_us.reserve(static_cast<size_t>(total));
  int64_t errors = 0;
  int64_t answers = 0;
  int64_t item_errors = 0;
  Clock::time_point last_done;
  std::thread receiver([&] {
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
      std::unique_ptr<CallBase> call(static_cast<CallBase*>(tag));
      const Clock::time_point now = Clock::now();
      last_done = now;
      latencies_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(now - call->scheduled).count());
      if (!ok || !call->status.ok()) {
        if (errors++ < 5) {
          std::fprintf(stderr, "query_load: request failed: %d %s\n", call->status.error_code(),
                       call->status.error_message().c_str());
        }
        continue;
      }
      answers += call->Answers();
      item_errors += call->ItemErrors();
    }
  });

  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(10);
  const std::optional<double> cpu_start =
      server_pid > 0 ? ProcessCpuSeconds(server_pid) : std::nullopt;
  size_t next_item = 0;
  for (int64_t i = 0; i < total; ++i) {
    const Clock::time_point scheduled =
        start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
    if (Clock::now() < scheduled) std::this_thread::sleep_until(scheduled);
    v1::MetricsService::Stub* stub = stubs[static_cast<size_t>(i) % stubs.size()].get();
    if (batch == 0) {
      auto call = std::make_unique<SingleCall>();
      call->scheduled = scheduled;
      call->context.set_deadline(std::chrono::system_clock::now() + timeout);
      call->reader = stub->PrepareAsyncGetConcentration(
          &call->context, requests[static_cast<size_t>(i) % requests.size()], &cq);
      call->reader->StartCall();
      SingleCall* raw = call.release();
      raw->reader->Finish(&raw->response, &raw->status, raw);
      continue;
    }
    auto call = std::make_unique<BatchCall>();
    call->scheduled = scheduled;
    for (int j = 0; j < batch; ++j) {
      *call->request.add_items() = requests[next_item];
      next_item = (next_item + 1) % requests.size();
    }
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    call->reader = stub->PrepareAsyncGetConcentrations(&call->context, call->request, &cq);
    call->reader->StartCall();
    BatchCall* raw = call.release();
    raw->reader->Finish(&raw->response, &raw->status, raw);
  }
  // Every call has a deadline, so every tag comes back; then the queue drains.
  cq.Shutdown();
  receiver.join();
  const std::optional<double> cpu_end =
      server_pid > 0 ? ProcessCpuSeconds(server_pid) : std::nullopt;

  std::sort(latencies_us.begin(), latencies_us.end());
  const auto n = static_cast<int64_t>(latencies_us.size());
  const double elapsed = std::max(1e-9, std::chrono::duration<double>(last_done - start).count());
  std::optional<double> cpu_per_call_gross;
  std::optional<double> cpu_per_call;
  std::optional<double> cpu_per_answer;
  if (cpu_start && cpu_end && n > 0) {
    const double cpu = *cpu_end - *cpu_start;
    const double net = cpu - background_cores.value_or(0) * elapsed;
    cpu_per_call_gross = cpu / static_cast<double>(n) * 1e6;
    if (background_cores) {
      cpu_per_call = net / static_cast<double>(n) * 1e6;
      if (answers > 0) cpu_per_answer = net / static_cast<double>(answers) * 1e6;
    }
  }
  const std::string pid_json = server_pid > 0 ? absl::StrCat(server_pid) : "null";
  std::printf(
      "{\"rps_target\":%.0f,\"rps_achieved\":%.1f,\"requests\":%lld,\"errors\":%lld,"
      "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%.0f,"
      "\"batch\":%d,\"answers\":%lld,\"item_errors\":%lld,\"answers_per_sec\":%.1f,"
      "\"windows\":%s,\"non_live_windows\":%s,\"server_pid\":%s,"
      "\"server_background_cores\":%s,\"server_cpu_us_per_call\":%s,"
      "\"server_cpu_us_per_call_gross\":%s,\"server_cpu_us_per_answer\":%s}\n",
      rps, static_cast<double>(n) / elapsed, static_cast<long long>(n),
      static_cast<long long>(errors), Percentile(latencies_us, 0.50),
      Percentile(latencies_us, 0.90), Percentile(latencies_us, 0.99),
      Percentile(latencies_us, 0.999), n ? static_cast<double>(latencies_us.back()) : 0.0, batch,
      static_cast<long long>(answers), static_cast<long long>(item_errors),
      static_cast<double>(answers) / elapsed, JsonList(windows).c_str(),
      JsonList(*non_live).c_str(), pid_json.c_str(), Num(background_cores, 4).c_str(),
      Num(cpu_per_call, 1).c_str(), Num(cpu_per_call_gross, 1).c_str(),
      Num(cpu_per_answer, 2).c_str());
  std::fflush(stdout);
  return n > errors ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "query_load --addr=127.0.0.1:50051 --rps=5000 --seconds=15 [--batch=N] [--server_pid=PID]: "
      "open-loop GetConcentration (GetConcentrations with --batch) load over live and non-live "
      "windows; prints one JSON line of latency percentiles (from the scheduled send time), "
      "answers per second and the server's CPU per call.");
  absl::ParseCommandLine(argc, argv);
  // Debian's absl is built with Mutex deadlock detection on: every lock taken
  // (gRPC takes many per call) updates a global lock-order graph under a global
  // lock. The tests keep it; the binaries do not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int priority = absl::GetFlag(FLAGS_realtime_priority);
  if (priority == 0) return Run();
  // Run() starts every thread of the client (gRPC's too): they inherit it.
  int code = 1;
  if (absl::Status s = hubmetrics::RunAtRealtimePriority(priority, [&] { code = Run(); });
      !s.ok()) {
    std::fprintf(stderr, "query_load: --realtime_priority: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return code;
}
