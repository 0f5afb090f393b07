#include "lib/unique/unique_record.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

constexpr char kCountKind = 'u';
constexpr char kProgressKind = 'p';

void AppendPartition(std::string* out, int32_t partition) {
  const auto u = static_cast<uint32_t>(partition);
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((u >> shift) & 0xff));
}

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int32_t ReadPartition(std::string_view b) {
  uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u = (u << 8) | static_cast<uint8_t>(b[i]);
  return static_cast<int32_t>(u);
}

}  // namespace

std::string UniqueCountKey(int32_t partition, Day day, std::string_view model_id) {
  std::string k;
  k.reserve(9 + model_id.size());
  k.push_back(kCountKind);
  AppendPartition(&k, partition);
  AppendSortableDay(&k, day);
  k.append(model_id);
  return k;
}

std::string ProgressKey(int32_t partition) {
  std::string k(1, kProgressKind);
  AppendPartition(&k, partition);
  return k;
}

std::string EncodeUniqueCountValue(uint64_t unique_downloads) {
  v1::UniqueCount c;
  c.set_unique_downloads(unique_downloads);
  return c.SerializeAsString();
}

absl::StatusOr<UniqueTopicRecord> DecodeUniqueTopicRecord(std::string_view key,
                                                          std::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("unique topic record without a key");
  if (key[0] == kCountKind) {
    if (key.size() < 9) {
      return absl::InvalidArgumentError(
          absl::StrCat("unique count key of ", key.size(), " bytes; at least 9 expected"));
    }
    v1::UniqueCount c;
    if (!c.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return absl::InvalidArgumentError("unique count value does not parse as UniqueCount");
    }
    if (!IsValidModelId(key.substr(9))) {
      return absl::InvalidArgumentError("unique count key with an invalid model id");
    }
    return UniqueCountUpdate{.partition = ReadPartition(key.substr(1, 4)),
                             .day = ReadSortableDay(key.substr(5, 4)),
                             .model_id = std::string(key.substr(9)),
                             .unique_downloads = c.unique_downloads()};
  }
  if (key[0] == kProgressKind) {
    if (key.size() != 5) {
      return absl::InvalidArgumentError(
          absl::StrCat("progress key of ", key.size(), " bytes; 5 expected"));
    }
    v1::PartitionProgress p;
    if (!p.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return absl::InvalidArgumentError("progress value does not parse as PartitionProgress");
    }
    if (p.partition() != ReadPartition(key.substr(1))) {
      return absl::InvalidArgumentError(absl::StrCat("progress value of partition ", p.partition(),
                                                     " under the key of partition ",
                                                     ReadPartition(key.substr(1))));
    }
    return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unique topic key of unknown kind 0x", absl::Hex(static_cast<uint8_t>(key[0]))));
}

std::string ProgressToOffsetMetadata(const v1::PartitionProgress& progress) {
  return absl::StrCat("hm1:", absl::Base64Escape(progress.SerializeAsString()));
}

absl::StatusOr<v1::PartitionProgress> ProgressFromOffsetMetadata(std::string_view metadata) {
  constexpr std::string_view kPrefix = "hm1:";
  std::string bytes;
  v1::PartitionProgress p;
  if (metadata.substr(0, kPrefix.size()) != kPrefix ||
      !absl::Base64Unescape(AbslView(metadata.substr(kPrefix.size())), &bytes) ||
      !p.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        "the committed offset's metadata is not hubmetrics' partition progress (was the group "
        "committed by another program?)");
  }
  return p;
}

}  // namespace hubmetrics
