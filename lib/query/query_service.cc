#include "lib/query/query_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"
#include "lib/query/explain_change.h"

namespace hubmetrics {
namespace {

void FillConcentration(const View& view, const Window& window,
                       const std::optional<IsoWeek>& watermark_week,
                       const ConcentrationValues& values, v1::Concentration* out) {
  *out->mutable_view() = view.ToProto();
  out->set_window(window.Label());
  if (auto range = window.Range(watermark_week)) {
    out->set_first_week(range->first.Label());
    out->set_last_week(range->second.Label());
  }
  out->set_total_downloads(values.total);
  out->set_entities(values.entities);
  out->set_hhi(values.hhi);
  out->set_gini(values.gini);
  for (const auto& [k, share] : values.top_shares) {
    auto* ts = out->add_top_shares();
    ts->set_k(k);
    ts->set_share(share);
  }
}

void FillWatermark(const Pipeline::ReadState& state, google::protobuf::Timestamp* out) {
  if (state.watermark) ToTimestamp(*state.watermark, out);
}

// A concentration answer read inside Pipeline::Read: its window resolved
// against the state's watermark week, and that watermark.
void FillAnswer(const Pipeline::ReadState& state, const View& view, const Window& window,
                const ConcentrationValues& values, v1::Concentration* out) {
  FillConcentration(view, window, state.aggregates.watermark_week(), values, out);
  FillWatermark(state, out->mutable_watermark());
}

double Share(uint64_t part, uint64_t whole) {
  return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

void FillGroup(const ChangeGroup& g, uint64_t from_total, uint64_t to_total, v1::MoverGroup* out) {
  out->set_entities(g.entities);
  out->set_from_downloads(g.from_downloads);
  out->set_from_share(Share(g.from_downloads, from_total));
  out->set_to_downloads(g.to_downloads);
  out->set_to_share(Share(g.to_downloads, to_total));
  out->set_contribution(g.contribution);
}

// Top movers: 1..kMaxMovers, default kDefaultMovers.
constexpr uint32_t kDefaultMovers = 10;
constexpr uint32_t kMaxMovers = 1000;

}  // namespace

QueryService::QueryService(const Pipeline* pipeline) : pipeline_(pipeline) {
  // The engine's tables live as long as the pipeline; their addresses do not move.
  pipeline_->Read([this](const Pipeline::ReadState& s) {
    on_demand_ = std::make_unique<OnDemandViews>(&s.aggregates, &s.catalog, &s.registry);
  });
}

ConcentrationValues QueryService::Measures(const Pipeline::ReadState& state, const View& view,
                                           const Window& window,
                                           const std::vector<uint32_t>& ks) const {
  if (std::optional<ConcentrationValues> live = state.aggregates.Concentration(view, window, ks)) {
    return *std::move(live);
  }
  return on_demand_->Measures(view, window, ks);
}

std::optional<ConcentrationValues> QueryService::MeasuresAtOnce(
    const Pipeline::ReadState& state, const View& view, const Window& window,
    const std::vector<uint32_t>& ks) const {
  if (std::optional<ConcentrationValues> live = state.aggregates.Concentration(view, window, ks)) {
    return live;
  }
  return on_demand_->CachedMeasures(view, window, ks);
}

namespace {

// GetConcentration's answer from `snapshot`, or nullopt when the view or
// window is not live or `ks` are not the default ones.
std::optional<v1::Concentration> FromLiveSnapshot(const Pipeline::LiveSnapshot& snapshot,
                                                  const View& view, const Window& window,
                                                  const std::vector<uint32_t>& ks) {
  if (ks != DefaultTopK() || !view.Liveable()) return std::nullopt;
  const LiveWindowValues* live = snapshot.Find(window);
  if (live == nullptr || !live->by_view[view.LiveIndex()]) return std::nullopt;
  v1::Concentration out;
  FillConcentration(view, window, snapshot.watermark_week, *live->by_view[view.LiveIndex()], &out);
  if (snapshot.watermark) ToTimestamp(*snapshot.watermark, out.mutable_watermark());
  return out;
}

// One ConcentrationRequest, parsed.
struct ParsedConcentration {
  View view;
  Window window;
  std::vector<uint32_t> ks;
};

absl::StatusOr<ParsedConcentration> Parse(const v1::ConcentrationRequest& request) {
  ParsedConcentration out;
  ASSIGN_OR_RETURN(out.view, ParseView(request.view()));
  ASSIGN_OR_RETURN(out.window, ParseWindow(request.window()));
  ASSIGN_OR_RETURN(out.ks, ParseTopK(request.top_k()));
  return out;
}

absl::Status CheckBatchSize(const v1::ConcentrationsRequest& request) {
  if (static_cast<size_t>(request.items_size()) > kMaxConcentrationsPerCall) {
    return absl::InvalidArgumentError(absl::StrCat(
        "too many items: ", request.items_size(), "; a GetConcentrations call takes ", "at most ",
        kMaxConcentrationsPerCall, " (split the list over several calls)"));
  }
  return absl::OkStatus();
}

// Every item of `request` answered that `snapshot` answers (an invalid item:
// its error); the others get an empty answer, their index and parsed request
// appended to `rest`.
ConcentrationAnswers AnswerFromSnapshot(const v1::ConcentrationsRequest& request,
                                        const Pipeline::LiveSnapshot& snapshot,
                                        std::vector<std::pair<size_t, ParsedConcentration>>* rest) {
  ConcentrationAnswers out;
  out.reserve(static_cast<size_t>(request.items_size()));
  for (const v1::ConcentrationRequest& item : request.items()) {
    absl::StatusOr<ParsedConcentration> q = Parse(item);
    if (!q.ok()) {
      out.emplace_back(q.status());
      continue;
    }
    if (std::optional<v1::Concentration> answer =
            FromLiveSnapshot(snapshot, q->view, q->window, q->ks)) {
      out.emplace_back(*std::move(answer));
      continue;
    }
    rest->emplace_back(out.size(), *std::move(q));
    out.emplace_back(v1::Concentration());  // filled by the caller
  }
  return out;
}

}  // namespace

std::optional<absl::StatusOr<v1::Concentration>> QueryService::GetConcentrationNow(
    const v1::ConcentrationRequest& request) const {
  absl::StatusOr<ParsedConcentration> q = Parse(request);
  if (!q.ok()) return q.status();
  if (std::optional<v1::Concentration> live =
          FromLiveSnapshot(*pipeline_->Snapshot(), q->view, q->window, q->ks)) {
    return *std::move(live);
  }
  std::optional<v1::Concentration> out;
  pipeline_->TryRead([&](const Pipeline::ReadState& s) {
    std::optional<ConcentrationValues> values = MeasuresAtOnce(s, q->view, q->window, q->ks);
    if (!values) return;
    FillAnswer(s, q->view, q->window, *values, &out.emplace());
  });
  if (out) return *std::move(out);
  return std::nullopt;
}

absl::StatusOr<v1::Concentration> QueryService::GetConcentration(
    const v1::ConcentrationRequest& request) const {
  ASSIGN_OR_RETURN(ParsedConcentration q, Parse(request));
  if (std::optional<v1::Concentration> live =
          FromLiveSnapshot(*pipeline_->Snapshot(), q.view, q.window, q.ks)) {
    return *std::move(live);
  }
  v1::Concentration out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    FillAnswer(s, q.view, q.window, Measures(s, q.view, q.window, q.ks), &out);
  });
  return out;
}

std::optional<absl::StatusOr<ConcentrationAnswers>> QueryService::GetConcentrationsNow(
    const v1::ConcentrationsRequest& request) const {
  if (absl::Status s = CheckBatchSize(request); !s.ok()) return s;
  // The items the snapshot cannot answer: (index in out, the parsed request).
  std::vector<std::pair<size_t, ParsedConcentration>> rest;
  ConcentrationAnswers out = AnswerFromSnapshot(request, *pipeline_->Snapshot(), &rest);
  if (rest.empty()) return out;
  bool all_at_once = false;
  pipeline_->TryRead([&](const Pipeline::ReadState& s) {
    for (const auto& [i, q] : rest) {
      std::optional<ConcentrationValues> values = MeasuresAtOnce(s, q.view, q.window, q.ks);
      if (!values) return;  // this item needs computing: the whole call waits
      FillAnswer(s, q.view, q.window, *values, &*out[i]);
    }
    all_at_once = true;
  });
  if (!all_at_once) return std::nullopt;
  return out;
}

absl::StatusOr<ConcentrationAnswers> QueryService::GetConcentrations(
    const v1::ConcentrationsRequest& request) const {
  RETURN_IF_ERROR(CheckBatchSize(request));
  // The items the snapshot cannot answer: (index in out, the parsed request).
  std::vector<std::pair<size_t, ParsedConcentration>> rest;
  ConcentrationAnswers out = AnswerFromSnapshot(request, *pipeline_->Snapshot(), &rest);
  if (rest.empty()) return out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    for (const auto& [i, q] : rest) {
      FillAnswer(s, q.view, q.window, Measures(s, q.view, q.window, q.ks), &*out[i]);
    }
  });
  return out;
}

absl::StatusOr<v1::ConcentrationSeries> QueryService::GetConcentrationSeries(
    const v1::ConcentrationSeriesRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  ASSIGN_OR_RETURN(std::vector<uint32_t> ks, ParseTopK(request.top_k()));
  ASSIGN_OR_RETURN(auto weeks, ParseWeekRange(request.from_week(), request.to_week()));
  v1::ConcentrationSeries out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    for (IsoWeek w = weeks.first; w <= weeks.second; w = w.Plus(1)) {
      const Window window = Window::Week(w);
      FillAnswer(s, view, window, Measures(s, view, window, ks), out.add_points());
    }
  });
  return out;
}

absl::StatusOr<v1::ShareSeries> QueryService::GetShareSeries(
    const v1::ShareSeriesRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  ASSIGN_OR_RETURN(auto weeks, ParseWeekRange(request.from_week(), request.to_week()));
  const uint32_t k = request.k() == 0 ? 20 : request.k();
  if (k > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("k ", k, " is out of range: 1..1000"));
  }
  v1::ShareSeries out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    const ShareSeriesValues values = on_demand_->ShareSeries(view, weeks.first, weeks.second, k);
    *out.mutable_view() = view.ToProto();
    out.set_from_week(weeks.first.Label());
    out.set_to_week(weeks.second.Label());
    out.set_total_downloads(values.total);
    out.set_entity_count(values.entities);
    for (const RankedEntity& r : values.top) {
      v1::EntityShare* e = out.add_entities();
      e->set_entity(r.entity);
      e->set_downloads(r.downloads);
      e->set_share(Share(r.downloads, values.total));
      e->set_rank(r.rank);
    }
    for (const ShareSeriesValues::Week& w : values.weeks) {
      v1::ShareWeek* week = out.add_weeks();
      week->set_week(w.week.Label());
      week->set_total_downloads(w.total);
      uint64_t shown = 0;
      for (uint64_t n : w.downloads) {
        week->add_downloads(n);
        week->add_shares(Share(n, w.total));
        shown += n;
      }
      week->set_rest_downloads(w.total - shown);
      week->set_rest_share(Share(w.total - shown, w.total));
    }
    FillWatermark(s, out.mutable_watermark());
  });
  return out;
}

absl::StatusOr<v1::TopEntities> QueryService::GetTopEntities(
    const v1::TopEntitiesRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  ASSIGN_OR_RETURN(Window window, ParseWindow(request.window()));
  const uint32_t k = request.k() == 0 ? 10 : request.k();
  if (k > 10000) {
    return absl::InvalidArgumentError(absl::StrCat("k ", k, " is out of range: 1..10000"));
  }
  v1::TopEntities out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    std::optional<Leaderboard> live = s.aggregates.Top(view, window, k);
    const Leaderboard board = live ? *std::move(live) : on_demand_->Counts(view, window)->Top(k);
    *out.mutable_view() = view.ToProto();
    out.set_window(window.Label());
    out.set_total_downloads(board.total);
    out.set_entities(board.entities);
    for (const RankedEntity& r : board.top) {
      auto* e = out.add_top();
      e->set_entity(r.entity);
      e->set_downloads(r.downloads);
      e->set_share(Share(r.downloads, board.total));
      e->set_rank(r.rank);
    }
    FillWatermark(s, out.mutable_watermark());
  });
  return out;
}

absl::StatusOr<v1::EntityReport> QueryService::GetEntity(const v1::EntityRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  ASSIGN_OR_RETURN(Window window, ParseWindow(request.window()));
  if (request.entity().empty()) {
    return absl::InvalidArgumentError(
        "missing entity: give a model id, developer, country code or attribute value, matching "
        "the level");
  }
  v1::EntityReport out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    std::optional<EntityStanding> live = s.aggregates.Entity(view, window, request.entity());
    const EntityStanding st =
        live ? *std::move(live) : on_demand_->Counts(view, window)->Find(request.entity());
    *out.mutable_view() = view.ToProto();
    out.set_window(window.Label());
    out.set_total_downloads(st.total);
    out.set_entities(st.entities);
    auto* e = out.mutable_entity();
    e->set_entity(st.entity.entity);
    e->set_downloads(st.entity.downloads);
    e->set_share(Share(st.entity.downloads, st.total));
    e->set_rank(st.entity.rank);
    FillWatermark(s, out.mutable_watermark());
  });
  return out;
}

absl::StatusOr<v1::ConcentrationChange> QueryService::ExplainChange(
    const v1::ExplainChangeRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  if (request.from_window().empty() || request.to_window().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("give both from_window and to_window, each one of: ",
                     absl::string_view(WindowWords().data(), WindowWords().size())));
  }
  ASSIGN_OR_RETURN(Window from, ParseWindow(request.from_window()));
  ASSIGN_OR_RETURN(Window to, ParseWindow(request.to_window()));
  ASSIGN_OR_RETURN(std::vector<uint32_t> ks, ParseTopK(request.top_k()));
  const uint32_t k = request.k() == 0 ? kDefaultMovers : request.k();
  if (k > kMaxMovers) {
    return absl::InvalidArgumentError(
        absl::StrCat("k ", k, " is out of range: 1..", kMaxMovers, " (0: ", kDefaultMovers, ")"));
  }
  v1::ConcentrationChange out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    const std::shared_ptr<const RankedCounts> before = on_demand_->Counts(view, from);
    const std::shared_ptr<const RankedCounts> after = on_demand_->Counts(view, to);
    const ChangeExplanation x = hubmetrics::ExplainChange(*before, *after, k);
    *out.mutable_view() = view.ToProto();
    FillAnswer(s, view, from, Measures(s, view, from, ks), out.mutable_before());
    FillAnswer(s, view, to, Measures(s, view, to, ks), out.mutable_after());
    out.set_delta_hhi(x.delta_hhi);
    out.set_delta_gini(out.after().gini() - out.before().gini());
    out.set_delta_total_downloads(static_cast<int64_t>(x.to_total) -
                                  static_cast<int64_t>(x.from_total));
    out.set_delta_entities(static_cast<int64_t>(after->entities.size()) -
                           static_cast<int64_t>(before->entities.size()));
    for (const EntityChange& e : x.top) {
      v1::EntityMove* m = out.add_top_movers();
      m->set_entity(e.entity);
      m->set_from_downloads(e.from_downloads);
      m->set_from_share(Share(e.from_downloads, x.from_total));
      m->set_from_rank(e.from_rank);
      m->set_to_downloads(e.to_downloads);
      m->set_to_share(Share(e.to_downloads, x.to_total));
      m->set_to_rank(e.to_rank);
      m->set_contribution(e.contribution);
      m->set_kind(e.from_downloads == 0 ? "entrant" : (e.to_downloads == 0 ? "exit" : "both"));
    }
    FillGroup(x.entrants, x.from_total, x.to_total, out.mutable_entrants());
    FillGroup(x.exits, x.from_total, x.to_total, out.mutable_exits());
    FillGroup(x.other_entrants, x.from_total, x.to_total, out.mutable_other_entrants());
    FillGroup(x.other_exits, x.from_total, x.to_total, out.mutable_other_exits());
    FillGroup(x.rest, x.from_total, x.to_total, out.mutable_rest());
    FillWatermark(s, out.mutable_watermark());
  });
  return out;
}

}  // namespace hubmetrics
