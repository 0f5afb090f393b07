// freshness_probe: how long a download takes from produce() to a new value in
// WatchConcentration, under steady background traffic (issue 5: p99 under 1 s
// at 100,000 events/s).
//
//   freshness_probe --brokers=127.0.0.1:9092 --topic=hub.downloads --addr=127.0.0.1:50051
//       [--rate=100000] [--marker_every_ms=50] [--seconds=20] [--pool=2000] [--users=2000000]
//
// 1. The pool: the --pool most downloaded models of view model/all/direct
//    (GetTopEntities, window all). They all have downloads already, so the
//    background traffic adds no entity to that view.
// 2. Background traffic: binary DownloadEvent values with time = now, at --rate
//    events/s (paced every millisecond), null key. Models are drawn Zipf(s=1)
//    over the pool; users uniformly from --users ids, and a --repeat_fraction
//    of the events repeats a recent (model, user) pair, as the Hub's raw feed
//    does (retries, several files of one repo), so there are duplicates.
//    --warmup_seconds of it run before the first marker.
// 3. Markers: every --marker_every_ms one download of a brand-new model id
//    "bench-probe/m-<run>-<k>", all with the same record key so they share one
//    partition and are consumed in order. Each adds exactly one entity to the
//    view model/all/direct window all.
// 4. A WatchConcentration stream on that view: the update that first shows
//    entities >= base + k marks marker k as processed; its freshness is the
//    arrival time of that update minus the time marker k was handed to
//    produce(). The server sends at most one update per 100 ms, which is part
//    of what a watcher sees.
// After --seconds the production stops and the probe waits up to
// --drain_seconds for the last markers. Prints one JSON line on stdout:
//   {"rate_target":..,"rate_achieved":..,"markers":..,"p50_ms":..,"p99_ms":..,
//    "max_ms":..,"lost_markers":..}
// rate_achieved counts background events handed to produce() per second of the
// production phase. Exit status 1 on a setup failure or when no marker arrived.
// --marker_every_ms=0 produces only background traffic (load for other phases).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/kafka/kafka_producer.h"
#include "lib/tls/client_flags.h"
#include "lib/tls/tls.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

ABSL_FLAG(std::string, brokers, "127.0.0.1:9092", "Kafka bootstrap servers.");
ABSL_FLAG(std::string, topic, "hub.downloads", "Events topic hubmetricsd consumes.");
ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "hubmetricsd's gRPC address.");
ABSL_FLAG(double, rate, 100000, "Background events per second.");
ABSL_FLAG(int, marker_every_ms, 50, "Interval between markers; 0: no markers.");
ABSL_FLAG(double, seconds, 20, "Duration of the measured production phase.");
ABSL_FLAG(double, warmup_seconds, 3, "Background traffic before the first marker.");
ABSL_FLAG(double, drain_seconds, 10, "How long to wait for the last markers after production.");
ABSL_FLAG(int, pool, 2000, "Existing models the background traffic draws from (<= 10000).");
ABSL_FLAG(int, users, 2000000, "Distinct background users.");
ABSL_FLAG(double, repeat_fraction, 0.3, "Fraction of background events repeating a recent pair.");
ABSL_FLAG(uint64_t, seed, 7, "Random seed of the background traffic.");
ABSL_FLAG(std::string, run, "", "Run id in the marker model ids; default: the unix time.");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = hubmetrics::v1;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
void OnSignal(int) { g_stop = true; }

v1::View ProbeView() {
  v1::View v;
  v.set_level("model");
  v.set_filter("all");
  v.set_attribution("direct");
  return v;
}

// The probe's producer: no idempotence (latency first), small batches.
std::unique_ptr<hubmetrics::KafkaProducer> NewProducer(const std::string& brokers) {
  hubmetrics::KafkaSettings settings;
  settings.brokers = brokers;
  hubmetrics::KafkaProducerOptions options;
  options.client_id = "hubmetrics-freshness-probe";
  options.idempotence = false;
  options.linger = absl::Milliseconds(5);
  options.batch_messages = 10000;
  options.queue_messages = 1000000;
  options.compression = "lz4";
  // While the local queue is full: until a signal.
  options.max_queue_wait = absl::InfiniteDuration();
  options.stop = &g_stop;
  options.close_timeout = absl::ZeroDuration();  // flushed before the figures
  options.on_delivery_failure = [failures = 0](const absl::Status& s) mutable {
    if (failures++ < 5) {
      std::fprintf(stderr, "freshness_probe: delivery failed: %s\n",
                   std::string(s.message()).c_str());
    }
  };
  auto p = hubmetrics::KafkaProducer::Create(settings, std::move(options));
  if (!p.ok()) {
    std::fprintf(stderr, "freshness_probe: producer: %s\n",
                 std::string(p.status().message()).c_str());
    return nullptr;
  }
  return *std::move(p);
}

// Queues one message (copied; no key when `key` is empty); serves delivery
// reports while the queue is full. False (said on stderr) on an error or a
// signal.
bool Produce(hubmetrics::KafkaProducer& producer, const std::string& topic, const std::string& key,
             const std::string& value) {
  const absl::Status s =
      producer.Produce(topic, hubmetrics::KafkaProducer::kAnyPartition,
                       key.empty() ? std::nullopt : std::optional<std::string_view>(key), value);
  if (s.ok()) return true;
  std::fprintf(stderr, "freshness_probe: produce: %s\n", std::string(s.message()).c_str());
  return false;
}

// Zipf(s=1) ranks over the pool, users uniform, a fraction of repeats.
class Background {
 public:
  Background(std::vector<std::string> pool, int users, double repeat_fraction, uint64_t seed)
      : pool_(std::move(pool)), users_(users), repeat_fraction_(repeat_fraction), rng_(seed) {
    cdf_.resize(pool_.size());
    double sum = 0;
    for (size_t i = 0; i < pool_.size(); ++i) cdf_[i] = (sum += 1.0 / static_cast<double>(i + 1));
    for (double& c : cdf_) c /= sum;
    recent_.resize(4096);
  }

  // The next background value (binary DownloadEvent), time = now.
  const std::string& Next() {
    std::uniform_real_distribution<double> unit(0, 1);
    size_t model;
    uint32_t user;
    if (filled_ > 0 && unit(rng_) < repeat_fraction_) {
      const auto& [m, u] = recent_[rng_() % filled_];
      model = m;
      user = u;
    } else {
      model = static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), unit(rng_)) -
                                  cdf_.begin());
      if (model >= pool_.size()) model = pool_.size() - 1;
      user = static_cast<uint32_t>(rng_() % static_cast<uint64_t>(users_));
      recent_[next_slot_] = {model, user};
      next_slot_ = (next_slot_ + 1) % recent_.size();
      filled_ = std::min(filled_ + 1, recent_.size());
    }
    event_.set_model_id(pool_[model]);
    event_.set_user_id(absl::StrCat("bench-u-", user));
    SetNow(&event_);
    event_.SerializeToString(&value_);
    return value_;
  }

  static void SetNow(v1::DownloadEvent* e) {
    const int64_t ns = absl::ToUnixNanos(absl::Now());
    e->mutable_time()->set_seconds(ns / 1000000000);
    e->mutable_time()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  }

 private:
  std::vector<std::string> pool_;
  std::vector<double> cdf_;
  int users_;
  double repeat_fraction_;
  std::mt19937_64 rng_;
  std::vector<std::pair<size_t, uint32_t>> recent_;
  size_t filled_ = 0;
  size_t next_slot_ = 0;
  v1::DownloadEvent event_;
  std::string value_;
};

double PercentileMs(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (i >= sorted.size()) i = sorted.size() - 1;
  return sorted[i];
}

int Run() {
  const std::string topic = absl::GetFlag(FLAGS_topic);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int marker_every_ms = absl::GetFlag(FLAGS_marker_every_ms);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int pool_size = std::clamp(absl::GetFlag(FLAGS_pool), 1, 10000);
  std::string run = absl::GetFlag(FLAGS_run);
  if (run.empty()) run = absl::StrCat(absl::ToUnixSeconds(absl::Now()));

  const hubmetrics::tls::ClientTlsFiles tls_files = hubmetrics::tls::ClientTlsFilesFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      hubmetrics::tls::ChannelCredentials(tls_files);
  if (!credentials.ok()) {
    std::fprintf(stderr, "freshness_probe: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_addr), *credentials);
  auto stub = v1::MetricsService::NewStub(channel);

  // 1. The pool of existing models.
  std::vector<std::string> pool;
  {
    v1::TopEntitiesRequest request;
    *request.mutable_view() = ProbeView();
    request.set_window("all");
    request.set_k(static_cast<uint32_t>(pool_size));
    v1::TopEntities top;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status s = stub->GetTopEntities(&ctx, request, &top);
    if (!s.ok()) {
      std::fprintf(stderr, "freshness_probe: GetTopEntities: %s\n", s.error_message().c_str());
      return 1;
    }
    for (const auto& e : top.top()) pool.push_back(e.entity());
  }
  if (pool.empty()) {
    std::fprintf(stderr, "freshness_probe: the view model/all/direct has no entity yet\n");
    return 1;
  }
  std::fprintf(stderr, "freshness_probe: pool of %zu existing models, run %s\n", pool.size(),
               run.c_str());

  std::unique_ptr<hubmetrics::KafkaProducer> producer = NewProducer(absl::GetFlag(FLAGS_brokers));
  if (!producer) return 1;
  Background background(pool, std::max(1, absl::GetFlag(FLAGS_users)),
                        absl::GetFlag(FLAGS_repeat_fraction), absl::GetFlag(FLAGS_seed));

  // Marker send times (ns since the steady clock's epoch), written before the
  // marker is produced, read by the watch thread.
  const size_t max_markers =
      marker_every_ms > 0 ? static_cast<size_t>(seconds * 1000 / marker_every_ms) + 2 : 0;
  std::vector<std::atomic<int64_t>> sent_ns(max_markers + 1);
  std::vector<double> freshness_ms(max_markers + 1, -1);
  std::atomic<int64_t> seen{0};  // markers seen by the watch so far
  std::atomic<int64_t> base{-1};
  std::atomic<int64_t> gained{0};  // entities - base in the last update
  std::mutex watch_mu;
  grpc::ClientContext watch_ctx;
  std::thread watcher;
  if (marker_every_ms > 0) {
    watcher = std::thread([&] {
      v1::ConcentrationRequest request;
      *request.mutable_view() = ProbeView();
      request.set_window("all");
      request.add_top_k(1);
      auto reader = stub->WatchConcentration(&watch_ctx, request);
      v1::Concentration update;
      while (reader->Read(&update)) {
        const int64_t now = Clock::now().time_since_epoch().count();
        const auto entities = static_cast<int64_t>(update.entities());
        if (base.load() < 0) {
          base = entities;
          continue;
        }
        gained = entities - base;
        std::lock_guard<std::mutex> lock(watch_mu);
        for (int64_t k = seen + 1; k <= entities - base && k <= static_cast<int64_t>(max_markers);
             ++k) {
          const int64_t sent = sent_ns[static_cast<size_t>(k)].load();
          if (sent > 0)
            freshness_ms[static_cast<size_t>(k)] = static_cast<double>(now - sent) / 1e6;
          seen = k;
        }
      }
      reader->Finish();
    });
  }

  // 2/3. Paced production: background every millisecond, markers on their schedule.
  const std::string marker_key = "bench-probe-marker";
  v1::DownloadEvent marker;
  marker.set_user_id("bench-probe-user");
  std::string marker_value;
  int64_t background_sent = 0;
  int64_t markers_sent = 0;
  bool failed = false;
  auto produce_phase = [&](double phase_seconds, bool markers) {
    const Clock::time_point begin = Clock::now();
    const Clock::time_point end = begin + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(phase_seconds));
    Clock::time_point next_marker = begin;
    int64_t phase_sent = 0;
    while (!g_stop && !failed) {
      const Clock::time_point now = Clock::now();
      if (now >= end) break;
      const double elapsed = std::chrono::duration<double>(now - begin).count();
      const auto due = static_cast<int64_t>(elapsed * rate);
      while (phase_sent < due && !failed) {
        failed = !Produce(*producer, topic, "", background.Next());
        ++phase_sent;
        if ((phase_sent & 1023) == 0) {
          producer->Poll();
          if (Clock::now() >= next_marker && markers) break;  // keep markers on time
        }
      }
      if (markers && Clock::now() >= next_marker &&
          markers_sent < static_cast<int64_t>(max_markers)) {
        const int64_t k = markers_sent + 1;
        marker.set_model_id(absl::StrCat("bench-probe/m-", run, "-", k));
        Background::SetNow(&marker);
        marker.SerializeToString(&marker_value);
        sent_ns[static_cast<size_t>(k)] = Clock::now().time_since_epoch().count();
        failed = !Produce(*producer, topic, marker_key, marker_value);
        markers_sent = k;
        next_marker += std::chrono::milliseconds(marker_every_ms);
      }
      producer->Poll();
      const Clock::time_point wake =
          std::min(now + std::chrono::milliseconds(1), markers ? next_marker : end);
      if (Clock::now() < wake) std::this_thread::sleep_until(wake);
    }
    background_sent += phase_sent;
    return std::chrono::duration<double>(Clock::now() - begin).count();
  };

  if (marker_every_ms > 0) {
    // The first value of the watch fixes base before any marker exists.
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (base.load() < 0 && Clock::now() < deadline && !g_stop) {
      producer->Poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (base.load() < 0) {
      std::fprintf(stderr, "freshness_probe: no first value from WatchConcentration\n");
      watch_ctx.TryCancel();
      watcher.join();
      return 1;
    }
  }
  produce_phase(absl::GetFlag(FLAGS_warmup_seconds), false);
  const int64_t warmup_sent = background_sent;
  const double measured = produce_phase(seconds, marker_every_ms > 0);
  const double rate_achieved = static_cast<double>(background_sent - warmup_sent) / measured;
  // Its outcome is not checked (as ever): failed deliveries count in failed().
  static_cast<void>(producer->Flush(absl::Now() + absl::Seconds(10)));

  int64_t lost = 0;
  std::vector<double> observed;
  if (marker_every_ms > 0) {
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(absl::GetFlag(FLAGS_drain_seconds)));
    while (seen.load() < markers_sent && Clock::now() < deadline && !g_stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    watch_ctx.TryCancel();
    watcher.join();
    for (int64_t k = 1; k <= markers_sent; ++k) {
      const double f = freshness_ms[static_cast<size_t>(k)];
      if (f >= 0) {
        observed.push_back(f);
      } else {
        ++lost;
      }
    }
    if (gained.load() > markers_sent) {
      std::fprintf(stderr,
                   "freshness_probe: the view gained %lld entities for %lld markers: the "
                   "background traffic added entities, figures are doubtful\n",
                   static_cast<long long>(gained.load()), static_cast<long long>(markers_sent));
    }
  }
  std::sort(observed.begin(), observed.end());
  std::printf(
      "{\"rate_target\":%.0f,\"rate_achieved\":%.0f,\"markers\":%lld,\"p50_ms\":%.1f,"
      "\"p99_ms\":%.1f,\"max_ms\":%.1f,\"lost_markers\":%lld}\n",
      rate, rate_achieved, static_cast<long long>(markers_sent), PercentileMs(observed, 0.5),
      PercentileMs(observed, 0.99), observed.empty() ? 0.0 : observed.back(),
      static_cast<long long>(lost));
  std::fflush(stdout);
  if (failed || producer->failed() > 0) return 1;
  return marker_every_ms > 0 && observed.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "freshness_probe --brokers=HOST:PORT --topic=T --addr=HOST:PORT [--rate=100000 "
      "--marker_every_ms=50 --seconds=20]: produce-to-WatchConcentration latency under load.");
  absl::ParseCommandLine(argc, argv);
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return Run();
}
