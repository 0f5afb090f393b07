#include "services/loadgen/traffic.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"

namespace hubmetrics::loadgen {
namespace {

constexpr int64_t kSecondsPerDay = 86400;

// Our own distributions over mt19937_64: the std:: ones are not specified
// bit for bit and differ between standard libraries.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t Bits() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n); n > 0. Multiply-shift: no modulo bias worth the name.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(engine_()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo + 1)));
  }
  bool Chance(double p) { return Uniform() < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }
  // Index drawn with probability proportional to weights[i].
  size_t Weighted(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double x = Uniform() * total;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (x < weights[i]) return i;
      x -= weights[i];
    }
    return weights.size() - 1;
  }

 private:
  std::mt19937_64 engine_;
};

// splitmix64: stable per-index ids that do not depend on generation order.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

int64_t UnixSeconds(absl::Time t) { return absl::ToUnixSeconds(t); }
int64_t UtcDay(absl::Time t) {
  int64_t s = UnixSeconds(t);
  return s >= 0 ? s / kSecondsPerDay : -((-s + kSecondsPerDay - 1) / kSecondsPerDay);
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

struct Developer {
  std::string ns;
  std::string display;  // catalog "developer"; empty: the namespace
  std::string country;  // empty: none in the catalog
  std::string org_type;
  bool top = false;
};

// How a family's models are sized: encoders by tiny..xl multiples of a base
// size, LLMs (and VLMs) by the usual parameter-count names, fixed families
// (diffusion pipelines, detectors) at one size.
enum class Sizing : uint8_t { kEncoder, kLlm, kFixed };

// A model family developers publish originals of. The weights are separate
// for the head and the long tail of the popularity ranking because the Hub's
// downloads are not its uploads: the most downloaded models are small
// encoders (92% of downloads go to models under 1B parameters), while LLMs and
// diffusion models are a larger part of the tail than of the downloads.
struct Family {
  const char* name;
  const char* pipeline;
  Sizing sizing;
  double params;        // kEncoder: the "base" size; kFixed: every model's; kLlm: the largest
  double head_weight;   // how often it is picked among the most downloaded models
  double tail_weight;   // ... and in the long tail
  const char* license;  // of its originals, mostly; "" = whatever their developers chose
};

const std::vector<Family>& Families() {
  static const auto* families = new std::vector<Family>{
      // nlp
      {"bert", "fill-mask", Sizing::kEncoder, 110e6, 10, 5, "apache-2.0"},
      {"roberta", "fill-mask", Sizing::kEncoder, 125e6, 6, 3, "mit"},
      {"distilbert", "text-classification", Sizing::kEncoder, 66e6, 8, 5, "apache-2.0"},
      {"deberta-v3", "text-classification", Sizing::kEncoder, 184e6, 2, 2, "mit"},
      {"xlm-roberta", "token-classification", Sizing::kEncoder, 278e6, 2, 2, "mit"},
      {"roberta-squad2", "question-answering", Sizing::kEncoder, 125e6, 1.5, 1, "cc-by-4.0"},
      {"bart-mnli", "zero-shot-classification", Sizing::kFixed, 407e6, 0.7, 0.4, "mit"},
      {"MiniLM", "sentence-similarity", Sizing::kEncoder, 22e6, 8, 3, "apache-2.0"},
      {"mpnet", "sentence-similarity", Sizing::kEncoder, 110e6, 5, 2, "apache-2.0"},
      {"bge", "feature-extraction", Sizing::kEncoder, 110e6, 5, 2, "mit"},
      {"e5", "feature-extraction", Sizing::kEncoder, 110e6, 4, 2, "mit"},
      {"bge-reranker", "text-ranking", Sizing::kFixed, 568e6, 0.8, 0.4, "apache-2.0"},
      {"bge-m3", "feature-extraction", Sizing::kFixed, 568e6, 2.5, 0.8, "mit"},
      {"t5", "text2text-generation", Sizing::kEncoder, 220e6, 3, 2, "apache-2.0"},
      {"opus-mt", "translation", Sizing::kFixed, 77e6, 1.5, 1.5, "apache-2.0"},
      {"bart-cnn", "summarization", Sizing::kFixed, 406e6, 0.5, 0.5, "mit"},
      {"Llama", "text-generation", Sizing::kLlm, 71e9, 0.6, 2, "llama3.1"},
      {"Qwen", "text-generation", Sizing::kLlm, 71e9, 0.8, 2, "apache-2.0"},
      {"Mistral", "text-generation", Sizing::kLlm, 24e9, 0.3, 1, "apache-2.0"},
      {"gemma", "text-generation", Sizing::kLlm, 27e9, 0.3, 1, "gemma"},
      {"phi", "text-generation", Sizing::kLlm, 15e9, 0.2, 0.6, "mit"},
      {"SmolLM", "text-generation", Sizing::kLlm, 1.8e9, 1, 1, "apache-2.0"},
      // computer_vision
      {"vit", "image-classification", Sizing::kEncoder, 86e6, 5, 3, "apache-2.0"},
      {"resnet", "image-classification", Sizing::kEncoder, 25e6, 2, 1, "apache-2.0"},
      {"clip-vit", "zero-shot-image-classification", Sizing::kEncoder, 150e6, 3, 1, "mit"},
      {"dinov2", "image-feature-extraction", Sizing::kEncoder, 86e6, 1.5, 0.7, "apache-2.0"},
      {"yolo", "object-detection", Sizing::kFixed, 25e6, 2, 1.5, "agpl-3.0"},
      {"detr", "object-detection", Sizing::kFixed, 41e6, 0.8, 0.5, "apache-2.0"},
      {"segformer", "image-segmentation", Sizing::kEncoder, 14e6, 1, 0.6, "other"},
      {"sam", "mask-generation", Sizing::kEncoder, 94e6, 0.5, 0.3, "apache-2.0"},
      {"depth-anything", "depth-estimation", Sizing::kEncoder, 25e6, 0.6, 0.3, "apache-2.0"},
      {"blip", "image-to-text", Sizing::kFixed, 247e6, 0.6, 0.4, "bsd-3-clause"},
      {"stable-diffusion", "text-to-image", Sizing::kFixed, 1.07e9, 0.4, 1.2, "openrail"},
      {"sdxl", "text-to-image", Sizing::kFixed, 3.5e9, 0.2, 0.8, "openrail++"},
      {"FLUX", "text-to-image", Sizing::kFixed, 12e9, 0.1, 0.4, "other"},
      // audio
      {"whisper", "automatic-speech-recognition", Sizing::kEncoder, 122e6, 3, 1.5, "apache-2.0"},
      {"wav2vec2", "automatic-speech-recognition", Sizing::kEncoder, 95e6, 3, 2, "apache-2.0"},
      {"ast", "audio-classification", Sizing::kFixed, 87e6, 0.7, 0.4, "bsd-3-clause"},
      {"tts", "text-to-speech", Sizing::kFixed, 80e6, 1, 1, "mit"},
      {"segmentation", "voice-activity-detection", Sizing::kFixed, 1.5e6, 0.4, 0.2, "mit"},
      {"musicgen", "text-to-audio", Sizing::kFixed, 300e6, 0.2, 0.3, "cc-by-nc-4.0"},
      // multimodal
      {"SmolVLM", "image-text-to-text", Sizing::kLlm, 2.3e9, 1, 0.8, "apache-2.0"},
      {"llava", "image-text-to-text", Sizing::kLlm, 35e9, 0.1, 0.6, "llama2"},
      {"layoutlm", "document-question-answering", Sizing::kFixed, 113e6, 0.3, 0.2, "mit"},
      {"colpali", "visual-document-retrieval", Sizing::kFixed, 2.9e9, 0.05, 0.2, "gemma"},
      // tabular, reinforcement_learning, and tags outside the modality table
      {"chronos", "time-series-forecasting", Sizing::kEncoder, 200e6, 1, 0.5, "apache-2.0"},
      {"tabpfn", "tabular-classification", Sizing::kFixed, 7e6, 0.2, 0.3, "other"},
      {"ppo", "reinforcement-learning", Sizing::kFixed, 0, 0.05, 1, ""},  // no parameter count
      {"act", "robotics", Sizing::kFixed, 52e6, 0.05, 0.3, "apache-2.0"},
      {"graphormer", "graph-ml", Sizing::kFixed, 47e6, 0.3, 0.5, "mit"},
  };
  return *families;
}

// The licenses a developer picks when the family's is not the one (weighted).
const std::vector<std::string>& GenericLicenses() {
  static const auto* v = new std::vector<std::string>{"apache-2.0",
                                                      "mit",
                                                      "other",
                                                      "cc-by-4.0",
                                                      "cc-by-nc-4.0",
                                                      "openrail",
                                                      "llama3",
                                                      "gemma",
                                                      "gpl-3.0",
                                                      "cc-by-sa-4.0",
                                                      "afl-3.0",
                                                      "bsd-3-clause",
                                                      "creativeml-openrail-m"};
  return *v;
}
const std::vector<double>& GenericLicenseWeights() {
  static const auto* v = new std::vector<double>{40, 20, 10, 8, 6, 5, 3, 2, 2, 2, 1, 1, 1};
  return *v;
}

// base_relation values; kConversion (ONNX, OpenVINO, Core ML exports) has no
// relation of its own on the Hub, so its records leave base_relation empty.
enum Relation : uint8_t { kFinetune, kAdapter, kQuantized, kMerge, kConversion, kNumRelations };
constexpr const char* kRelationNames[kNumRelations] = {"finetune", "adapter", "quantized", "merge",
                                                       ""};

// A model of the universe: catalog models plus models that get downloads
// without a catalog record.
struct Model {
  std::string id;
  int dev = -1;
  bool in_catalog = true;
  bool special = false;  // an edge-case structure; never re-published
  int base = -1;         // universe index of base_model
  std::string base_id;   // base_model text (also for a base outside the universe)
  std::string relation;  // base_relation; empty: none given
  std::optional<absl::Time> created;
  std::string developer;  // catalog fields (final values)
  std::string country;
  std::string org_type;
  int64_t parameters = 0;  // 0: unknown
  std::string pipeline;
  std::string license;
  bool extra_fields = false;
  double weight = 0;
  int depth = 0;
  enum Trend { kSteady, kRamp, kDecay } trend = kSteady;
  int first_day = 0;  // first sample day (0-based) with downloads
};

std::string ModelJson(const Model& m) {
  std::string out = absl::StrCat("{\"model_id\":", JsonString(m.id));
  if (!m.developer.empty()) absl::StrAppend(&out, ",\"developer\":", JsonString(m.developer));
  if (!m.country.empty()) absl::StrAppend(&out, ",\"country\":", JsonString(m.country));
  if (!m.org_type.empty()) absl::StrAppend(&out, ",\"org_type\":", JsonString(m.org_type));
  if (m.created) absl::StrAppend(&out, ",\"created_at\":\"", FormatUtc(*m.created), "\"");
  if (!m.base_id.empty()) absl::StrAppend(&out, ",\"base_model\":", JsonString(m.base_id));
  if (!m.relation.empty()) absl::StrAppend(&out, ",\"base_relation\":", JsonString(m.relation));
  if (m.parameters > 0) absl::StrAppend(&out, ",\"parameters\":\"", m.parameters, "\"");
  if (!m.pipeline.empty()) absl::StrAppend(&out, ",\"pipeline_tag\":", JsonString(m.pipeline));
  if (!m.license.empty()) absl::StrAppend(&out, ",\"license\":", JsonString(m.license));
  if (m.extra_fields) absl::StrAppend(&out, ",\"likes\":17,\"tags\":[\"transformers\",\"en\"]");
  out += "}";
  return out;
}

// hubmetrics' levels of a downloaded model (spec 17), for the shape report:
// the values the service will report for the generated traffic.
std::string_view ModalityOf(std::string_view pipeline_tag) {
  static const auto* table = [] {
    auto* t = new absl::flat_hash_map<std::string_view, std::string_view>;
    const std::pair<std::string_view, std::vector<std::string_view>> kModalities[] = {
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
    for (const auto& [modality, tags] : kModalities) {
      for (std::string_view tag : tags) t->emplace(tag, modality);
    }
    return t;
  }();
  if (pipeline_tag.empty()) return "unknown";
  const auto it = table->find(pipeline_tag);
  return it == table->end() ? "other" : it->second;
}

// Size buckets in order, then "unknown".
constexpr std::string_view kSizeBuckets[] = {"<100M",  "100M-200M", "200M-500M", "500M-1B",
                                             "1B-10B", "10B-100B",  ">=100B",    "unknown"};

std::string_view SizeBucket(int64_t parameters) {
  if (parameters <= 0) return kSizeBuckets[7];
  constexpr int64_t kLimits[] = {100000000,  200000000,   500000000,
                                 1000000000, 10000000000, 100000000000};
  for (int i = 0; i < 6; ++i) {
    if (parameters < kLimits[i]) return kSizeBuckets[i];
  }
  return kSizeBuckets[6];
}

}  // namespace

std::string_view BadKindName(BadKind kind) {
  switch (kind) {
    case BadKind::kNone:
      return "ok";
    case BadKind::kMalformed:
      return "malformed";
    case BadKind::kNotObject:
      return "not_object";
    case BadKind::kMissingField:
      return "missing_field";
    case BadKind::kInvalidModelId:
      return "invalid_model_id";
    case BadKind::kInvalidTime:
      return "invalid_time";
    case BadKind::kFuture:
      return "future";
    case BadKind::kTooLate:
      return "too_late";
    case BadKind::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

struct TrafficGenerator::Impl {
  TrafficOptions opt;
  int64_t start_day = 0;  // UTC day of options.start
  std::vector<Developer> devs;
  std::vector<Model> models;  // the universe
  absl::flat_hash_set<std::string> ids;
  std::vector<ModelRecord> catalog_records;
  size_t next_model = 0;

  // Event generation.
  Rng event_rng{0};
  // Which bad records become too_large, and their contents (a stream of its
  // own, so event_rng's sequence is what it was before they existed).
  Rng size_rng{0};
  int64_t too_large_left = kMaxTooLargeRecords;
  std::vector<std::vector<double>> day_cumulative;  // per sample day, over models
  std::vector<int64_t> day_end;                     // events before the end of each day
  int64_t next_event = 0;
  struct Pick {
    int model;
    int user;
    int64_t utc_day;
  };
  std::vector<Pick> recent;  // ring of recent fresh picks, for same-day repeats
  size_t recent_next = 0;
  int64_t recent_day = -1;

  // Shape bookkeeping.
  TrafficShape shape;
  absl::flat_hash_set<uint64_t> unique_keys;
  std::vector<int64_t> model_uniques;

  void BuildDevelopers(Rng& rng);
  int AddModel(Model m);
  std::string UniqueId(const std::string& ns, const std::string& name);
  void BuildCatalog(Rng& rng);
  void BuildEventPlan();
  std::string UserId(int user) const;
  std::string FormatEventTime(absl::Time t);
  EventRecord GoodEvent(int64_t day_index, absl::Time t);
  EventRecord BadEvent(absl::Time now);
  void MakeTooLarge(EventRecord& e, absl::Time now);
  void Count(const EventRecord& e, int model, int user);
};

void TrafficGenerator::Impl::BuildDevelopers(Rng& rng) {
  struct Known {
    const char* ns;
    const char* display;
    const char* country;
    const char* org_type;
  };
  // Real Hub namespaces (the top of the paper's leaderboards), with the
  // catalog's developer where it differs from the namespace.
  static const Known kKnown[] = {
      {"sentence-transformers", "sentence-transformers", "DE", "university"},
      {"google", "google", "US", "company"},
      {"google-bert", "google", "US", "company"},
      {"FacebookAI", "meta", "US", "company"},
      {"meta-llama", "meta", "US", "company"},
      {"facebook", "meta", "US", "company"},
      {"openai", "openai", "US", "company"},
      {"openai-community", "openai", "US", "company"},
      {"Qwen", "alibaba", "CN", "company"},
      {"deepseek-ai", "deepseek", "CN", "company"},
      {"microsoft", "microsoft", "US", "company"},
      {"BAAI", "BAAI", "CN", "non_profit"},
      {"intfloat", "", "US", "user"},
      {"mistralai", "mistralai", "FR", "company"},
      {"TheBloke", "", "", "user"},
      {"unsloth", "unsloth", "US", "company"},
      {"lmstudio-community", "", "Online", "community"},
      {"mlx-community", "", "Online", "community"},
      {"bartowski", "", "", "user"},
      {"stabilityai", "stabilityai", "GB", "company"},
      {"black-forest-labs", "", "DE", "company"},
      {"nvidia", "nvidia", "US", "company"},
      {"laion", "laion", "DE", "non_profit"},
      {"Salesforce", "salesforce", "US", "company"},
      {"allenai", "allenai", "US", "non_profit"},
      {"CompVis", "CompVis", "DE", "university"},
      {"pyannote", "pyannote", "FR", "community"},
      {"cardiffnlp", "cardiffnlp", "GB", "university"},
      {"jonatasgrosman", "", "BR", "user"},
      {"sd-concepts-library", "", "International", "community"},
      {"EleutherAI", "EleutherAI", "International", "non_profit"},
      {"bigscience", "bigscience", "International", "community"},
      {"tiiuae", "tiiuae", "AE", "company"},
      {"HuggingFaceTB", "huggingface", "US", "company"},
      {"Helsinki-NLP", "Helsinki-NLP", "FI", "university"},
      {"dbmdz", "", "DE", "university"},
      {"cl-tohoku", "", "JP", "university"},
      {"beomi", "", "KR", "user"},
      {"ai4bharat", "ai4bharat", "IN", "university"},
      {"Ultralytics", "ultralytics", "US", "company"},
  };
  for (const Known& k : kKnown) {
    devs.push_back({k.ns, k.display, k.country, k.org_type, false});
  }
  static const std::vector<std::string> kSyllables = {
      "ka", "lo", "mi", "ra", "ven", "to", "zu", "shi", "el", "an", "or", "qi", "ne", "da", "po"};
  static const std::vector<std::string> kSuffix = {"",     "",          "",    "-ai",  "-labs",
                                                   "-nlp", "-research", "-ml", "-team"};
  static const std::vector<std::string> kCountries = {"US",
                                                      "US",
                                                      "US",
                                                      "US",
                                                      "US",
                                                      "CN",
                                                      "CN",
                                                      "CN",
                                                      "DE",
                                                      "DE",
                                                      "FR",
                                                      "FR",
                                                      "GB",
                                                      "GB",
                                                      "CA",
                                                      "KR",
                                                      "JP",
                                                      "IN",
                                                      "IL",
                                                      "SG",
                                                      "NL",
                                                      "CH",
                                                      "ES",
                                                      "IT",
                                                      "BR",
                                                      "PL",
                                                      "SE",
                                                      "AE",
                                                      "Online",
                                                      "Online",
                                                      "International",
                                                      "",
                                                      "",
                                                      "",
                                                      "",
                                                      "",
                                                      ""};
  static const std::vector<std::string> kOrgTypes = {
      "user", "user", "user", "company", "company", "university", "non_profit", "community"};
  const int wanted = std::max<int>(static_cast<int>(devs.size()) + 10, opt.models / 6);
  absl::flat_hash_set<std::string> seen;
  for (const Developer& d : devs) seen.insert(d.ns);
  while (static_cast<int>(devs.size()) < wanted) {
    std::string ns;
    const int parts = static_cast<int>(rng.Between(2, 3));
    for (int i = 0; i < parts; ++i) ns += rng.Pick(kSyllables);
    if (rng.Chance(0.3)) absl::StrAppend(&ns, rng.Between(1, 99));
    ns += rng.Pick(kSuffix);
    if (!seen.insert(ns).second) continue;
    Developer d;
    d.ns = ns;
    d.country = rng.Pick(kCountries);
    d.org_type = rng.Pick(kOrgTypes);
    const double u = rng.Uniform();
    if (u < 0.6) {
      d.display = ns;
    } else if (u < 0.9) {
      d.display = "";  // the namespace is the developer
    } else {
      d.display = absl::StrCat(ns.substr(0, ns.size() / 2 + 1), "-org");  // catalog override
    }
    devs.push_back(std::move(d));
  }
  for (size_t i = 0; i < devs.size() && i < 50; ++i) devs[i].top = true;
}

std::string TrafficGenerator::Impl::UniqueId(const std::string& ns, const std::string& name) {
  std::string base = ns.empty() ? name : absl::StrCat(ns, "/", name);
  std::string id = base;
  for (int n = 2; ids.contains(id); ++n) id = absl::StrCat(base, "-v", n);
  return id;
}

int TrafficGenerator::Impl::AddModel(Model m) {
  ids.insert(m.id);
  models.push_back(std::move(m));
  return static_cast<int>(models.size()) - 1;
}

void TrafficGenerator::Impl::BuildCatalog(Rng& rng) {
  BuildDevelopers(rng);
  const int num_top = std::min<int>(50, static_cast<int>(devs.size()));
  std::vector<double> top_weights;
  for (int i = 0; i < num_top; ++i) top_weights.push_back(1.0 / (i + 1));
  auto pick_dev = [&](bool top) -> int {
    if (top || num_top == static_cast<int>(devs.size()))
      return static_cast<int>(rng.Weighted(top_weights));
    return num_top + static_cast<int>(rng.Below(devs.size() - num_top));
  };
  auto fill_from_dev = [&](Model& m) {
    const Developer& d = devs[m.dev];
    m.developer = d.display;
    m.country = d.country;
    m.org_type = d.org_type;
  };
  const absl::Time start = absl::FromUnixSeconds(start_day * kSecondsPerDay);
  auto random_old_created = [&]() {
    // Mostly the last two years, some up to five.
    const double u = rng.Uniform();
    const int64_t days_before = 30 + static_cast<int64_t>(u * u * (5 * 365 - 30));
    return start - absl::Hours(24 * days_before) + absl::Seconds(rng.Below(kSecondsPerDay));
  };
  const double zipf_s = 0.82;
  auto weight_of_rank = [&](double rank) { return std::pow(rank, -zipf_s); };

  // 1. Famous models at the top, including legacy ids without a namespace.
  struct Famous {
    const char* id;
    const char* ns;  // namespace for developer/country; "" for legacy ids
    const char* developer;
    const char* country;
    const char* pipeline;
    int64_t params;
    const char* license;  // "": none in the catalog (as on the Hub)
    const char* base;     // base_model (a model without a catalog record); "": an original
  };
  static const Famous kFamous[] = {
      {"sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers", nullptr, nullptr,
       "sentence-similarity", 22700000, "apache-2.0", ""},
      {"google-bert/bert-base-uncased", "google-bert", nullptr, nullptr, "fill-mask", 110000000,
       "apache-2.0", ""},
      {"bert-base-uncased", "", "", "", "fill-mask", 110000000, "apache-2.0", ""},
      {"gpt2", "", "openai", "US", "text-generation", 124000000, "mit", ""},
      {"openai/clip-vit-large-patch14", "openai", nullptr, nullptr,
       "zero-shot-image-classification", 428000000, "", ""},
      {"FacebookAI/roberta-large", "FacebookAI", nullptr, nullptr, "fill-mask", 355000000, "mit",
       ""},
      {"distilbert-base-uncased", "", "", "", "fill-mask", 66000000, "apache-2.0", ""},
      {"sentence-transformers/all-mpnet-base-v2", "sentence-transformers", nullptr, nullptr,
       "sentence-similarity", 109000000, "apache-2.0", ""},
      {"openai/whisper-large-v3", "openai", nullptr, nullptr, "automatic-speech-recognition",
       1550000000, "apache-2.0", ""},
      {"roberta-base", "", "", "US", "fill-mask", 125000000, "mit", ""},
      {"Qwen/Qwen2.5-7B-Instruct", "Qwen", nullptr, nullptr, "text-generation", 7620000000,
       "apache-2.0", "Qwen/Qwen2.5-7B"},
      {"BAAI/bge-small-en-v1.5", "BAAI", nullptr, nullptr, "feature-extraction", 33400000, "mit",
       ""},
      {"meta-llama/Llama-3.1-8B-Instruct", "meta-llama", nullptr, nullptr, "text-generation",
       8030000000, "llama3.1", "meta-llama/Llama-3.1-8B"},
      {"t5-small", "", "google", "US", "text2text-generation", 60500000, "apache-2.0", ""},
      {"pyannote/speaker-diarization-3.1", "pyannote", nullptr, nullptr,
       "automatic-speech-recognition", 0, "mit", ""},
      {"xlm-roberta-base", "", "", "", "fill-mask", 278000000, "mit", ""},
      {"deepseek-ai/DeepSeek-R1", "deepseek-ai", nullptr, nullptr, "text-generation", 671000000000,
       "mit", ""},
      {"bert-base-cased", "", "google", "", "fill-mask", 110000000, "apache-2.0", ""},
  };
  int rank = 0;
  for (const Famous& f : kFamous) {
    Model m;
    m.id = f.id;
    m.dev = -1;
    for (size_t i = 0; i < devs.size(); ++i) {
      if (devs[i].ns == f.ns) m.dev = static_cast<int>(i);
    }
    if (m.dev >= 0) fill_from_dev(m);
    if (f.developer != nullptr) m.developer = f.developer;
    if (f.country != nullptr) m.country = f.country;
    m.pipeline = f.pipeline;
    m.parameters = f.params;
    m.license = f.license;
    if (*f.base != '\0') {
      m.base_id = f.base;
      m.relation = kRelationNames[kFinetune];
    }
    m.created = random_old_created();
    m.weight = weight_of_rank(++rank);
    if (rank == 3 || rank == 8) m.trend = Model::kDecay;  // yesterday's hits fade
    AddModel(std::move(m));
  }
  const int famous_count = static_cast<int>(models.size());

  // 2. Edge-case structures (counted in the catalog size).
  auto special = [&](std::string id, int dev, double weight_rank) {
    Model m;
    m.id = std::move(id);
    m.dev = dev;
    fill_from_dev(m);
    m.special = true;
    m.pipeline = "text-generation";
    m.license = "apache-2.0";
    m.parameters = 350000000;
    m.created = random_old_created();
    m.weight = weight_of_rank(weight_rank);
    return AddModel(std::move(m));
  };
  const int special_dev = pick_dev(false);
  // A base_model cycle a -> b -> a, and a derivative pointing into it.
  const int loop_a = special("loop-lab/ouroboros-a", special_dev, 120);
  const int loop_b = special("loop-lab/ouroboros-b", special_dev, 180);
  const int loop_c = special("loop-lab/ouroboros-a-GGUF", pick_dev(false), 250);
  models[loop_a].base = loop_b;
  models[loop_a].relation = kRelationNames[kMerge];
  models[loop_b].base = loop_a;
  models[loop_b].relation = kRelationNames[kFinetune];
  models[loop_c].base = loop_a;
  models[loop_c].relation = kRelationNames[kQuantized];
  // A chain of 40 links: step-32 still credits step-0, step-33 credits itself.
  const int chain_dev = pick_dev(false);
  int prev = -1;
  for (int i = 0; i <= 40; ++i) {
    const int idx = special(absl::StrCat("relay-lab/relay-step-", i), chain_dev,
                            i < 28 ? 2000 + 50 * i : 150 + 20 * i);
    models[idx].base = prev;
    // Every fourth link does not say how it derives ("derived").
    if (prev >= 0 && i % 4 != 3) models[idx].relation = kRelationNames[kFinetune];
    prev = idx;
  }
  // base_model pointing at a model that has no catalog record.
  const int phantom = special("spectral-ai/phantom-7b-instruct", pick_dev(false), 90);
  models[phantom].base_id = "ghost-lab/ghost-base-7b";
  models[phantom].relation = kRelationNames[kFinetune];
  const int phantom_q = special("spectral-ai/phantom-7b-instruct-GGUF", pick_dev(false), 300);
  models[phantom_q].base = phantom;
  models[phantom_q].relation = kRelationNames[kQuantized];

  // 3. Regular models, in popularity order. What they are depends on the rank:
  // the most downloaded are mostly small NLP encoders and originals with
  // complete records, the tail holds more LLMs, diffusion models, derivatives
  // and records missing a field. That correlation is what makes the
  // download-weighted shapes (by size, modality, license, derivation) come out
  // like the Hub's, not the per-model ones.
  static const std::vector<std::string> kEncoderSizes = {"tiny", "small", "base", "large", "xl"};
  static const std::vector<double> kEncoderMul = {0.2, 0.5, 1, 3, 8};
  static const std::vector<double> kEncoderWeights = {1.2, 1.8, 3.5, 1.2, 0.4};
  static const std::vector<std::string> kLlmSizes = {"135M", "360M", "0.5B", "0.6B", "1B",  "1.5B",
                                                     "3B",   "7B",   "8B",   "14B",  "32B", "70B"};
  static const std::vector<double> kLlmParams = {135e6,  362e6, 494e6, 596e6,  1.24e9, 1.54e9,
                                                 3.09e9, 7.6e9, 8.0e9, 14.8e9, 32.8e9, 70.6e9};
  // The popular LLMs are mostly the small ones; the tail's are bigger.
  static const std::vector<double> kLlmHeadWeights = {3, 3, 2, 3, 2, 2, 1.5, 1, 1, 0.3, 0.2, 0.1};
  static const std::vector<double> kLlmTailWeights = {1.5, 1.5, 1,   1,   1.5, 1.5,
                                                      1.5, 1.5, 1.5, 0.6, 0.3, 0.3};
  static const std::vector<std::string> kVariants = {
      "", "", "", "uncased", "multilingual", "en", "instruct", "chat", "v2", "v1.5", "zh", "de"};
  static const std::vector<std::string> kFixedVersions = {"v1", "v2", "v3", "v5", "v8", "2.1"};
  // Name suffixes of derivatives, by relation.
  static const std::vector<std::string> kSuffixes[kNumRelations] = {
      {"finetuned-ner", "finetuned-squad", "finetuned-sst2", "finetuned-imdb", "ft", "sft", "dpo",
       "distilled", "abliterated"},
      {"lora", "qlora", "peft-adapter"},
      {"GGUF", "AWQ", "GPTQ", "4bit", "8bit", "mlx", "int8"},
      {"merged", "slerp", "ties"},
      {"onnx", "openvino", "coreml"}};
  // Generative models (LLMs, VLMs, diffusion) get quantized and adapted;
  // encoders mostly get fine-tuned (weights in Relation order).
  static const std::vector<double> kGenerativeRelations = {0.35, 0.15, 0.40, 0.07, 0.03};
  static const std::vector<double> kEncoderRelations = {0.80, 0.04, 0.08, 0.02, 0.06};
  static const std::vector<std::string> kIntermediaries = {
      "TheBloke", "unsloth", "lmstudio-community", "mlx-community", "bartowski"};
  std::vector<int> intermediary_devs;
  for (const std::string& ns : kIntermediaries) {
    for (size_t i = 0; i < devs.size(); ++i) {
      if (devs[i].ns == ns) intermediary_devs.push_back(static_cast<int>(i));
    }
  }
  // Position in the ranking on a log scale: 0 at the top, 1 in the far tail.
  const double tail_scale = std::log(std::max(100.0, opt.models / 20.0));
  auto tail_of_rank = [&](int r) { return std::clamp(std::log(r / 20.0) / tail_scale, 0.0, 1.0); };
  auto mix = [](const std::vector<double>& head, const std::vector<double>& tail, double t) {
    std::vector<double> w(head.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = head[i] * (1 - t) + tail[i] * t;
    return w;
  };
  std::vector<double> family_head, family_tail;
  for (const Family& f : Families()) {
    family_head.push_back(f.head_weight);
    family_tail.push_back(f.tail_weight);
  }
  auto generic_license = [&]() -> std::string {
    return GenericLicenses()[rng.Weighted(GenericLicenseWeights())];
  };
  std::vector<int> regular;  // universe indices of regular models, in rank order
  std::vector<int> bases;    // candidates to derive from (famous + regular)
  for (int i = 0; i < famous_count; ++i) bases.push_back(i);
  const int catalog_target = opt.models;
  while (static_cast<int>(models.size()) < catalog_target) {
    ++rank;
    const double tail = tail_of_rank(rank);
    Model m;
    const bool top_dev = rng.Chance(rank <= 300 ? 0.93 : 0.5);
    m.dev = pick_dev(top_dev);
    std::string name;
    const bool derive = rank > 10 && rng.Chance(0.15 + 0.35 * tail);
    if (derive) {
      // Derive from a popular model, keeping chains at most 4 links deep.
      int base = -1;
      for (int attempt = 0; attempt < 8 && base < 0; ++attempt) {
        const double u = rng.Uniform();
        const int b = bases[static_cast<size_t>(u * u * u * bases.size())];
        if (models[b].depth < 4) base = b;
      }
      if (base >= 0) {
        const Model& b = models[base];
        m.base = base;
        m.depth = b.depth + 1;
        const bool generative = b.pipeline == "text-generation" ||
                                b.pipeline == "image-text-to-text" ||
                                b.pipeline == "text-to-image" || b.parameters >= 1000000000;
        const auto relation = static_cast<Relation>(
            rng.Weighted(generative ? kGenerativeRelations : kEncoderRelations));
        // Quantizations come mostly from a few community accounts.
        if (relation == kQuantized && rng.Chance(0.7) && !intermediary_devs.empty()) {
          m.dev = rng.Pick(intermediary_devs);
        }
        // Not every model card says how it derives: those count as "derived".
        if (!rng.Chance(0.08)) m.relation = kRelationNames[relation];
        std::string base_name = b.id.substr(b.id.find('/') + 1);
        if (base_name.size() > 60) base_name = base_name.substr(0, 60);
        while (!base_name.empty() && (base_name.back() == '-' || base_name.back() == '.')) {
          base_name.pop_back();
        }
        name = absl::StrCat(base_name, "-", rng.Pick(kSuffixes[relation]));
        m.pipeline = b.pipeline;
        m.parameters = b.parameters;
        if (relation == kAdapter) {
          // An adapter's own weights are a few percent of its base's, and
          // PEFT repos often carry neither a parameter count nor a task.
          m.parameters = rng.Chance(0.5) ? 0
                                         : static_cast<int64_t>(static_cast<double>(b.parameters) *
                                                                (0.005 + 0.03 * rng.Uniform()));
          if (rng.Chance(0.4)) m.pipeline.clear();
        } else if (rng.Chance(0.03)) {
          m.pipeline.clear();
        }
        // Mostly the base's license (quantizers and fine-tuners keep it).
        const double u = rng.Uniform();
        m.license = u < 0.7 ? b.license : u < 0.92 ? generic_license() : std::string();
      }
    }
    if (name.empty()) {
      const Family& f = Families()[rng.Weighted(mix(family_head, family_tail, tail))];
      m.pipeline = f.pipeline;
      switch (f.sizing) {
        case Sizing::kLlm: {
          std::vector<double> w = mix(kLlmHeadWeights, kLlmTailWeights, tail);
          for (size_t i = 1; i < w.size(); ++i) {
            if (kLlmParams[i] > f.params) w[i] = 0;  // sizes the family does not come in
          }
          const size_t s = rng.Weighted(w);
          name = absl::StrCat(f.name, rng.Between(1, 3), "-", kLlmSizes[s]);
          m.parameters = static_cast<int64_t>(kLlmParams[s]);
          break;
        }
        case Sizing::kEncoder: {
          const size_t s = rng.Weighted(kEncoderWeights);
          name = absl::StrCat(f.name, "-", kEncoderSizes[s]);
          m.parameters = static_cast<int64_t>(f.params * kEncoderMul[s]);
          break;
        }
        case Sizing::kFixed:
          name = absl::StrCat(f.name, "-", rng.Pick(kFixedVersions));
          m.parameters = static_cast<int64_t>(f.params);
          break;
      }
      const std::string& variant = rng.Pick(kVariants);
      if (!variant.empty()) absl::StrAppend(&name, "-", variant);
      m.license =
          *f.license != '\0' && rng.Chance(0.8) ? std::string(f.license) : generic_license();
      // Llama 3.2 (1B, 3B) has a license of its own.
      if (m.license == "llama3.1" && m.parameters < 4000000000) m.license = "llama3.2";
      if (rng.Chance(0.01 + 0.07 * tail)) m.pipeline.clear();
      if (rng.Chance(0.02 + 0.08 * tail)) m.license.clear();
    }
    if (rng.Chance(0.02 + 0.06 * tail)) m.parameters = 0;  // unknown
    // License ids as some model cards spell them (hubmetrics lowercases them).
    if (rng.Chance(0.015)) {
      if (m.license == "apache-2.0") m.license = "Apache-2.0";
      if (m.license == "mit") m.license = "MIT";
    }
    fill_from_dev(m);
    m.id = UniqueId(devs[m.dev].ns, name);
    m.extra_fields = rng.Chance(0.02);
    m.weight = weight_of_rank(rank);
    // created_at: mostly old; some cross the 365-day edge during the sample,
    // some are created during it, a few are unknown.
    const double u = rng.Uniform();
    if (u < 0.03) {
      m.created.reset();
    } else if (u < 0.08) {
      m.created = start - absl::Hours(24 * rng.Between(300, 380)) +
                  absl::Seconds(rng.Below(kSecondsPerDay));
    } else if (u < 0.12) {
      m.created = start + absl::Hours(24 * rng.Between(0, opt.days - 1)) +
                  absl::Seconds(rng.Below(kSecondsPerDay));
    } else {
      m.created = random_old_created();
    }
    if (m.base >= 0 && m.created && models[m.base].created &&
        *m.created <= *models[m.base].created) {
      m.created = *models[m.base].created + absl::Hours(24 * rng.Between(1, 60));
    }
    const int idx = AddModel(std::move(m));
    regular.push_back(idx);
    bases.push_back(idx);
  }

  // 4. New hits: created during the sample, growing to the top within two weeks.
  const int hits = std::max(5, opt.models / 60);
  for (int h = 0; h < hits && !regular.empty(); ++h) {
    // The Hub's new hits are mostly small models too: a big one is redrawn
    // (up to five times).
    int pick = regular[rng.Below(regular.size())];
    for (int attempt = 0; attempt < 5 && models[pick].parameters >= 1000000000; ++attempt) {
      pick = regular[rng.Below(regular.size())];
    }
    Model& m = models[pick];
    if (m.trend != Model::kSteady) continue;
    m.trend = Model::kRamp;
    m.weight = weight_of_rank(static_cast<double>(rng.Between(2, 60)));
    m.created = start + absl::Hours(24 * rng.Between(0, std::max(1, opt.days * 2 / 3))) +
                absl::Seconds(rng.Below(kSecondsPerDay));
  }
  // Some of yesterday's popular models fade.
  for (int r : regular) {
    if (models[r].weight > weight_of_rank(150) && models[r].trend == Model::kSteady &&
        rng.Chance(0.1)) {
      models[r].trend = Model::kDecay;
    }
  }

  // 5. Models that get downloads but have no catalog record.
  const int missing = std::max(3, opt.models / 100);
  for (int i = 0; i < missing; ++i) {
    Model m;
    m.dev = pick_dev(false);
    m.id = UniqueId(devs[m.dev].ns,
                    absl::StrCat("private-", rng.Pick(kEncoderSizes), "-", rng.Between(1, 999)));
    m.in_catalog = false;
    m.weight = weight_of_rank(static_cast<double>(rng.Between(50, 2000)));
    AddModel(std::move(m));
  }

  for (Model& m : models) {
    if (m.base >= 0) m.base_id = models[m.base].id;
    if (m.created) {
      m.first_day = static_cast<int>(std::max<int64_t>(0, UtcDay(*m.created) - start_day));
    }
  }
  // Mostly no downloads before created_at: a few models are downloaded the day before.
  int early = 0;
  for (Model& m : models) {
    if (early < 3 && m.first_day > 0 && m.in_catalog) {
      --m.first_day;
      ++early;
    }
  }

  // Catalog records: every catalog model once, in shuffled order, then
  // re-published records that change developer, country, base_model or created_at.
  std::vector<int> order;
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i].in_catalog) order.push_back(static_cast<int>(i));
  }
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.Below(i)]);
  for (int i : order) catalog_records.push_back({models[i].id, ModelJson(models[i])});
  const int republish = std::max(10, opt.models / 30);
  for (int r = 0; r < republish; ++r) {
    const int i = order[rng.Below(order.size())];
    Model& m = models[i];
    if (m.special) continue;
    switch (rng.Below(5)) {
      case 0:
        m.developer = devs[pick_dev(rng.Chance(0.5))].ns;
        break;
      case 1:
        m.country = rng.Chance(0.2) ? "" : std::string(rng.Chance(0.5) ? "CN" : "Online");
        break;
      case 2: {
        const int b = order[rng.Below(order.size())];
        // Keep derivations acyclic here (the deliberate cycle is loop-lab's).
        int r2 = b;
        bool loops = false;
        for (int steps = 0; r2 >= 0 && steps < 64; ++steps) {
          if (r2 == i) loops = true;
          r2 = models[r2].base;
        }
        if (!loops && b != i && !models[b].special) {
          m.base = b;
          m.base_id = models[b].id;
          m.relation = rng.Chance(0.85) ? kRelationNames[kFinetune] : "";
        }
        break;
      }
      case 3:
        if (m.created) {
          m.created = *m.created + absl::Hours(24 * rng.Between(-200, 200));
        } else {
          m.created = random_old_created();
        }
        break;
      default:
        // base_relation stays: a stale relation without a base_model, which
        // still makes the model an original.
        m.base = -1;
        m.base_id.clear();
        m.created.reset();
        break;
    }
    catalog_records.push_back({m.id, ModelJson(m)});
  }
}

void TrafficGenerator::Impl::BuildEventPlan() {
  const int days = opt.days;
  day_cumulative.assign(days, {});
  for (int d = 0; d < days; ++d) {
    std::vector<double>& cum = day_cumulative[d];
    cum.resize(models.size());
    double total = 0;
    for (size_t i = 0; i < models.size(); ++i) {
      const Model& m = models[i];
      double w = 0;
      if (d >= m.first_day && m.weight > 0) {
        switch (m.trend) {
          case Model::kSteady:
            w = m.weight;
            break;
          case Model::kRamp:
            w = m.weight * std::min(1.0, (d - m.first_day + 1) / 14.0);
            break;
          case Model::kDecay:
            w = m.weight * std::exp(-d / 30.0);
            break;
        }
      }
      total += w;
      cum[i] = total;
    }
  }
  // Traffic grows 30% over the sample and dips on weekends.
  std::vector<double> factor(days);
  double sum = 0;
  for (int d = 0; d < days; ++d) {
    const int64_t weekday =
        ((start_day + d) % 7 + 7 + 3) % 7;  // 0 = Monday (1970-01-01 a Thursday)
    factor[d] = (1.0 + 0.3 * d / days) * (weekday >= 5 ? 0.75 : 1.0);
    sum += factor[d];
  }
  day_end.resize(days);
  double acc = 0;
  for (int d = 0; d < days; ++d) {
    acc += factor[d];
    day_end[d] = static_cast<int64_t>(std::llround(acc / sum * static_cast<double>(opt.events)));
  }
  day_end[days - 1] = opt.events;
  model_uniques.assign(models.size(), 0);
}

std::string TrafficGenerator::Impl::UserId(int user) const {
  const uint64_t h = Mix(opt.seed * 0x100000001b3ULL + static_cast<uint64_t>(user));
  // Account ids and anonymous fingerprints; both distinctive enough that a
  // grep of the state files cannot find one by accident.
  if (user % 5 == 4) return absl::StrFormat("anon-%016x", h);
  return absl::StrFormat("user-%012x", h & 0xffffffffffffULL);
}

std::string TrafficGenerator::Impl::FormatEventTime(absl::Time t) {
  const double u = event_rng.Uniform();
  if (u < 0.003) {
    // An offset other than Z: the same instant in UTC+02:00 or UTC-05:30.
    const bool east = event_rng.Chance(0.5);
    const absl::TimeZone tz = absl::FixedTimeZone(east ? 2 * 3600 : -(5 * 3600 + 1800));
    return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%S", t, tz), east ? "+02:00" : "-05:30");
  }
  if (u < 0.008) {
    const int64_t nanos = static_cast<int64_t>(event_rng.Below(1000000000));
    return absl::StrFormat("%s.%09dZ",
                           absl::FormatTime("%Y-%m-%dT%H:%M:%S", t, absl::UTCTimeZone()), nanos);
  }
  return FormatUtc(t);
}

void TrafficGenerator::Impl::Count(const EventRecord& e, int model, int user) {
  ++shape.events;
  if (e.kind != BadKind::kNone) {
    ++shape.bad_by_kind[static_cast<int>(e.kind)];
    return;
  }
  ++shape.good_events;
  const int64_t day = UtcDay(e.time);
  const uint64_t key = (static_cast<uint64_t>(model) << 44) | (static_cast<uint64_t>(user) << 20) |
                       static_cast<uint64_t>(day & 0xfffff);
  if (unique_keys.insert(key).second) {
    ++shape.unique_downloads;
    ++model_uniques[model];
  } else {
    ++shape.duplicates;
  }
}

EventRecord TrafficGenerator::Impl::GoodEvent(int64_t day_index, absl::Time t) {
  int model = -1;
  int user = -1;
  const int64_t day = UtcDay(t);
  // Repeats: the same user fetching the same model again the same day (CI
  // jobs, restarts, several processes).
  if (day_index != recent_day) {
    // Repeats come from today's picks, whatever the traffic density.
    recent.clear();
    recent_next = 0;
    recent_day = day_index;
  }
  if (!recent.empty() && event_rng.Chance(0.36)) {
    const Pick& p = recent[event_rng.Below(recent.size())];
    if (p.utc_day == day) {
      model = p.model;
      user = p.user;
    }
  }
  if (model < 0) {
    const std::vector<double>& cum = day_cumulative[day_index];
    const double x = event_rng.Uniform() * cum.back();
    model = static_cast<int>(std::upper_bound(cum.begin(), cum.end(), x) - cum.begin());
    model = std::min<int>(model, static_cast<int>(models.size()) - 1);
    // A few heavy users (bots, CI) and a long tail.
    const int heavy = std::max(1, opt.users / 100);
    user = event_rng.Chance(0.2) ? static_cast<int>(event_rng.Below(heavy))
                                 : static_cast<int>(event_rng.Below(opt.users));
    const Pick p{model, user, day};
    if (recent.size() < 1024) {
      recent.push_back(p);
    } else {
      recent[recent_next] = p;
      recent_next = (recent_next + 1) % recent.size();
    }
  }
  EventRecord e;
  e.kind = BadKind::kNone;
  e.model_id = models[model].id;
  e.user_id = UserId(user);
  e.time = t;
  e.json =
      absl::StrCat("{\"model_id\":", JsonString(e.model_id), ",\"user_id\":", JsonString(e.user_id),
                   ",\"time\":\"", FormatEventTime(t), "\"");
  if (event_rng.Chance(0.005)) {
    // Fields this version does not know: must be ignored.
    absl::StrAppend(&e.json,
                    ",\"client\":\"huggingface_hub/0.24.0\",\"meta\":{\"ci\":true,\"n\":[1,2.5]}");
  }
  e.json += "}";
  Count(e, model, user);
  return e;
}

EventRecord TrafficGenerator::Impl::BadEvent(absl::Time now) {
  EventRecord e;
  const std::string model = models[event_rng.Below(models.size())].id;
  const std::string user = UserId(static_cast<int>(event_rng.Below(opt.users)));
  const std::string time = FormatUtc(now);
  auto line = [](const std::string& m, const std::string& u, const std::string& t) {
    return absl::StrCat("{\"model_id\":", m, ",\"user_id\":", u, ",\"time\":", t, "}");
  };
  const std::string qm = JsonString(model), qu = JsonString(user), qt = JsonString(time);
  // The kinds malformed..too_late (too_large records are made by MakeTooLarge).
  e.kind = static_cast<BadKind>(1 + event_rng.Below(static_cast<uint64_t>(BadKind::kTooLate)));
  switch (e.kind) {
    case BadKind::kMalformed: {
      const std::string good = line(qm, qu, qt);
      switch (event_rng.Below(7)) {
        case 0:
          e.json = "{not json";
          break;
        case 1:  // a truncated line (any strict prefix of an object is invalid)
          e.json = good.substr(0, 1 + event_rng.Below(good.size() - 1));
          break;
        case 2:
          e.json = line("42", qu, qt);  // model_id of the wrong type
          break;
        case 3:
          e.json = line(qm, "[\"u\"]", qt);
          break;
        case 4:
          e.json = line(qm, qu, "1741091696");  // time as a number
          break;
        case 5:
          e.json = good + " trailing";
          break;
        default:
          e.json = line(qm, qu, "NaN");
          break;
      }
      break;
    }
    case BadKind::kNotObject: {
      static const std::vector<std::string> kNotObjects = {"[1,2]", "42",   "\"x\"",
                                                           "null",  "true", "[]"};
      e.json = event_rng.Pick(kNotObjects);
      break;
    }
    case BadKind::kMissingField: {
      const uint64_t which = event_rng.Below(3);
      const uint64_t how = event_rng.Below(3);  // absent, "", null
      std::vector<std::pair<std::string, std::string>> fields = {
          {"model_id", qm}, {"user_id", qu}, {"time", qt}};
      if (how == 0) {
        fields.erase(fields.begin() + static_cast<ptrdiff_t>(which));
      } else {
        fields[which].second = how == 1 ? "\"\"" : "null";
      }
      e.json = "{";
      for (size_t i = 0; i < fields.size(); ++i) {
        absl::StrAppend(&e.json, i ? "," : "", "\"", fields[i].first, "\":", fields[i].second);
      }
      e.json += "}";
      break;
    }
    case BadKind::kInvalidModelId: {
      static const std::vector<std::string> kBadIds = {"a--b/c",
                                                       "-x/y",
                                                       "a/b/c",
                                                       "x/y.git",
                                                       absl::StrCat("org/", std::string(97, 'a')),
                                                       "x/y..z",
                                                       "ns/",
                                                       "/name",
                                                       "has space/model",
                                                       "ns/name-",
                                                       "ns/\xc3\xa9"};
      e.json = line(JsonString(event_rng.Pick(kBadIds)), qu, qt);
      break;
    }
    case BadKind::kInvalidTime: {
      static const std::vector<std::string> kBadTimes = {
          "2025-13-01T00:00:00Z", "yesterday",
          "2025-03-04 12:00:00",  "2025-02-30T00:00:00Z",
          "2025-03-04T25:00:00Z", "2025-03-04T12:00:00",
          "1741091696",           "0000-01-01T00:00:00Z",
          "2025-3-4T12:00:00Z"};
      e.json = line(qm, qu, JsonString(event_rng.Pick(kBadTimes)));
      break;
    }
    case BadKind::kFuture: {
      e.json = line(qm, qu, JsonString(absl::StrCat("2099", time.substr(4))));
      break;
    }
    case BadKind::kTooLate: {
      const absl::Time late = now - absl::Hours(24 * event_rng.Between(5, 30)) -
                              absl::Seconds(event_rng.Below(kSecondsPerDay));
      e.json = line(qm, qu, JsonString(FormatUtc(late)));
      break;
    }
    case BadKind::kNone:
    case BadKind::kTooLarge:
      break;
  }
  Count(e, -1, -1);
  return e;
}

void TrafficGenerator::Impl::MakeTooLarge(EventRecord& e, absl::Time now) {
  --shape.bad_by_kind[static_cast<int>(e.kind)];
  ++shape.bad_by_kind[static_cast<int>(BadKind::kTooLarge)];
  --too_large_left;
  e.kind = BadKind::kTooLarge;
  e.model_id = models[size_rng.Below(models.size())].id;
  e.user_id = UserId(static_cast<int>(size_rng.Below(opt.users)));
  e.time = now;
  const size_t size = static_cast<size_t>(kTooLargeMinBytes) + size_rng.Below(1024);
  e.json =
      absl::StrCat("{\"model_id\":", JsonString(e.model_id), ",\"user_id\":", JsonString(e.user_id),
                   ",\"time\":\"", FormatUtc(now), "\",\"padding\":\"");
  const std::string tail = "\"}";
  e.json.append(size - e.json.size() - tail.size(), 'p');
  e.json += tail;
}

TrafficGenerator::TrafficGenerator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrafficGenerator::~TrafficGenerator() = default;

absl::StatusOr<std::unique_ptr<TrafficGenerator>> TrafficGenerator::Create(
    const TrafficOptions& options) {
  if (options.events < 0) return absl::InvalidArgumentError("--events must be >= 0");
  if (options.days < 1 || options.days > 3650) {
    return absl::InvalidArgumentError("--days must be in 1..3650");
  }
  if (options.models < 100 || options.models > 500000) {
    return absl::InvalidArgumentError("--models must be in 100..500000");
  }
  if (options.users < 100 || options.users > (1 << 24)) {
    return absl::InvalidArgumentError("--users must be in 100..16777216");
  }
  if (!(options.bad_fraction >= 0 && options.bad_fraction <= 0.5)) {
    return absl::InvalidArgumentError("--bad_fraction must be in [0, 0.5]");
  }
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  impl->start_day = UtcDay(options.start);
  Rng catalog_rng(Mix(options.seed ^ 0x636174616c6f67ULL));
  impl->event_rng = Rng(Mix(options.seed ^ 0x6576656e7473ULL));
  impl->size_rng = Rng(Mix(options.seed ^ 0x746f6f6c61726765ULL));
  impl->BuildCatalog(catalog_rng);
  impl->BuildEventPlan();
  impl->shape.catalog_records = static_cast<int64_t>(impl->catalog_records.size());
  return std::unique_ptr<TrafficGenerator>(new TrafficGenerator(std::move(impl)));
}

std::optional<ModelRecord> TrafficGenerator::NextModel() {
  if (impl_->next_model >= impl_->catalog_records.size()) return std::nullopt;
  return impl_->catalog_records[impl_->next_model++];
}

std::optional<EventRecord> TrafficGenerator::NextEvent() {
  Impl& s = *impl_;
  if (s.next_event >= s.opt.events) return std::nullopt;
  const int64_t i = s.next_event++;
  const int64_t day_index =
      std::upper_bound(s.day_end.begin(), s.day_end.end(), i) - s.day_end.begin();
  const int64_t day_begin = day_index == 0 ? 0 : s.day_end[day_index - 1];
  const int64_t in_day = s.day_end[day_index] - day_begin;
  // Evenly spread through the day, with a few minutes of jitter on a quarter
  // of the events, so that some arrive slightly out of order.
  const double pos =
      (static_cast<double>(i - day_begin) + s.event_rng.Uniform()) / static_cast<double>(in_day);
  int64_t secs = (s.start_day + day_index) * kSecondsPerDay +
                 static_cast<int64_t>(pos * static_cast<double>(kSecondsPerDay));
  const absl::Time now = absl::FromUnixSeconds(secs);
  if (s.event_rng.Chance(0.25)) secs += s.event_rng.Between(-600, 600);
  const absl::Time t = absl::FromUnixSeconds(secs);
  // Bad records only after the first events, so that the watermark is set.
  if (i >= 50 && s.event_rng.Chance(s.opt.bad_fraction)) {
    EventRecord e = s.BadEvent(now);
    if (s.too_large_left > 0 && s.size_rng.Chance(1.0 / 8)) s.MakeTooLarge(e, now);
    return e;
  }
  return s.GoodEvent(day_index, t);
}

TrafficShape TrafficGenerator::Shape() const {
  const Impl& s = *impl_;
  TrafficShape shape = s.shape;
  absl::flat_hash_map<std::string, int64_t> by_dev;
  absl::flat_hash_map<std::string, int64_t> by_size, by_modality, by_task, by_license,
      by_derivation;
  std::vector<int64_t> counts;
  int64_t known_params = 0, under_200m = 0, under_500m = 0, under_1b = 0;
  for (size_t i = 0; i < s.models.size(); ++i) {
    const Model& m = s.models[i];
    const int64_t c = s.model_uniques[i];
    if (m.in_catalog) ++shape.catalog_models;
    if (!m.in_catalog && c == 0) continue;
    counts.push_back(c);
    if (c == 0) continue;
    ++shape.models_with_downloads;
    std::string dev = m.in_catalog && !m.developer.empty()  ? m.developer
                      : m.id.find('/') != std::string::npos ? m.id.substr(0, m.id.find('/'))
                                                            : m.id;
    by_dev[dev] += c;
    if (!m.in_catalog) {
      for (auto* level : {&by_size, &by_modality, &by_task, &by_license, &by_derivation}) {
        (*level)["unknown"] += c;
      }
      continue;
    }
    by_size[std::string(SizeBucket(m.parameters))] += c;
    by_modality[std::string(ModalityOf(m.pipeline))] += c;
    by_task[m.pipeline.empty() ? "unknown" : m.pipeline] += c;
    by_license[m.license.empty() ? "unknown" : absl::AsciiStrToLower(m.license)] += c;
    by_derivation[m.base_id.empty()    ? "original"
                  : m.relation.empty() ? "derived"
                                       : m.relation] += c;
    if (m.parameters > 0) {
      known_params += c;
      under_200m += m.parameters < 200000000 ? c : 0;
      under_500m += m.parameters < 500000000 ? c : 0;
      under_1b += m.parameters < 1000000000 ? c : 0;
    }
  }
  std::sort(counts.begin(), counts.end(), std::greater<>());
  std::vector<int64_t> dev_counts;
  for (const auto& [dev, c] : by_dev) dev_counts.push_back(c);
  std::sort(dev_counts.begin(), dev_counts.end(), std::greater<>());
  const double total = static_cast<double>(shape.unique_downloads);
  auto top = [&](const std::vector<int64_t>& v, size_t k) {
    int64_t sum = 0;
    for (size_t i = 0; i < v.size() && i < k; ++i) sum += v[i];
    return total == 0 ? 0.0 : static_cast<double>(sum) / total;
  };
  shape.top200_model_share = top(counts, 200);
  shape.top50_developer_share = top(dev_counts, 50);
  if (!counts.empty()) {
    int64_t under = 0;
    for (int64_t c : counts) under += c < 200 ? 1 : 0;
    shape.fraction_under_200 = static_cast<double>(under) / static_cast<double>(counts.size());
    shape.median_model_downloads = counts[counts.size() / 2];
  }
  auto of_known = [&](int64_t n) {
    return known_params == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(known_params);
  };
  shape.under_200m_share = of_known(under_200m);
  shape.under_500m_share = of_known(under_500m);
  shape.under_1b_share = of_known(under_1b);
  // Largest first, ties by value (byte order), like the service's rankings.
  auto shares = [&](const absl::flat_hash_map<std::string, int64_t>& by) {
    std::vector<std::pair<std::string, int64_t>> v(by.begin(), by.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    TrafficShape::Shares out;
    for (const auto& [value, c] : v) out.emplace_back(value, static_cast<double>(c) / total);
    return out;
  };
  for (std::string_view bucket : kSizeBuckets) {
    const auto it = by_size.find(std::string(bucket));
    if (it != by_size.end()) {
      shape.by_size.emplace_back(std::string(bucket), static_cast<double>(it->second) / total);
    }
  }
  shape.by_modality = shares(by_modality);
  shape.by_task = shares(by_task);
  shape.by_license = shares(by_license);
  shape.by_derivation = shares(by_derivation);
  return shape;
}

namespace {

// "a 50.1%  b 20.0%  ...", at most `max` values, the rest summed as "others".
std::string FormatShares(const TrafficShape::Shares& shares, size_t max) {
  std::vector<std::string> parts;
  double rest = 0;
  for (size_t i = 0; i < shares.size(); ++i) {
    if (i < max) {
      parts.push_back(absl::StrFormat("%s %.1f%%", shares[i].first, 100 * shares[i].second));
    } else {
      rest += shares[i].second;
    }
  }
  if (shares.size() > max) parts.push_back(absl::StrFormat("(others) %.1f%%", 100 * rest));
  return absl::StrJoin(parts, "  ");
}

}  // namespace

std::string FormatShape(const TrafficShape& s) {
  std::string out;
  absl::StrAppendFormat(&out, "events:                   %d (good %d, bad %d)\n", s.events,
                        s.good_events, s.events - s.good_events);
  absl::StrAppendFormat(&out, "unique downloads:         %d\n", s.unique_downloads);
  absl::StrAppendFormat(&out, "duplicates:               %d (%.1f%% of good events)\n",
                        s.duplicates, 100 * s.duplicate_fraction());
  absl::StrAppendFormat(&out, "catalog:                  %d models, %d records\n", s.catalog_models,
                        s.catalog_records);
  absl::StrAppendFormat(&out, "models with downloads:    %d\n", s.models_with_downloads);
  absl::StrAppendFormat(&out, "top 200 models share:     %.1f%% (Hub: ~50%%)\n",
                        100 * s.top200_model_share);
  absl::StrAppendFormat(&out, "top 50 developers share:  %.1f%% (Hub: ~80%%)\n",
                        100 * s.top50_developer_share);
  absl::StrAppendFormat(&out,
                        "models with < 200 downloads: %.1f%% (median %d; Hub: ~50%% at full "
                        "scale)\n",
                        100 * s.fraction_under_200, s.median_model_downloads);
  absl::StrAppendFormat(&out,
                        "downloads of known size:  < 200M %.1f%% (Hub: ~70%%), < 500M %.1f%% "
                        "(~86%%), < 1B %.1f%% (~92%%)\n",
                        100 * s.under_200m_share, 100 * s.under_500m_share, 100 * s.under_1b_share);
  // The rest are download-weighted shares by hubmetrics' levels.
  absl::StrAppend(&out, "downloads by size:        ", FormatShares(s.by_size, 8), "\n");
  absl::StrAppend(&out, "downloads by modality:    ", FormatShares(s.by_modality, 8), "\n");
  absl::StrAppend(&out, "downloads by task:        ", FormatShares(s.by_task, 8), "\n");
  absl::StrAppend(&out, "downloads by license:     ", FormatShares(s.by_license, 10), "\n");
  absl::StrAppend(&out, "downloads by derivation:  ", FormatShares(s.by_derivation, 8), "\n");
  std::vector<std::string> bad;
  for (int k = 1; k < kNumBadKinds; ++k) {
    bad.push_back(
        absl::StrCat(std::string(BadKindName(static_cast<BadKind>(k))), "=", s.bad_by_kind[k]));
  }
  absl::StrAppend(&out, "bad records by reason:    ", absl::StrJoin(bad, " "), "\n");
  return out;
}

}  // namespace hubmetrics::loadgen
