// Micro benchmarks of the per-event hot path of ingest: decoding one event
// (JSON and binary) and hashing one user id. The ingest target is 1M events/s
// on one thread, so each of these must stay well under 1 µs.
#include <array>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

// Realistic lines: a few distinct models and users, so branch predictors and
// caches see some variety.
std::vector<std::string> JsonLines() {
  std::vector<std::string> lines;
  for (int i = 0; i < 64; ++i) {
    lines.push_back(absl::StrCat(R"({"model_id":"org-)", i % 7, "/model-", i,
                                 R"(-base-uncased","user_id":"u-)", 81723 + i * 7919,
                                 R"(","time":"2025-03-04T12:)", 10 + i % 50, R"(:56Z"})"));
  }
  return lines;
}

std::vector<std::string> BinaryEvents() {
  std::vector<std::string> out;
  for (int i = 0; i < 64; ++i) {
    v1::DownloadEvent e;
    e.set_model_id(absl::StrCat("org-", i % 7, "/model-", i, "-base-uncased"));
    e.set_user_id(absl::StrCat("u-", 81723 + i * 7919));
    e.mutable_time()->set_seconds(1741091696 + i);
    out.push_back(e.SerializeAsString());
  }
  return out;
}

void BM_DecodeJsonEvent(benchmark::State& state) {
  const std::vector<std::string> lines = JsonLines();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& line = lines[i++ % lines.size()];
    DecodeResult r = DecodeJsonEvent(line);
    benchmark::DoNotOptimize(r);
    bytes += line.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJsonEvent);

void BM_DecodeJsonEventRejected(benchmark::State& state) {
  const std::string line =
      R"({"model_id":"a--b","user_id":"u-81723","time":"2025-03-04T12:34:56Z"})";
  for (auto _ : state) {
    DecodeResult r = DecodeJsonEvent(line);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJsonEventRejected);

void BM_DecodeBinaryEvent(benchmark::State& state) {
  const std::vector<std::string> events = BinaryEvents();
  size_t i = 0;
  for (auto _ : state) {
    DecodeResult r = DecodeBinaryEvent(events[i++ % events.size()]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeBinaryEvent);

// The zero-copy decoder the ingest loop uses (ids as views into the record).
void BM_DecodeBinaryEventView(benchmark::State& state) {
  const std::vector<std::string> events = BinaryEvents();
  size_t i = 0;
  for (auto _ : state) {
    DecodeViewResult r = DecodeBinaryEventView(events[i++ % events.size()]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeBinaryEventView);

void BM_DecodeJsonEventView(benchmark::State& state) {
  const std::vector<std::string> lines = JsonLines();
  size_t i = 0;
  for (auto _ : state) {
    DecodeViewResult r = DecodeJsonEventView(lines[i++ % lines.size()]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJsonEventView);

void BM_SipHashUserId(benchmark::State& state) {
  std::array<uint8_t, 16> key;
  for (int i = 0; i < 16; ++i) key[i] = static_cast<uint8_t>(i * 17 + 3);
  const UserHasher hasher(key);
  const std::string user_id = "u-8172345678";  // 12 bytes
  for (auto _ : state) {
    benchmark::DoNotOptimize(user_id.data());
    benchmark::DoNotOptimize(hasher.Hash(user_id));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SipHashUserId);

void BM_IsValidModelId(benchmark::State& state) {
  const std::string id = "google-bert/bert-base-uncased";
  for (auto _ : state) {
    benchmark::DoNotOptimize(id.data());
    benchmark::DoNotOptimize(IsValidModelId(id));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IsValidModelId);

}  // namespace
}  // namespace hubmetrics

BENCHMARK_MAIN();
