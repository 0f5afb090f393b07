// Micro benchmarks of the ingest side and of a query, below Kafka:
//  - UniqueDownloadCounter insert and lookup with 10^5 .. 10^7 triples held;
//  - Pipeline::IngestEvents on binary events (decode, validate, hash, dedup,
//    live distributions, one RocksDB commit per batch) into a real RocksDB
//    state in a temporary directory;
//  - Pipeline::GetConcentration for a live window ("all", trailing:4) and for
//    a week that is summed from per-week counts at query time;
//  - the same live query through the gRPC edge (stub -> loopback -> GrpcServer).
// The traffic is Hub-like: Zipf popularity over 20,000 models, 300,000 users,
// a third of the events duplicates of an earlier (model, user, day).
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/grpc_server.h"
#include "lib/dedup/unique_download_counter.h"
#include "lib/ingest/pipeline.h"
#include "lib/query/query_service.h"
#include "lib/state/state_store.h"
#include "lib/time/time.h"
#include "proto/hubmetrics/v1/events.pb.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"

namespace hubmetrics {
namespace {

void BM_DedupInsert(benchmark::State& state) {
  const auto held = static_cast<uint64_t>(state.range(0));
  UniqueDownloadCounter dedup;
  std::mt19937_64 rng(1);
  for (uint64_t i = 0; i < held; ++i) dedup.Insert(static_cast<Day>(i % 4), i % 20000, rng());
  for (auto _ : state) {
    // New triples (random user hashes): the common case of a unique download.
    benchmark::DoNotOptimize(dedup.Insert(3, static_cast<ModelIdx>(rng() % 20000), rng()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DedupInsert)->RangeMultiplier(10)->Range(100000, 10000000);

// The same new triples through InsertBatch, 50,000 per call (a batch of the
// pipeline), so later slots are prefetched while earlier ones are inserted.
void BM_DedupInsertBatch(benchmark::State& state) {
  const auto held = static_cast<uint64_t>(state.range(0));
  UniqueDownloadCounter dedup;
  std::mt19937_64 rng(1);
  for (uint64_t i = 0; i < held; ++i) dedup.Insert(static_cast<Day>(i % 4), i % 20000, rng());
  constexpr size_t kBatch = 50000;
  std::vector<UniqueDownloadCounter::Triple> batch(kBatch);
  std::vector<uint8_t> fresh;
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& t : batch) t = {3, static_cast<ModelIdx>(rng() % 20000), rng()};
    state.ResumeTiming();
    dedup.InsertBatch(batch, &fresh);
    benchmark::DoNotOptimize(fresh.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}
BENCHMARK(BM_DedupInsertBatch)->RangeMultiplier(10)->Range(100000, 10000000);

void BM_DedupLookup(benchmark::State& state) {
  const auto held = static_cast<uint64_t>(state.range(0));
  UniqueDownloadCounter dedup;
  std::mt19937_64 rng(1);
  std::vector<uint64_t> users(held);
  for (uint64_t i = 0; i < held; ++i) {
    users[i] = rng();
    dedup.Insert(static_cast<Day>(i % 4), static_cast<ModelIdx>(i % 20000), users[i]);
  }
  uint64_t i = 0;
  for (auto _ : state) {
    // A duplicate: a triple already held.
    const uint64_t j = (i++ * 2654435761u) % held;
    benchmark::DoNotOptimize(
        dedup.Contains(static_cast<Day>(j % 4), static_cast<ModelIdx>(j % 20000), users[j]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DedupLookup)->RangeMultiplier(10)->Range(100000, 10000000);

// Binary DownloadEvents over `days` days from 2025-03-03, Hub-like.
std::vector<std::string> MakeEvents(size_t n, int days, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::string> out;
  out.reserve(n);
  const int64_t start = 1740960000;  // 2025-03-03T00:00:00Z
  const double span = 86400.0 * days;
  std::vector<std::pair<uint32_t, uint32_t>> recent;
  v1::DownloadEvent e;
  for (size_t i = 0; i < n; ++i) {
    uint32_t model, user;
    if (!recent.empty() && unit(rng) < 0.33) {
      std::tie(model, user) = recent[rng() % recent.size()];
    } else {
      model = static_cast<uint32_t>(std::pow(20000.0, unit(rng)));
      user = static_cast<uint32_t>(rng() % 300000);
      if (recent.size() < 4096) {
        recent.emplace_back(model, user);
      } else {
        recent[rng() % recent.size()] = {model, user};
      }
    }
    e.set_model_id(absl::StrCat("dev", model % 3000, "/model-", model));
    e.set_user_id(absl::StrCat("user-", user));
    e.mutable_time()->set_seconds(start + static_cast<int64_t>(span * i / n));
    out.push_back(e.SerializeAsString());
  }
  return out;
}

class NullSink final : public DeadLetterSink {
 public:
  void Reject(const SourceRecord&, const Rejection&) override {}
  absl::Status Flush() override { return absl::OkStatus(); }
};

struct Engine {
  std::string dir;
  ManualClock clock{absl::FromUnixSeconds(1740960000 + 86400 * 30)};
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<QueryService> queries;  // reads `pipeline`
  NullSink sink;
  int64_t offset = 0;

  Engine() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hm_bench_XXXXXX").string();
    dir = mkdtemp(tmpl.data());
    auto store = OpenRocksDbStateStore(dir, RocksDbStateOptions{});
    std::array<uint8_t, 16> key{};
    key[0] = 7;
    pipeline = *Pipeline::Open(PipelineOptions{}, std::move(*store), &clock, UserHasher(key));
    queries = std::make_unique<QueryService>(pipeline.get());
  }
  ~Engine() {
    queries.reset();
    pipeline.reset();
    std::filesystem::remove_all(dir);
  }
  void Ingest(const std::vector<std::string>& events, size_t from, size_t to) {
    std::vector<SourceRecord> records;
    records.reserve(to - from);
    for (size_t i = from; i < to; ++i) records.push_back({events[i], "bench", 0, offset + 1});
    offset += static_cast<int64_t>(to - from);
    SourceOffset o{"bench:0", offset};
    if (!pipeline->IngestEvents(records, EventFormat::kBinary, {&o, 1}, &sink).ok()) {
      std::abort();
    }
  }
};

// Events per second through the whole engine, batches of 200,000 (the Kafka
// source's default), crash-safe commits to RocksDB.
void BM_PipelineIngest(benchmark::State& state) {
  const size_t batch = 200000;
  const std::vector<std::string> events = MakeEvents(2000000, 14, 3);
  for (auto _ : state) {
    state.PauseTiming();
    auto engine = std::make_unique<Engine>();
    state.ResumeTiming();
    for (size_t i = 0; i < events.size(); i += batch) {
      engine->Ingest(events, i, std::min(events.size(), i + batch));
    }
    state.PauseTiming();
    engine.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(events.size()));
}
BENCHMARK(BM_PipelineIngest)->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_GetConcentration(benchmark::State& state, const char* level, const char* window) {
  static Engine* engine = [] {
    auto* e = new Engine();
    const std::vector<std::string> events = MakeEvents(2000000, 14, 5);
    for (size_t i = 0; i < events.size(); i += 50000) {
      e->Ingest(events, i, std::min(events.size(), i + 50000));
    }
    return e;
  }();
  v1::ConcentrationRequest req;
  req.mutable_view()->set_level(level);
  req.set_window(window);
  for (auto _ : state) {
    auto c = engine->queries->GetConcentration(req);
    benchmark::DoNotOptimize(c);
  }
}
// The same query through the gRPC edge: a blocking stub call over loopback
// TCP to a GrpcServer in this process, so the figure is the client's and the
// server's cost of one call together (both on this machine's cores).
void BM_GetConcentrationRpc(benchmark::State& state) {
  static Engine* engine = [] {
    auto* e = new Engine();
    const std::vector<std::string> events = MakeEvents(200000, 14, 5);
    e->Ingest(events, 0, events.size());
    return e;
  }();
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start("127.0.0.1:0", engine->queries.get());
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  auto stub = v1::MetricsService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  v1::ConcentrationRequest req;
  req.mutable_view()->set_level("model");
  req.set_window("all");
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1::Concentration out;
    const grpc::Status s = stub->GetConcentration(&ctx, req, &out);
    if (!s.ok()) {
      state.SkipWithError(s.error_message().c_str());
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  (*server)->Shutdown();
}
BENCHMARK(BM_GetConcentrationRpc)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_CAPTURE(BM_GetConcentration, model_all, "model", "all");
BENCHMARK_CAPTURE(BM_GetConcentration, developer_trailing4, "developer", "trailing:4");
BENCHMARK_CAPTURE(BM_GetConcentration, model_week_not_live, "model", "week:2025-W10")
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hubmetrics

BENCHMARK_MAIN();
