#include "lib/catalog/catalog.h"

#include <algorithm>

#include "absl/time/time.h"

namespace hubmetrics {

ModelIdx ModelRegistry::Intern(std::string_view model_id) {
  if (auto it = index_.find(model_id); it != index_.end()) return it->second;
  const ModelIdx idx = static_cast<ModelIdx>(names_.size());
  names_.emplace_back(model_id);
  index_.emplace(std::string_view(names_.back()), idx);
  return idx;
}

std::optional<ModelIdx> ModelRegistry::Find(std::string_view model_id) const {
  if (auto it = index_.find(model_id); it != index_.end()) return it->second;
  return std::nullopt;
}

void Catalog::Unlink(ModelIdx m) {
  if (m >= records_.size() || !records_[m]) return;
  if (records_[m]->base) {
    auto it = children_.find(*records_[m]->base);
    if (it != children_.end()) {
      it->second.erase(m);
      if (it->second.empty()) children_.erase(it);
    }
  }
  records_[m].reset();
  --records_count_;
}

void Catalog::Put(const v1::ModelInfo& info) {
  ++version_;
  const ModelIdx m = registry_->Intern(info.model_id());
  Unlink(m);
  Record r;
  r.info = info;
  if (!info.base_model().empty()) {
    r.base = registry_->Intern(info.base_model());
    children_[*r.base].insert(m);
  }
  if (info.has_created_at()) {
    r.created_day = DayOf(absl::FromUnixSeconds(info.created_at().seconds()) +
                          absl::Nanoseconds(info.created_at().nanos()));
  }
  if (records_.size() <= m) records_.resize(m + 1);
  records_[m] = std::move(r);
  ++records_count_;
}

void Catalog::Remove(ModelIdx m) {
  ++version_;
  Unlink(m);
}

const v1::ModelInfo* Catalog::Find(ModelIdx m) const {
  if (m >= records_.size() || !records_[m]) return nullptr;
  return &records_[m]->info;
}

std::vector<ModelIdx> Catalog::AffectedBy(ModelIdx m) const {
  std::vector<ModelIdx> out = {m};
  absl::flat_hash_set<ModelIdx> seen = {m};
  for (size_t i = 0; i < out.size(); ++i) {
    auto it = children_.find(out[i]);
    if (it == children_.end()) continue;
    for (ModelIdx child : it->second) {
      if (seen.insert(child).second) out.push_back(child);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ModelIdx Catalog::Root(ModelIdx m) const {
  ModelIdx r = m;
  absl::flat_hash_set<ModelIdx> visited = {m};
  for (int links = 0;; ++links) {
    if (r >= records_.size() || !records_[r] || !records_[r]->base) return r;
    if (links == kMaxAttributionDepth) return m;  // a 33rd link would be needed
    const ModelIdx next = *records_[r]->base;
    if (!visited.insert(next).second) return m;  // cycle
    r = next;
  }
}

std::string Catalog::Entity(Level level, ModelIdx m) const {
  return EntityOf(level, registry_->Name(m), Find(m));
}

std::optional<Day> Catalog::CreatedDay(ModelIdx m) const {
  if (m >= records_.size() || !records_[m]) return std::nullopt;
  return records_[m]->created_day;
}

}  // namespace hubmetrics
