#include "lib/views/views.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace hubmetrics {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string OrUnknown(std::string value) { return value.empty() ? "unknown" : value; }

std::string ModelEntity(std::string_view model_id, const v1::ModelInfo*) {
  return std::string(model_id);
}

std::string DeveloperEntity(std::string_view model_id, const v1::ModelInfo* record) {
  if (record != nullptr && !record->developer().empty()) return record->developer();
  const size_t slash = model_id.find('/');
  return std::string(slash == std::string_view::npos ? model_id : model_id.substr(0, slash));
}

std::string CountryEntity(std::string_view, const v1::ModelInfo* record) {
  return record != nullptr && !record->country().empty() ? record->country() : "Unknown";
}

std::string OrgTypeEntity(std::string_view, const v1::ModelInfo* record) {
  return OrUnknown(record == nullptr ? "" : absl::AsciiStrToLower(record->org_type()));
}

std::string LicenseEntity(std::string_view, const v1::ModelInfo* record) {
  return OrUnknown(record == nullptr ? "" : absl::AsciiStrToLower(record->license()));
}

std::string TaskEntity(std::string_view, const v1::ModelInfo* record) {
  return OrUnknown(record == nullptr ? "" : record->pipeline_tag());
}

std::string ModalityEntity(std::string_view, const v1::ModelInfo* record) {
  return std::string(ModalityOf(record == nullptr ? "" : record->pipeline_tag()));
}

std::string SizeEntity(std::string_view, const v1::ModelInfo* record) {
  return std::string(SizeBucketOf(record == nullptr ? 0 : record->parameters()));
}

std::string DerivationEntity(std::string_view, const v1::ModelInfo* record) {
  if (record == nullptr) return "unknown";
  if (record->base_model().empty()) return "original";
  return record->base_relation().empty() ? "derived" : record->base_relation();
}

constexpr LevelRow kLevels[kNumLevels] = {
    {Level::kModel, "model", "a model id", &ModelEntity, true},
    {Level::kDeveloper, "developer",
     "the catalog developer, else the namespace of the model id, else the model id",
     &DeveloperEntity, true},
    {Level::kCountry, "country", "the catalog country (ISO 3166 alpha-2 or as given), else Unknown",
     &CountryEntity, true},
    {Level::kOrgType, "org_type", "the catalog org_type, lowercased", &OrgTypeEntity, false},
    {Level::kLicense, "license", "the catalog license, lowercased", &LicenseEntity, false},
    {Level::kTask, "task", "the catalog pipeline_tag", &TaskEntity, false},
    {Level::kModality, "modality",
     "the pipeline_tag's category: nlp, computer_vision, audio, multimodal, tabular, "
     "reinforcement_learning, other",
     &ModalityEntity, false},
    {Level::kSize, "size",
     "the bucket of parameters: <100M, 100M-200M, 200M-500M, 500M-1B, 1B-10B, 10B-100B, >=100B",
     &SizeEntity, false},
    {Level::kDerivation, "derivation",
     "original (no base_model), else the base_relation (finetune, adapter, quantized, merge, or as "
     "given), else derived",
     &DerivationEntity, false},
};

// The Hub's task taxonomy: pipeline tag -> modality.
const absl::flat_hash_map<std::string_view, std::string_view>& Modalities() {
  static const auto* const table = [] {
    auto* m = new absl::flat_hash_map<std::string_view, std::string_view>();
    const std::pair<std::string_view, std::vector<std::string_view>> rows[] = {
        {"multimodal",
         {"audio-text-to-text", "image-text-to-text", "visual-question-answering",
          "document-question-answering", "video-text-to-text", "visual-document-retrieval",
          "any-to-any"}},
        {"computer_vision",
         {"depth-estimation", "image-classification", "object-detection", "image-segmentation",
          "text-to-image", "image-to-text", "image-to-image", "image-to-video",
          "unconditional-image-generation", "video-classification", "text-to-video",
          "zero-shot-image-classification", "mask-generation", "zero-shot-object-detection",
          "text-to-3d", "image-to-3d", "image-feature-extraction", "keypoint-detection",
          "video-to-video"}},
        {"nlp",
         {"text-classification", "token-classification", "table-question-answering",
          "question-answering", "zero-shot-classification", "translation", "summarization",
          "feature-extraction", "text-generation", "text2text-generation", "fill-mask",
          "sentence-similarity", "text-ranking"}},
        {"audio",
         {"text-to-speech", "text-to-audio", "automatic-speech-recognition", "audio-to-audio",
          "audio-classification", "voice-activity-detection"}},
        {"tabular", {"tabular-classification", "tabular-regression", "time-series-forecasting"}},
        {"reinforcement_learning", {"reinforcement-learning", "robotics"}},
    };
    for (const auto& [modality, tags] : rows) {
      for (std::string_view tag : tags) m->emplace(tag, modality);
    }
    return m;
  }();
  return *table;
}

}  // namespace

std::span<const LevelRow> LevelTable() { return kLevels; }

const LevelRow& LevelOf(Level level) { return kLevels[static_cast<int>(level)]; }

std::string_view ModalityOf(std::string_view pipeline_tag) {
  if (pipeline_tag.empty()) return "unknown";
  auto it = Modalities().find(pipeline_tag);
  return it == Modalities().end() ? "other" : it->second;
}

std::string_view SizeBucketOf(int64_t parameters) {
  if (parameters <= 0) return "unknown";
  if (parameters < 100'000'000) return "<100M";
  if (parameters < 200'000'000) return "100M-200M";
  if (parameters < 500'000'000) return "200M-500M";
  if (parameters < 1'000'000'000) return "500M-1B";
  if (parameters < 10'000'000'000) return "1B-10B";
  if (parameters < 100'000'000'000) return "10B-100B";
  return ">=100B";
}

View View::FromLiveIndex(int index) {
  View v;
  v.attribution = static_cast<Attribution>(index % 2);
  v.filter = static_cast<Filter>((index / 2) % 2);
  v.level = static_cast<Level>(index / 4);
  return v;
}

std::vector<View> AllLiveableViews() {
  std::vector<View> out;
  for (int i = 0; i < kNumLiveViews; ++i) out.push_back(View::FromLiveIndex(i));
  return out;
}

absl::StatusOr<View> ParseViewKey(std::string_view key) {
  std::vector<absl::string_view> parts = absl::StrSplit(AV(key), '/');
  if (parts.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "view '", AV(key), "' has ", parts.size(),
        " parts: expected LEVEL[/FILTER[/ATTRIBUTION[/SAMPLE]]], e.g. developer/all/recursive"));
  }
  v1::View p;
  std::string* fields[] = {p.mutable_level(), p.mutable_filter(), p.mutable_attribution(),
                           p.mutable_sample()};
  for (size_t i = 0; i < parts.size(); ++i) fields[i]->assign(parts[i].data(), parts[i].size());
  absl::StatusOr<View> v = ParseView(p);
  if (!v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("view '", AV(key), "': ", v.status().message()));
  }
  return v;
}

std::string_view LevelName(Level l) { return LevelOf(l).name; }

std::string_view FilterName(Filter f) { return f == Filter::kAll ? "all" : "rolling_1y"; }

std::string_view AttributionName(Attribution a) {
  return a == Attribution::kDirect ? "direct" : "recursive";
}

std::string_view SampleName(Sample s) {
  switch (s) {
    case Sample::kAll:
      return "all";
    case Sample::kPopulation:
      return "population";
    case Sample::kHead:
      return "head";
  }
  return "?";
}

std::string View::LevelLabel() const {
  if (!second) return std::string(LevelName(level));
  return absl::StrCat(AV(LevelName(level)), "+", AV(LevelName(*second)));
}

std::string View::Key() const {
  return absl::StrCat(LevelLabel(), "/", AV(FilterName(filter)), "/",
                      AV(AttributionName(attribution)), "/", AV(SampleName(sample)));
}

v1::View View::ToProto() const {
  v1::View v;
  v.set_level(LevelLabel());
  v.set_filter(std::string(FilterName(filter)));
  v.set_attribution(std::string(AttributionName(attribution)));
  v.set_sample(std::string(SampleName(sample)));
  return v;
}

std::string LevelWords() {
  std::vector<absl::string_view> names;
  for (const LevelRow& row : LevelTable()) names.push_back(AV(row.name));
  return absl::StrCat(absl::StrJoin(names, " | "),
                      " | A+B (two different levels other than model, e.g. country+org_type)");
}

namespace {

std::optional<Level> FindLevel(std::string_view name) {
  for (const LevelRow& row : LevelTable()) {
    if (row.name == name) return row.level;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<View> ParseLevel(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(AV(why), ": allowed are ", LevelWords()));
  };
  if (text.empty()) return invalid("missing level");
  View v;
  const size_t plus = text.find('+');
  if (plus == std::string_view::npos) {
    std::optional<Level> l = FindLevel(text);
    if (!l) return invalid(absl::StrCat("unknown level '", AV(text), "'"));
    v.level = *l;
    return v;
  }
  std::optional<Level> a = FindLevel(text.substr(0, plus));
  std::optional<Level> b = FindLevel(text.substr(plus + 1));
  if (!a || !b) return invalid(absl::StrCat("unknown level '", AV(text), "'"));
  if (*a == Level::kModel || *b == Level::kModel) {
    return invalid(absl::StrCat("level '", AV(text), "': model cannot be part of a pair"));
  }
  if (*a == *b) {
    return invalid(absl::StrCat("level '", AV(text), "': a pair needs two different levels"));
  }
  v.level = *a;
  v.second = *b;
  return v;
}

absl::StatusOr<View> ParseView(const v1::View& p) {
  absl::StatusOr<View> parsed = ParseLevel(p.level());
  if (!parsed.ok()) return parsed.status();
  View v = *parsed;
  if (p.filter().empty() || p.filter() == "all") {
    v.filter = Filter::kAll;
  } else if (p.filter() == "rolling_1y") {
    v.filter = Filter::kRolling1y;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown filter '", p.filter(), "': allowed are all, rolling_1y"));
  }
  if (p.attribution().empty() || p.attribution() == "direct") {
    v.attribution = Attribution::kDirect;
  } else if (p.attribution() == "recursive") {
    v.attribution = Attribution::kRecursive;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown attribution '", p.attribution(), "': allowed are direct, recursive"));
  }
  if (p.sample().empty() || p.sample() == "all") {
    v.sample = Sample::kAll;
  } else if (p.sample() == "population") {
    v.sample = Sample::kPopulation;
  } else if (p.sample() == "head") {
    v.sample = Sample::kHead;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown sample '", p.sample(), "': allowed are all, population, head"));
  }
  return v;
}

std::string Window::Label() const {
  switch (kind) {
    case Kind::kAll:
      return "all";
    case Kind::kWeek:
      return absl::StrCat("week:", week.Label());
    case Kind::kCurrentWeek:
      return "week:current";
    case Kind::kTrailing:
      return absl::StrCat("trailing:", weeks);
    case Kind::kRange:
      return absl::StrCat("range:", week.Label(), "..", last.Label());
  }
  return "?";
}

std::optional<std::pair<IsoWeek, IsoWeek>> Window::Range(
    std::optional<IsoWeek> watermark_week) const {
  switch (kind) {
    case Kind::kAll:
      return std::nullopt;
    case Kind::kWeek:
      return std::make_pair(week, week);
    case Kind::kCurrentWeek:
      if (!watermark_week) return std::nullopt;
      return std::make_pair(*watermark_week, *watermark_week);
    case Kind::kTrailing:
      if (!watermark_week) return std::nullopt;
      return std::make_pair(watermark_week->Plus(-(weeks - 1)), *watermark_week);
    case Kind::kRange:
      return std::make_pair(week, last);
  }
  return std::nullopt;
}

std::optional<int> Window::TrailingWeeks(std::optional<IsoWeek> watermark_week) const {
  switch (kind) {
    case Kind::kAll:
      return 0;
    case Kind::kTrailing:
      return weeks;
    case Kind::kCurrentWeek:
      return 1;
    case Kind::kWeek:
      if (watermark_week && week == *watermark_week) return 1;
      return std::nullopt;
    case Kind::kRange:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string_view WindowWords() {
  return "all, week:YYYY-Www (e.g. week:2025-W10), week:current, trailing:N with 1 <= N <= "
         "1040, range:YYYY-Www..YYYY-Www (inclusive, at most 1040 weeks)";
}

absl::StatusOr<std::pair<IsoWeek, IsoWeek>> ParseWeekRange(std::string_view from,
                                                           std::string_view to) {
  absl::StatusOr<IsoWeek> first = IsoWeek::Parse(from);
  if (!first.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid first week '", AV(from), "': ", first.status().message()));
  }
  absl::StatusOr<IsoWeek> last = IsoWeek::Parse(to);
  if (!last.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid last week '", AV(to), "': ", last.status().message()));
  }
  if (*last < *first) {
    return absl::InvalidArgumentError(
        absl::StrCat("last week ", last->Label(), " is before first week ", first->Label()));
  }
  if (last->WeeksSince(*first) >= kMaxWindowWeeks) {
    return absl::InvalidArgumentError(absl::StrCat("range of ", last->WeeksSince(*first) + 1,
                                                   " weeks: at most ", kMaxWindowWeeks));
  }
  return std::make_pair(*first, *last);
}

absl::StatusOr<Window> ParseWindow(std::string_view text) {
  const std::string allowed = absl::StrCat("allowed are ", AV(WindowWords()));
  Window w;
  if (text.empty() || text == "all") return w;
  if (text == "week:current") {
    w.kind = Window::Kind::kCurrentWeek;
    return w;
  }
  if (text.substr(0, 6) == "range:") {
    const std::string_view body = text.substr(6);
    const size_t dots = body.find("..");
    if (dots != std::string_view::npos) {
      absl::StatusOr<std::pair<IsoWeek, IsoWeek>> r =
          ParseWeekRange(body.substr(0, dots), body.substr(dots + 2));
      if (!r.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid window '", AV(text), "': ", r.status().message(), "; ", allowed));
      }
      w.kind = Window::Kind::kRange;
      w.week = r->first;
      w.last = r->second;
      return w;
    }
  }
  if (text.substr(0, 5) == "week:") {
    auto week = IsoWeek::Parse(text.substr(5));
    if (!week.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid window '", absl::string_view(text.data(), text.size()),
                       "': ", week.status().message(), "; ", allowed));
    }
    w.kind = Window::Kind::kWeek;
    w.week = *week;
    return w;
  }
  if (text.substr(0, 9) == "trailing:") {
    int n = 0;
    std::string_view num = text.substr(9);
    bool digits = !num.empty() && num.size() <= 5;
    for (char c : num) digits = digits && c >= '0' && c <= '9';
    if (digits && absl::SimpleAtoi(absl::string_view(num.data(), num.size()), &n) && n >= 1 &&
        n <= kMaxWindowWeeks) {
      w.kind = Window::Kind::kTrailing;
      w.weeks = n;
      return w;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid window '", absl::string_view(text.data(), text.size()), "': ", allowed));
}

const std::vector<uint32_t>& DefaultTopK() {
  static const std::vector<uint32_t>* const ks = new std::vector<uint32_t>{1, 10, 100};
  return *ks;
}

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t micros = ::hubmetrics::ToUnixMicros(t);
  int64_t secs = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --secs;
  }
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(rem * 1000));
}

absl::StatusOr<std::vector<uint32_t>> ParseTopK(
    const google::protobuf::RepeatedField<uint32_t>& ks) {
  if (ks.empty()) return DefaultTopK();
  if (ks.size() > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many top_k values (", ks.size(), "): at most 16"));
  }
  for (uint32_t k : ks) {
    if (k < 1 || k > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k ", k, " is out of range: each k must be between 1 and 1000000"));
    }
  }
  return std::vector<uint32_t>(ks.begin(), ks.end());
}

}  // namespace hubmetrics
