#include "lib/unique/partition_deduper.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace hubmetrics {
namespace {

// The stored watermark of `start`, if any event was accepted before.
std::optional<absl::Time> StoredWatermark(const v1::PartitionProgress& start) {
  if (!start.has_watermark_micros()) return std::nullopt;
  return FromUnixMicros(start.watermark_micros());
}

EventValidator MakeValidator(const PartitionDeduperOptions& options,
                             const v1::PartitionProgress& start, const Clock* clock) {
  const std::optional<absl::Time> watermark = StoredWatermark(start);
  absl::flat_hash_map<int32_t, absl::Time> partitions;
  if (watermark) partitions.emplace(start.partition(), *watermark);
  EventValidator validator(options.validator, clock, watermark, std::move(partitions));
  // Until the partition's first event there is no horizon: nothing is too_late.
  const int32_t partition = start.partition();
  validator.ExpectPartitions({&partition, 1});
  return validator;
}

// The counts per reason of `progress`, in reason order, whatever order or
// subset of reasons it was stored with.
std::array<uint64_t, kNumRejectReasons> RejectedByReason(const v1::PartitionProgress& progress) {
  std::array<uint64_t, kNumRejectReasons> counts{};
  for (const v1::RejectCount& rc : progress.rejected_by_reason()) {
    if (const std::optional<RejectReason> r = RejectReasonFromName(rc.reason())) {
      counts[static_cast<size_t>(*r)] += rc.count();
    }
  }
  return counts;
}

}  // namespace

PartitionDeduper::PartitionDeduper(PartitionDeduperOptions options, v1::PartitionProgress start,
                                   const UserHasher* hasher, const Clock* clock)
    : options_(options),
      hasher_(hasher),
      clock_(clock),
      progress_(std::move(start)),
      live_from_(progress_.next_offset()),
      validator_(MakeValidator(options_, progress_, clock)),
      rebuild_floor_(std::numeric_limits<Day>::max()),
      rebuild_watermark_(StoredWatermark(progress_)) {
  if (rebuild_watermark_) {
    rebuild_floor_ = DayOf(*rebuild_watermark_) - options_.validator.lateness_days;
  }
}

std::optional<absl::Time> PartitionDeduper::RebuildFrom() const {
  if (!rebuild_watermark_) return std::nullopt;
  // An event of the oldest open day may carry a Kafka timestamp up to
  // max_future_skew before its event time.
  return StartOfDay(rebuild_floor_) - options_.validator.max_future_skew;
}

PartitionDeduper::Output PartitionDeduper::Process(std::span<const PartitionRecord> records) {
  Output out;
  // The `future` check's wall clock, once per call: the records were all
  // read by now.
  const absl::Time now = clock_->Now();
  const int32_t partition = progress_.partition();
  // Every model id interned passed IsValidModelId before; the registry
  // answers those and says their index in the same lookup.
  constexpr ModelIdx kNotKnown = std::numeric_limits<ModelIdx>::max();
  ModelIdx known = kNotKnown;
  auto is_valid_model_id = [&](std::string_view id) {
    if (const std::optional<ModelIdx> m = models_.Find(id)) {
      known = *m;
      return true;
    }
    known = kNotKnown;
    return IsValidModelId(id);
  };

  // Rebuilt triples come first (offsets ascend), then the live ones.
  std::vector<UniqueDownloadCounter::Triple> triples;
  triples.reserve(records.size());
  size_t rebuilt_triples = 0;
  uint64_t live_records = 0;
  std::array<uint64_t, kNumRejectReasons> rejected_now{};
  for (size_t i = 0; i < records.size(); ++i) {
    const PartitionRecord& record = records[i];
    const bool live = record.offset >= live_from_;
    if (live) {
      ++live_records;
      progress_.set_next_offset(record.offset + 1);
    }
    std::optional<Rejection> rejection =
        CheckEventSize(record.value.size(), options_.max_event_bytes);
    std::optional<DecodedEventView> event;
    if (!rejection) {
      DecodeViewResult r = options_.format == EventFormat::kJson
                               ? DecodeJsonEventView(record.value, is_valid_model_id)
                               : DecodeBinaryEventView(record.value, is_valid_model_id);
      rejection = std::move(r.rejection);
      event = r.event;
    }
    if (!live) {
      // What the original owner accepted of the open days: too_late events
      // are all before the floor (the watermark only grows), and events past
      // the watermark were never accepted. A `future` event the watermark
      // passed later cannot be told apart here and is counted.
      if (rejection || !rebuild_watermark_ || event->time > *rebuild_watermark_ ||
          DayOf(event->time) < rebuild_floor_) {
        continue;
      }
      ++rebuilt_triples;
    } else if (!rejection) {
      rejection = validator_.Accept(event->time, partition, now);
    }
    if (rejection) {
      ++rejected_now[static_cast<size_t>(rejection->reason)];
      out.rejected.emplace_back(i, std::move(*rejection));
      continue;
    }
    const ModelIdx model = known != kNotKnown ? known : models_.Intern(event->model_id);
    triples.push_back({DayOf(event->time), model, hasher_->Hash(event->user_id)});
  }

  std::vector<uint8_t> fresh;
  dedup_.InsertBatch(triples, &fresh);
  absl::flat_hash_set<std::pair<ModelIdx, Day>> changed;
  uint64_t unique = 0;
  for (size_t j = 0; j < triples.size(); ++j) {
    if (!fresh[j]) continue;
    const std::pair<ModelIdx, Day> model_day{triples[j].model, triples[j].day};
    ++counts_[model_day];
    if (j >= rebuilt_triples) {
      ++unique;
      changed.insert(model_day);
    }
  }
  // Before the closed days go: a day closed by this very call still tells
  // its final count.
  out.counts.reserve(changed.size());
  for (const auto& model_day : changed) {
    out.counts.push_back({.partition = partition,
                          .day = model_day.second,
                          .model_id = models_.Name(model_day.first),
                          .unique_downloads = counts_[model_day]});
  }
  std::sort(out.counts.begin(), out.counts.end(), [](const auto& a, const auto& b) {
    return std::tie(a.day, a.model_id) < std::tie(b.day, b.model_id);
  });

  if (live_records > 0) {
    const uint64_t accepted = triples.size() - rebuilt_triples;
    progress_.set_events_read(progress_.events_read() + live_records);
    progress_.set_unique_downloads(progress_.unique_downloads() + unique);
    progress_.set_duplicates(progress_.duplicates() + (accepted - unique));
    progress_.set_rejected(progress_.rejected() + out.rejected.size());
    std::array<uint64_t, kNumRejectReasons> by_reason = RejectedByReason(progress_);
    progress_.clear_rejected_by_reason();
    for (int r = 0; r < kNumRejectReasons; ++r) {
      v1::RejectCount* rc = progress_.add_rejected_by_reason();
      rc->set_reason(std::string(RejectReasonName(static_cast<RejectReason>(r))));
      rc->set_count(by_reason[r] + rejected_now[r]);
    }
    const auto it = validator_.partition_watermarks().find(partition);
    if (it != validator_.partition_watermarks().end() && it->second != absl::InfinitePast()) {
      progress_.set_watermark_micros(::hubmetrics::ToUnixMicros(it->second));
    }
  }
  DropClosedDays();
  return out;
}

void PartitionDeduper::CountLostToRetention(uint64_t n) {
  progress_.set_events_lost_to_retention(progress_.events_lost_to_retention() + n);
}

void PartitionDeduper::DropClosedDays() {
  const Day oldest = validator_.OldestAcceptedDay();
  if (oldest <= dropped_before_) return;
  dedup_.DropDaysBefore(oldest);
  absl::erase_if(counts_, [oldest](const auto& entry) { return entry.first.second < oldest; });
  dropped_before_ = oldest;
}

}  // namespace hubmetrics
