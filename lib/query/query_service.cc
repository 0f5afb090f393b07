#include "lib/query/query_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"

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

double Share(uint64_t part, uint64_t whole) {
  return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

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
  return on_demand_->Counts(view, window)->Measures(ks);
}

std::optional<v1::Concentration> QueryService::FromLiveSnapshot(
    const View& view, const Window& window, const std::vector<uint32_t>& ks) const {
  if (ks != DefaultTopK() || !view.Liveable()) return std::nullopt;
  const std::shared_ptr<const Pipeline::LiveSnapshot> snapshot = pipeline_->Snapshot();
  const LiveWindowValues* live = snapshot->Find(window);
  if (live == nullptr || !live->by_view[view.LiveIndex()]) return std::nullopt;
  v1::Concentration out;
  FillConcentration(view, window, snapshot->watermark_week, *live->by_view[view.LiveIndex()], &out);
  if (snapshot->watermark) ToTimestamp(*snapshot->watermark, out.mutable_watermark());
  return out;
}

std::optional<absl::StatusOr<v1::Concentration>> QueryService::GetConcentrationNow(
    const v1::ConcentrationRequest& request) const {
  absl::StatusOr<View> view = ParseView(request.view());
  if (!view.ok()) return view.status();
  absl::StatusOr<Window> window = ParseWindow(request.window());
  if (!window.ok()) return window.status();
  absl::StatusOr<std::vector<uint32_t>> ks = ParseTopK(request.top_k());
  if (!ks.ok()) return ks.status();
  if (std::optional<v1::Concentration> live = FromLiveSnapshot(*view, *window, *ks)) return *live;
  return std::nullopt;
}

absl::StatusOr<v1::Concentration> QueryService::GetConcentration(
    const v1::ConcentrationRequest& request) const {
  ASSIGN_OR_RETURN(View view, ParseView(request.view()));
  ASSIGN_OR_RETURN(Window window, ParseWindow(request.window()));
  ASSIGN_OR_RETURN(std::vector<uint32_t> ks, ParseTopK(request.top_k()));
  if (std::optional<v1::Concentration> live = FromLiveSnapshot(view, window, ks)) return *live;
  v1::Concentration out;
  pipeline_->Read([&](const Pipeline::ReadState& s) {
    FillConcentration(view, window, s.aggregates.watermark_week(), Measures(s, view, window, ks),
                      &out);
    FillWatermark(s, out.mutable_watermark());
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
      v1::Concentration* point = out.add_points();
      FillConcentration(view, window, s.aggregates.watermark_week(), Measures(s, view, window, ks),
                        point);
      FillWatermark(s, point->mutable_watermark());
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

}  // namespace hubmetrics
