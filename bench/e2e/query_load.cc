// query_load: open-loop GetConcentration load against hubmetricsd, for the
// end-to-end benchmark (issue 5: p99 under 1 ms at 5,000 requests/s).
//
//   query_load --addr=127.0.0.1:50051 --rps=5000 --seconds=15 [--timeout=5s]
//              [--realtime_priority=N]
//
// Request i is scheduled at start + i / rps, fixed in advance; a sender thread
// issues it at that time (or at once when it is late) on an async stub, and a
// completion thread records its latency measured from the SCHEDULED time, so a
// stall of the server or of the client delays every request behind it and shows
// in the tail (no coordinated omission). Requests rotate over the views
// model/developer/country (filter all, attribution direct) and the windows
// all/trailing:4/trailing:52, with the server's default top_k.
//
// --realtime_priority=N runs every thread of the client at SCHED_FIFO N: on
// the benchmark machine the client shares two cores with the broker, the
// probe and the daemon, and a time-shared client would measure its own wait
// for a core (up to a scheduler tick) as server latency. Real clients run on
// other machines. Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= N.
//
// Prints one JSON line on stdout:
//   {"rps_target":..,"rps_achieved":..,"requests":..,"errors":..,"p50_us":..,
//    "p90_us":..,"p99_us":..,"p999_us":..,"max_us":..}
// requests = completed requests (ok or not); errors = those not OK (deadline
// included); percentiles are over all completed requests. rps_achieved =
// requests / (last completion - first scheduled send). Exit status 1 when no
// request succeeded or the server cannot be reached.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/base/thread_priority.h"
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

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = hubmetrics::v1;

struct Call {
  Clock::time_point scheduled;
  grpc::ClientContext context;
  v1::Concentration response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Concentration>> reader;
};

std::vector<v1::ConcentrationRequest> Requests() {
  std::vector<v1::ConcentrationRequest> out;
  for (const char* window : {"all", "trailing:4", "trailing:52"}) {
    for (const hubmetrics::LevelRow& level : hubmetrics::LevelTable()) {
      if (!level.live) continue;  // the mix of live views; others are computed on request
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

double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (i >= sorted.size()) i = sorted.size() - 1;
  return static_cast<double>(sorted[i]);
}

int Run() {
  const double rps = absl::GetFlag(FLAGS_rps);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int num_channels = std::max(1, absl::GetFlag(FLAGS_channels));
  if (rps <= 0 || seconds <= 0) {
    std::fprintf(stderr, "query_load: --rps and --seconds must be > 0\n");
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
  const std::vector<v1::ConcentrationRequest> requests = Requests();
  const auto total = static_cast<int64_t>(rps * seconds);
  const auto period = std::chrono::duration<double>(1.0 / rps);
  const auto timeout = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_timeout));

  grpc::CompletionQueue cq;
  std::vector<int64_t> latencies_us;
  latencies_us.reserve(static_cast<size_t>(total));
  int64_t errors = 0;
  Clock::time_point last_done;
  std::thread receiver([&] {
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      const Clock::time_point now = Clock::now();
      last_done = now;
      latencies_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(now - call->scheduled).count());
      if (!ok || !call->status.ok()) {
        if (errors++ < 5) {
          std::fprintf(stderr, "query_load: request failed: %d %s\n", call->status.error_code(),
                       call->status.error_message().c_str());
        }
      }
    }
  });

  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(10);
  for (int64_t i = 0; i < total; ++i) {
    const Clock::time_point scheduled =
        start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
    if (Clock::now() < scheduled) std::this_thread::sleep_until(scheduled);
    auto call = std::make_unique<Call>();
    call->scheduled = scheduled;
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    call->reader = stubs[static_cast<size_t>(i) % stubs.size()]->PrepareAsyncGetConcentration(
        &call->context, requests[static_cast<size_t>(i) % requests.size()], &cq);
    call->reader->StartCall();
    Call* raw = call.release();
    raw->reader->Finish(&raw->response, &raw->status, raw);
  }
  // Every call has a deadline, so every tag comes back; then the queue drains.
  cq.Shutdown();
  receiver.join();

  std::sort(latencies_us.begin(), latencies_us.end());
  const auto n = static_cast<int64_t>(latencies_us.size());
  const double elapsed = std::max(1e-9, std::chrono::duration<double>(last_done - start).count());
  std::printf(
      "{\"rps_target\":%.0f,\"rps_achieved\":%.1f,\"requests\":%lld,\"errors\":%lld,"
      "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%.0f}\n",
      rps, static_cast<double>(n) / elapsed, static_cast<long long>(n),
      static_cast<long long>(errors), Percentile(latencies_us, 0.50),
      Percentile(latencies_us, 0.90), Percentile(latencies_us, 0.99),
      Percentile(latencies_us, 0.999), n ? static_cast<double>(latencies_us.back()) : 0.0);
  std::fflush(stdout);
  return n > errors ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "query_load --addr=127.0.0.1:50051 --rps=5000 --seconds=15: open-loop GetConcentration "
      "load; prints one JSON line of latency percentiles (from the scheduled send time).");
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
