// Fuzz target: the query side of the engine (QueryService over a Pipeline, as
// lib/query serves it), as the gRPC API calls it with whatever a client sends.
//
// Once per process a Pipeline over a FakeStateStore ingests a fixed catalog
// (base_model chains, a cycle, developers, countries, creation dates) and a
// fixed set of events spread over 2024 and 2025, with a ManualClock: the same
// state every run. Each input's first byte chooses the request type
// (GetConcentration, GetConcentrationSeries, GetTopEntities, GetEntity) and
// the rest is ParseFromArray'd into that request. Any status is a fine answer;
// a crash, undefined behaviour, a leak or a hang is not, and neither is an
// answer that breaks what metrics.proto says: measures in 0..1, entities <=
// total downloads, one series point per week, leaderboards ordered with
// consistent ranks, GetEntity agreeing with the leaderboard, GetConcentrationNow
// agreeing with GetConcentration, failures InvalidArgument.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/events/events.h"
#include "lib/ingest/pipeline.h"
#include "lib/query/query_service.h"
#include "lib/state/state_store.h"
#include "lib/time/time.h"
#include "lib/views/views.h"
#include "tests/fuzz/fuzz_util.h"

namespace hubmetrics::fuzz {
namespace {

class DiscardingSink final : public DeadLetterSink {
 public:
  void Reject(const SourceRecord&, const Rejection&) override {}
  absl::Status Flush() override { return absl::OkStatus(); }
};

absl::Time At(int y, int mo, int d, int h = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, 0, 0), absl::UTCTimeZone());
}

v1::ModelInfo Model(const std::string& id, const std::string& developer, const std::string& country,
                    std::optional<absl::Time> created, const std::string& base) {
  v1::ModelInfo m;
  m.set_model_id(id);
  m.set_developer(developer);
  m.set_country(country);
  if (created) m.mutable_created_at()->set_seconds(absl::ToUnixSeconds(*created));
  m.set_base_model(base);
  return m;
}

// The fixed state every input is queried against.
Pipeline* BuildPipeline() {
  static ManualClock* const clock = new ManualClock(At(2025, 3, 20));
  std::array<uint8_t, 16> key{};
  key[0] = 7;
  auto opened =
      Pipeline::Open(PipelineOptions{}, std::make_unique<FakeStateStore>(), clock, UserHasher(key));
  FUZZ_CHECK(opened.ok(), opened.status().ToString());
  Pipeline* p = opened->release();

  const std::vector<v1::ModelInfo> catalog = {
      Model("org-a/base", "Org A", "US", At(2024, 6, 1), ""),
      Model("org-a/ft-1", "Org A", "US", At(2025, 1, 5), "org-a/base"),
      Model("org-b/ft-2", "", "FR", At(2023, 1, 1), "org-a/ft-1"),
      Model("org-c/loop-x", "Org C", "", std::nullopt, "org-c/loop-y"),
      Model("org-c/loop-y", "Org C", "CN", At(2025, 3, 1), "org-c/loop-x"),
      Model("gpt2", "openai", "US", At(2019, 2, 14), ""),
  };
  std::vector<CatalogRecord> records;
  for (const v1::ModelInfo& m : catalog) records.push_back(CatalogRecord{m.model_id(), m});
  absl::Status s = p->ApplyCatalog(records, {});
  FUZZ_CHECK(s.ok(), s.ToString());

  const std::vector<std::string> models = {"org-a/base",
                                           "org-a/ft-1",
                                           "org-b/ft-2",
                                           "org-c/loop-x",
                                           "org-c/loop-y",
                                           "gpt2",
                                           "google-bert/bert-base-uncased",
                                           "solo/m"};
  std::vector<std::string> lines;
  // Ascending times, as one partition delivers them: a few in early 2024, then
  // every 9 hours from 2025-02-01 to the clock's day.
  std::vector<absl::Time> times = {At(2024, 1, 3), At(2024, 1, 4), At(2024, 2, 20)};
  for (absl::Time t = At(2025, 2, 1); t < At(2025, 3, 19, 23); t += absl::Hours(9)) {
    times.push_back(t);
  }
  for (size_t i = 0; i < times.size(); ++i) {
    const std::string& model = models[(i * 5 + i / 7) % models.size()];
    lines.push_back(absl::StrCat(R"({"model_id":")", model, R"(","user_id":"u)", i % 11,
                                 R"(","time":")", FormatRfc3339(times[i]), R"("})"));
    if (i % 17 == 0) lines.push_back("{not json");
  }
  std::vector<SourceRecord> batch;
  for (size_t i = 0; i < lines.size(); ++i) {
    batch.push_back(SourceRecord{lines[i], "fuzz", -1, static_cast<int64_t>(i)});
  }
  static DiscardingSink* const sink = new DiscardingSink();
  const SourceOffset offset{"file:fuzz", static_cast<int64_t>(lines.size())};
  s = p->IngestEvents(batch, EventFormat::kJson, {&offset, 1}, sink);
  FUZZ_CHECK(s.ok(), s.ToString());
  const v1::IngestStats stats = p->GetIngestStats();
  FUZZ_CHECK(stats.unique_downloads() > 50 && stats.rejected() > 0, stats.ShortDebugString());
  return p;
}

constexpr double kEps = 1e-9;

bool InUnit(double x) { return x >= -kEps && x <= 1 + kEps; }

void CheckFailure(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty(), s.ToString());
}

void CheckConcentration(const v1::Concentration& c, size_t ks) {
  const std::string shown = c.ShortDebugString();
  FUZZ_CHECK(InUnit(c.hhi()) && InUnit(c.gini()), shown);
  FUZZ_CHECK(c.entities() <= c.total_downloads(), shown);
  FUZZ_CHECK(static_cast<size_t>(c.top_shares_size()) == ks, shown);
  for (const v1::TopShare& t : c.top_shares()) FUZZ_CHECK(InUnit(t.share()), shown);
  FUZZ_CHECK(c.total_downloads() != 0 || c.hhi() == 0, shown);
  FUZZ_CHECK(ParseWindow(c.window()).ok(), shown);
}

void Concentration(const QueryService& p, const v1::ConcentrationRequest& req) {
  const absl::StatusOr<v1::Concentration> c = p.GetConcentration(req);
  const std::optional<absl::StatusOr<v1::Concentration>> now = p.GetConcentrationNow(req);
  if (now.has_value()) {
    FUZZ_CHECK(now->status().code() == c.status().code(),
               absl::StrCat(now->status().ToString(), " vs ", c.status().ToString()));
    if (c.ok()) {
      FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(**now, *c),
                 absl::StrCat((*now)->ShortDebugString(), " vs ", c->ShortDebugString()));
    }
  }
  if (!c.ok()) {
    CheckFailure(c.status());
    FUZZ_CHECK(now.has_value(), "an invalid request must be answered at once");
    return;
  }
  CheckConcentration(*c, req.top_k().empty() ? 3 : static_cast<size_t>(req.top_k_size()));
}

void Series(const QueryService& p, const v1::ConcentrationSeriesRequest& req) {
  const absl::StatusOr<v1::ConcentrationSeries> s = p.GetConcentrationSeries(req);
  if (!s.ok()) {
    CheckFailure(s.status());
    return;
  }
  const absl::StatusOr<IsoWeek> from = IsoWeek::Parse(req.from_week());
  const absl::StatusOr<IsoWeek> to = IsoWeek::Parse(req.to_week());
  FUZZ_CHECK(from.ok() && to.ok(), req.ShortDebugString());
  FUZZ_CHECK(s->points_size() == to->WeeksSince(*from) + 1, req.ShortDebugString());
  IsoWeek week = *from;
  for (const v1::Concentration& c : s->points()) {
    FUZZ_CHECK(c.first_week() == week.Label() && c.last_week() == week.Label(),
               c.ShortDebugString());
    CheckConcentration(c, req.top_k().empty() ? 3 : static_cast<size_t>(req.top_k_size()));
    week = week.Plus(1);
  }
}

void CheckLeaderboard(const v1::TopEntities& t, uint32_t k) {
  const std::string shown = t.ShortDebugString();
  FUZZ_CHECK(
      t.top_size() <= static_cast<int>(k) && static_cast<uint64_t>(t.top_size()) <= t.entities(),
      shown);
  FUZZ_CHECK(t.entities() <= t.total_downloads(), shown);
  uint64_t sum = 0;
  for (int i = 0; i < t.top_size(); ++i) {
    const v1::EntityShare& e = t.top(i);
    FUZZ_CHECK(e.downloads() > 0 && InUnit(e.share()) && !e.entity().empty(), shown);
    sum += e.downloads();
    if (i == 0) {
      FUZZ_CHECK(e.rank() == 1, shown);
      continue;
    }
    const v1::EntityShare& prev = t.top(i - 1);
    FUZZ_CHECK(prev.downloads() > e.downloads() ||
                   (prev.downloads() == e.downloads() && prev.entity() < e.entity()),
               shown);
    FUZZ_CHECK(e.rank() ==
                   (prev.downloads() == e.downloads() ? prev.rank() : static_cast<uint64_t>(i) + 1),
               shown);
  }
  FUZZ_CHECK(sum <= t.total_downloads(), shown);
}

void Top(const QueryService& p, const v1::TopEntitiesRequest& req) {
  const absl::StatusOr<v1::TopEntities> t = p.GetTopEntities(req);
  if (!t.ok()) {
    CheckFailure(t.status());
    return;
  }
  CheckLeaderboard(*t, req.k() == 0 ? 10 : req.k());
}

void Entity(const QueryService& p, const v1::EntityRequest& req) {
  const absl::StatusOr<v1::EntityReport> r = p.GetEntity(req);
  if (!r.ok()) {
    CheckFailure(r.status());
    return;
  }
  const std::string shown = r->ShortDebugString();
  const v1::EntityShare& e = r->entity();
  FUZZ_CHECK(e.downloads() <= r->total_downloads() && InUnit(e.share()), shown);
  FUZZ_CHECK((e.downloads() == 0) == (e.rank() == 0), shown);
  FUZZ_CHECK(e.rank() <= r->entities(), shown);
  // The whole leaderboard of the same view and window says the same.
  v1::TopEntitiesRequest all;
  *all.mutable_view() = req.view();
  all.set_window(req.window());
  all.set_k(10000);
  const absl::StatusOr<v1::TopEntities> board = p.GetTopEntities(all);
  FUZZ_CHECK(board.ok(), board.status().ToString());
  FUZZ_CHECK(board->total_downloads() == r->total_downloads() && board->entities() == r->entities(),
             absl::StrCat(shown, " vs ", board->ShortDebugString()));
  uint64_t listed = 0;
  uint64_t rank = 0;
  for (const v1::EntityShare& b : board->top()) {
    if (b.entity() == req.entity()) {
      listed = b.downloads();
      rank = b.rank();
    }
  }
  FUZZ_CHECK(e.downloads() == listed && e.rank() == rank,
             absl::StrCat(shown, " vs ", board->ShortDebugString()));
}

template <typename Request>
bool Parse(std::string_view bytes, Request* req) {
  return req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

void Query(std::string_view input) {
  static const QueryService* const pipeline = new QueryService(BuildPipeline());
  if (input.empty()) return;
  const std::string_view rest = input.substr(1);
  switch (static_cast<uint8_t>(input[0]) % 4) {
    case 0:
      if (v1::ConcentrationRequest r; Parse(rest, &r)) Concentration(*pipeline, r);
      break;
    case 1:
      if (v1::ConcentrationSeriesRequest r; Parse(rest, &r)) Series(*pipeline, r);
      break;
    case 2:
      if (v1::TopEntitiesRequest r; Parse(rest, &r)) Top(*pipeline, r);
      break;
    case 3:
      if (v1::EntityRequest r; Parse(rest, &r)) Entity(*pipeline, r);
      break;
  }
}

}  // namespace
}  // namespace hubmetrics::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hubmetrics::fuzz::Query(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
