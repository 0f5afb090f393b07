#include "services/hubctl/format.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace hubmetrics::hubctl {
namespace {

enum class Align { kLeft, kRight };

// Display columns of UTF-8 text: code points (→ and Δ are one column, three
// and two bytes).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
class Table {
 public:
  // `names` empty: no header line.
  Table(std::vector<Align> aligns, std::vector<std::string> names = {})
      : aligns_(std::move(aligns)) {
    if (!names.empty()) rows_.push_back(std::move(names));
  }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string Render() const {
    std::vector<size_t> widths(aligns_.size(), 0);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
        widths[i] = std::max(widths[i], Width(row[i]));
      }
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
        if (i > 0) line += "  ";
        const std::string pad(widths[i] - Width(row[i]), ' ');
        line += aligns_[i] == Align::kRight ? pad + row[i] : row[i] + pad;
      }
      line.erase(line.find_last_not_of(' ') + 1);
      absl::StrAppend(&out, line, "\n");
    }
    return out;
  }

 private:
  std::vector<Align> aligns_;
  std::vector<std::vector<std::string>> rows_;
};

std::string ViewName(const v1::View& v) {
  std::string out = absl::StrCat(v.level(), " / ", v.filter(), " / ", v.attribution());
  if (!v.sample().empty() && v.sample() != "all") absl::StrAppend(&out, " / sample ", v.sample());
  return out;
}

std::string WindowName(const std::string& window, const std::string& first,
                       const std::string& last) {
  if (first.empty() || (first == last && window == "week:" + first)) return window;
  if (first == last) return absl::StrCat(window, " (", first, ")");
  return absl::StrCat(window, " (", first, " .. ", last, ")");
}

std::string Watermark(bool has, const google::protobuf::Timestamp& ts) {
  return has ? google::protobuf::util::TimeUtil::ToString(ts) : "none";
}

std::string Hhi(double v) { return absl::StrFormat("%.6f", v); }
std::string Gini(double v) { return absl::StrFormat("%.4f", v); }
std::string TopPct(double share) { return absl::StrFormat("%.2f%%", share * 100); }
std::string EntityPct(double share) { return absl::StrFormat("%.4f%%", share * 100); }

// The header block of view-based answers.
std::string Header(const v1::View& view, const std::string& window, bool has_watermark,
                   const google::protobuf::Timestamp& watermark) {
  Table t({Align::kLeft, Align::kLeft});
  t.Add({"view", ViewName(view)});
  t.Add({"window", window});
  t.Add({"watermark", Watermark(has_watermark, watermark)});
  return t.Render();
}

std::string WeekOf(const v1::Concentration& c) {
  if (!c.first_week().empty()) return c.first_week();
  constexpr absl::string_view kPrefix = "week:";
  if (absl::string_view(c.window()).substr(0, kPrefix.size()) == kPrefix) {
    return c.window().substr(kPrefix.size());
  }
  return c.window();
}

std::string Signed(double v) { return absl::StrFormat("%+.6f", v); }
std::string Arrow(const std::string& a, const std::string& b) { return absl::StrCat(a, " → ", b); }
std::string RankName(uint64_t rank) { return rank == 0 ? "-" : absl::StrCat(rank); }

}  // namespace

absl::StatusOr<std::string> ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ", message.GetTypeName(),
                                            " as JSON: ", std::string(status.message())));
  }
  return out;
}

std::string FormatConcentration(const v1::Concentration& c) {
  std::string out = Header(c.view(), WindowName(c.window(), c.first_week(), c.last_week()),
                           c.has_watermark(), c.watermark());
  Table t({Align::kLeft, Align::kRight});
  t.Add({"total downloads", absl::StrCat(c.total_downloads())});
  t.Add({"entities", absl::StrCat(c.entities())});
  t.Add({"HHI", Hhi(c.hhi())});
  t.Add({"Gini", Gini(c.gini())});
  for (const v1::TopShare& s : c.top_shares()) {
    t.Add({absl::StrCat("top-", s.k(), " share"), TopPct(s.share())});
  }
  return absl::StrCat(out, "\n", t.Render());
}

std::string FormatSeries(const v1::ConcentrationSeries& series) {
  if (series.points().empty()) return "no weeks in the range\n";
  const v1::Concentration& first = series.points(0);
  const v1::Concentration& last = series.points(series.points_size() - 1);
  std::string out = Header(first.view(), absl::StrCat(WeekOf(first), " .. ", WeekOf(last)),
                           last.has_watermark(), last.watermark());
  std::vector<Align> aligns = {Align::kLeft, Align::kRight, Align::kRight, Align::kRight,
                               Align::kRight};
  std::vector<std::string> names = {"week", "total downloads", "entities", "HHI", "Gini"};
  for (const v1::TopShare& s : first.top_shares()) {
    aligns.push_back(Align::kRight);
    names.push_back(absl::StrCat("top-", s.k()));
  }
  Table t(aligns, names);
  for (const v1::Concentration& p : series.points()) {
    std::vector<std::string> row = {WeekOf(p), absl::StrCat(p.total_downloads()),
                                    absl::StrCat(p.entities()), Hhi(p.hhi()), Gini(p.gini())};
    for (const v1::TopShare& s : p.top_shares()) row.push_back(TopPct(s.share()));
    t.Add(std::move(row));
  }
  return absl::StrCat(out, "\n", t.Render());
}

std::string FormatShareSeries(const v1::ShareSeries& series) {
  std::string out =
      Header(series.view(), absl::StrCat(series.from_week(), " .. ", series.to_week()),
             series.has_watermark(), series.watermark());
  Table totals({Align::kLeft, Align::kRight});
  totals.Add({"total downloads", absl::StrCat(series.total_downloads())});
  totals.Add({"entities", absl::StrCat(series.entity_count())});
  absl::StrAppend(&out, "\n", totals.Render(), "\n");
  if (series.entities().empty()) return absl::StrCat(out, "no entity has downloads in the range\n");
  // The entities once, numbered; the weeks' columns refer to them by number.
  Table who({Align::kRight, Align::kRight, Align::kLeft, Align::kRight, Align::kRight},
            {"#", "rank", "entity", "downloads", "share"});
  for (int i = 0; i < series.entities_size(); ++i) {
    const v1::EntityShare& e = series.entities(i);
    who.Add({absl::StrCat("#", i + 1), absl::StrCat(e.rank()), e.entity(),
             absl::StrCat(e.downloads()), EntityPct(e.share())});
  }
  absl::StrAppend(&out, who.Render(), "\n");
  std::vector<Align> aligns = {Align::kLeft, Align::kRight};
  std::vector<std::string> names = {"week", "downloads"};
  for (int i = 0; i < series.entities_size(); ++i) {
    aligns.push_back(Align::kRight);
    names.push_back(absl::StrCat("#", i + 1));
  }
  aligns.push_back(Align::kRight);
  names.push_back("rest");
  Table t(aligns, names);
  for (const v1::ShareWeek& w : series.weeks()) {
    std::vector<std::string> row = {w.week(), absl::StrCat(w.total_downloads())};
    for (double share : w.shares()) row.push_back(TopPct(share));
    row.push_back(TopPct(w.rest_share()));
    t.Add(std::move(row));
  }
  return absl::StrCat(out, t.Render());
}

std::string FormatChange(const v1::ConcentrationChange& change) {
  const v1::Concentration& b = change.before();
  const v1::Concentration& a = change.after();
  Table head({Align::kLeft, Align::kLeft});
  head.Add({"view", ViewName(change.view())});
  head.Add({"from", WindowName(b.window(), b.first_week(), b.last_week())});
  head.Add({"to", WindowName(a.window(), a.first_week(), a.last_week())});
  head.Add({"watermark", Watermark(change.has_watermark(), change.watermark())});
  std::string out = head.Render();

  Table m({Align::kLeft, Align::kRight, Align::kRight, Align::kRight},
          {"", "before", "after", "change"});
  m.Add({"total downloads", absl::StrCat(b.total_downloads()), absl::StrCat(a.total_downloads()),
         absl::StrFormat("%+d", change.delta_total_downloads())});
  m.Add({"entities", absl::StrCat(b.entities()), absl::StrCat(a.entities()),
         absl::StrFormat("%+d", change.delta_entities())});
  m.Add({"HHI", Hhi(b.hhi()), Hhi(a.hhi()), Signed(change.delta_hhi())});
  m.Add({"Gini", Gini(b.gini()), Gini(a.gini()), absl::StrFormat("%+.4f", change.delta_gini())});
  for (int i = 0; i < b.top_shares_size() && i < a.top_shares_size(); ++i) {
    m.Add({absl::StrCat("top-", b.top_shares(i).k(), " share"), TopPct(b.top_shares(i).share()),
           TopPct(a.top_shares(i).share()),
           absl::StrFormat("%+.2f pp", (a.top_shares(i).share() - b.top_shares(i).share()) * 100)});
  }
  absl::StrAppend(&out, "\n", m.Render());

  double movers = 0;
  for (const v1::EntityMove& e : change.top_movers()) movers += e.contribution();
  absl::StrAppend(&out, "\nΔHHI ", Signed(change.delta_hhi()), " = top ", change.top_movers_size(),
                  " movers ", Signed(movers), ", other entrants ",
                  Signed(change.other_entrants().contribution()), ", other exits ",
                  Signed(change.other_exits().contribution()), ", rest ",
                  Signed(change.rest().contribution()), "\n\n");
  Table t({Align::kLeft, Align::kRight, Align::kLeft, Align::kRight, Align::kRight, Align::kRight,
           Align::kRight},
          {"", "", "entity", "downloads", "share", "rank", "contribution"});
  for (int i = 0; i < change.top_movers_size(); ++i) {
    const v1::EntityMove& e = change.top_movers(i);
    std::string note = e.kind() == "both" ? "" : e.kind();
    t.Add({note, absl::StrCat(i + 1), e.entity(),
           Arrow(absl::StrCat(e.from_downloads()), absl::StrCat(e.to_downloads())),
           Arrow(TopPct(e.from_share()), TopPct(e.to_share())),
           Arrow(RankName(e.from_rank()), RankName(e.to_rank())), Signed(e.contribution())});
  }
  auto group = [&](const char* name, const v1::MoverGroup& g) {
    t.Add({"", "", absl::StrCat(name, " (", g.entities(), ")"),
           Arrow(absl::StrCat(g.from_downloads()), absl::StrCat(g.to_downloads())),
           Arrow(TopPct(g.from_share()), TopPct(g.to_share())), "", Signed(g.contribution())});
  };
  group("other entrants", change.other_entrants());
  group("other exits", change.other_exits());
  group("rest", change.rest());
  t.Add({"", "", "ΔHHI", "", "", "", Signed(change.delta_hhi())});
  absl::StrAppend(&out, t.Render());
  absl::StrAppend(&out, "\nall entrants: ", change.entrants().entities(), " entities, ",
                  TopPct(change.entrants().to_share()), " of after, contribution ",
                  Signed(change.entrants().contribution()),
                  "\nall exits:    ", change.exits().entities(), " entities, ",
                  TopPct(change.exits().from_share()), " of before, contribution ",
                  Signed(change.exits().contribution()), "\n");
  return out;
}

std::string FormatTopEntities(const v1::TopEntities& top) {
  std::string out = Header(top.view(), top.window(), top.has_watermark(), top.watermark());
  Table totals({Align::kLeft, Align::kRight});
  totals.Add({"total downloads", absl::StrCat(top.total_downloads())});
  totals.Add({"entities", absl::StrCat(top.entities())});
  absl::StrAppend(&out, "\n", totals.Render(), "\n");
  if (top.top().empty()) return absl::StrCat(out, "no entity has downloads in this window\n");
  Table t({Align::kRight, Align::kLeft, Align::kRight, Align::kRight},
          {"rank", "entity", "downloads", "share"});
  for (const v1::EntityShare& e : top.top()) {
    t.Add({absl::StrCat(e.rank()), e.entity(), absl::StrCat(e.downloads()), EntityPct(e.share())});
  }
  return absl::StrCat(out, t.Render());
}

std::string FormatEntity(const v1::EntityReport& report) {
  std::string out =
      Header(report.view(), report.window(), report.has_watermark(), report.watermark());
  const v1::EntityShare& e = report.entity();
  Table t({Align::kLeft, Align::kLeft});
  t.Add({"entity", e.entity()});
  t.Add({"rank", e.rank() == 0 ? "- (no credited download in this window)"
                               : absl::StrCat(e.rank(), " of ", report.entities())});
  t.Add({"downloads", absl::StrCat(e.downloads())});
  t.Add({"share", EntityPct(e.share())});
  t.Add({"total downloads", absl::StrCat(report.total_downloads())});
  return absl::StrCat(out, "\n", t.Render());
}

std::string FormatIngestStats(const v1::IngestStats& s) {
  Table counters({Align::kLeft, Align::kRight});
  counters.Add({"events read", absl::StrCat(s.events_read())});
  counters.Add({"unique downloads", absl::StrCat(s.unique_downloads())});
  counters.Add({"duplicates", absl::StrCat(s.duplicates())});
  counters.Add({"rejected", absl::StrCat(s.rejected())});
  for (const v1::RejectCount& r : s.rejected_by_reason()) {
    counters.Add({absl::StrCat("  ", r.reason()), absl::StrCat(r.count())});
  }
  counters.Add({"catalog records", absl::StrCat(s.catalog_records())});
  counters.Add({"catalog models", absl::StrCat(s.catalog_models())});
  counters.Add({"catalog rejected", absl::StrCat(s.catalog_rejected())});
  counters.Add({"consumer lag", absl::StrCat(s.consumer_lag())});
  counters.Add({"lost to retention", absl::StrCat(s.events_lost_to_retention())});
  counters.Add({"state on disk (bytes)", absl::StrCat(s.state_disk_bytes())});
  counters.Add({"state in memory (bytes)", absl::StrCat(s.state_memory_bytes())});
  if (s.has_api()) {
    const v1::ApiStats& a = s.api();
    counters.Add(
        {"watch streams open", absl::StrCat(a.watch_streams(), " of ", a.max_watch_streams())});
    counters.Add({"watch streams refused", absl::StrCat(a.watch_streams_refused())});
    counters.Add({"queued calls", absl::StrCat(a.queued_calls(), " of ", a.max_queued_calls())});
    counters.Add({"queued calls refused", absl::StrCat(a.queued_calls_refused())});
  }

  Table status({Align::kLeft, Align::kLeft});
  status.Add({"watermark", Watermark(s.has_watermark(), s.watermark())});
  status.Add({"source exhausted", s.source_exhausted() ? "yes" : "no"});
  status.Add({"source condition", s.source_condition().empty() ? "healthy" : s.source_condition()});
  status.Add({"state condition",
              s.state_condition().empty()
                  ? "healthy"
                  : absl::StrCat(s.state_condition(), ": ", s.state_condition_detail())});

  std::string out = absl::StrCat(counters.Render(), "\n", status.Render());
  if (!s.partitions().empty()) {
    Table p({Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight},
            {"topic", "partition", "next offset", "high watermark", "lag"});
    for (const v1::PartitionLag& l : s.partitions()) {
      p.Add({l.topic(), absl::StrCat(l.partition()), absl::StrCat(l.next_offset()),
             l.high_watermark() < 0 ? "unknown" : absl::StrCat(l.high_watermark()),
             absl::StrCat(l.lag())});
    }
    absl::StrAppend(&out, "\n", p.Render());
  }
  return out;
}

namespace {
constexpr int kWatermarkWidth = 24;
constexpr int kTotalWidth = 15;
constexpr int kEntitiesWidth = 10;
constexpr int kHhiWidth = 8;
constexpr int kGiniWidth = 6;
constexpr int kTopWidth = 8;
}  // namespace

std::string FormatWatchHeader(const v1::Concentration& first) {
  std::string out =
      absl::StrCat("view ", ViewName(first.view()), ", window ",
                   WindowName(first.window(), first.first_week(), first.last_week()), "\n",
                   absl::StrFormat("%-*s  %*s  %*s  %*s  %*s", kWatermarkWidth, "watermark",
                                   kTotalWidth, "total downloads", kEntitiesWidth, "entities",
                                   kHhiWidth, "HHI", kGiniWidth, "Gini"));
  for (const v1::TopShare& s : first.top_shares()) {
    absl::StrAppendFormat(&out, "  %*s", kTopWidth, absl::StrCat("top-", s.k()));
  }
  return absl::StrCat(out, "\n");
}

std::string FormatWatchRow(const v1::Concentration& c) {
  std::string out = absl::StrFormat("%-*s  %*d  %*d  %*s  %*s", kWatermarkWidth,
                                    Watermark(c.has_watermark(), c.watermark()), kTotalWidth,
                                    c.total_downloads(), kEntitiesWidth, c.entities(), kHhiWidth,
                                    Hhi(c.hhi()), kGiniWidth, Gini(c.gini()));
  for (const v1::TopShare& s : c.top_shares()) {
    absl::StrAppendFormat(&out, "  %*s", kTopWidth, TopPct(s.share()));
  }
  return absl::StrCat(out, "\n");
}

std::string GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

}  // namespace hubmetrics::hubctl
