#include "lib/ingest/file_source.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"

namespace hubmetrics {
namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<FILE, FileCloser>;

absl::StatusOr<File> OpenForRead(const std::string& path, std::string* absolute) {
  std::error_code ec;
  *absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  return f;
}

std::string_view TrimLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.remove_suffix(1);
  }
  return line;
}

bool Blank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

void LoggingDeadLetterSink::Reject(const SourceRecord& record, const Rejection& rejection) {
  ++rejected_;
  if (rejected_ <= static_cast<uint64_t>(max_logged_)) {
    LogWarning("rejected %s%s at offset %d: %s (%s)%s", record.source,
               record.partition >= 0 ? absl::StrCat(" partition ", record.partition) : "",
               record.offset, RejectReasonName(rejection.reason), rejection.detail,
               rejected_ == static_cast<uint64_t>(max_logged_)
                   ? "; further rejections are counted, "
                     "not logged one by one"
                   : "");
  } else if (rejected_ % 10000 == 0) {
    LogWarning("%d records rejected so far (see GetIngestStats for the reasons)", rejected_);
  }
}

namespace {

// Reads `f` from `offset` and submits its lines in batches.
absl::Status SubmitLines(Pipeline* pipeline, FILE* f, const std::string& path,
                         const std::string& key, int64_t offset, const std::atomic<bool>& stop,
                         const FileSourceOptions& options, LoggingDeadLetterSink* dead_letters) {
  std::string buffer;
  std::vector<char> chunk(1 << 20);
  std::vector<SourceRecord> batch;
  bool eof = false;
  while (!eof && !stop.load()) {
    const size_t n = std::fread(chunk.data(), 1, chunk.size(), f);
    if (n < chunk.size()) {
      if (std::ferror(f)) {
        return absl::DataLossError(absl::StrCat("reading ", path, ": ", std::strerror(errno)));
      }
      eof = true;
    }
    buffer.append(chunk.data(), n);
    // Split complete lines (and, at EOF, a last line without newline) into batches.
    size_t start = 0;
    int64_t batch_end_offset = offset;
    batch.clear();
    auto flush = [&]() -> absl::Status {
      SourceOffset position{key, batch_end_offset};
      // Pipelined: the batch is applied while the next one is read and decoded.
      RETURN_IF_ERROR(
          pipeline->SubmitEvents(batch, EventFormat::kJson, {&position, 1}, dead_letters));
      batch.clear();
      return absl::OkStatus();
    };
    while (true) {
      size_t nl = buffer.find('\n', start);
      if (nl == std::string::npos) {
        if (!eof || start >= buffer.size()) break;
        nl = buffer.size();
      }
      std::string_view line(buffer.data() + start, nl - start);
      const int64_t line_offset = offset + static_cast<int64_t>(start);
      batch_end_offset = offset + static_cast<int64_t>(std::min(nl + 1, buffer.size()));
      if (!Blank(line)) batch.push_back(SourceRecord{TrimLine(line), path, -1, line_offset});
      start = nl + 1;
      if (batch.size() >= options.batch_lines) RETURN_IF_ERROR(flush());
      if (start > buffer.size()) break;
    }
    // Blank-only tails still advance the stored offset.
    if (!batch.empty() || batch_end_offset != offset) RETURN_IF_ERROR(flush());
    const size_t consumed = std::min(start, buffer.size());
    offset += static_cast<int64_t>(consumed);
    buffer.erase(0, consumed);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status IngestEventsFile(Pipeline* pipeline, const std::string& path,
                              const std::atomic<bool>& stop, const FileSourceOptions& options) {
  std::string absolute;
  ASSIGN_OR_RETURN(File f, OpenForRead(path, &absolute));
  const std::string key = absl::StrCat("file:", absolute);
  const int64_t offset = pipeline->StoredOffset(key).value_or(0);
  if (offset > 0 && std::fseek(f.get(), offset, SEEK_SET) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot seek ", path, " to stored offset ",
                                                      offset, ": ", std::strerror(errno)));
  }
  if (offset > 0) LogInfo("resuming %s at byte %d", path, offset);
  LoggingDeadLetterSink dead_letters;
  const absl::Status read =
      SubmitLines(pipeline, f.get(), path, key, offset, stop, options, &dead_letters);
  // Submitted batches use dead_letters: on every way out, wait for them to
  // be committed.
  const absl::Status drained = pipeline->Drain();
  return read.ok() ? drained : read;
}

absl::Status LoadModelsFile(Pipeline* pipeline, const std::string& path) {
  std::string absolute;
  ASSIGN_OR_RETURN(File f, OpenForRead(path, &absolute));
  std::vector<std::string> lines;
  char* raw = nullptr;
  size_t cap = 0;
  ssize_t len;
  // A digest of the whole file, chained line by line (SipHash-2-4 under a
  // fixed key: stable across runs, unlike absl::Hash).
  constexpr std::array<uint8_t, 16> kDigestKey = {'h', 'u', 'b', 'm', 'e', 't', 'r', 'i',
                                                  'c', 's', '-', 'm', 'o', 'd', 'e', 'l'};
  uint64_t digest = SipHash24(kDigestKey, "");
  while ((len = getline(&raw, &cap, f.get())) >= 0) {
    lines.emplace_back(raw, static_cast<size_t>(len));
    std::string chained(reinterpret_cast<const char*>(&digest), sizeof digest);
    chained += lines.back();
    digest = SipHash24(kDigestKey, chained);
  }
  std::free(raw);
  if (std::ferror(f.get())) {
    return absl::DataLossError(absl::StrCat("reading ", path, ": ", std::strerror(errno)));
  }
  // The digest is stored with the catalog it produced: a restart on the same
  // file re-applies nothing and counts its bad lines no second time.
  const SourceOffset applied{absl::StrCat("models_file:", absolute), static_cast<int64_t>(digest)};
  if (pipeline->StoredOffset(applied.source_key) == applied.next_offset) {
    LogInfo("models file %s: unchanged since it was last applied", path);
    return absl::OkStatus();
  }
  // Like a compacted topic, the last record of a model is the one that
  // counts: the ones before it are never applied, so they cannot re-credit.
  std::vector<CatalogRecord> records;
  absl::flat_hash_map<std::string, size_t> last_of_model;
  int64_t bad = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view text = TrimLine(lines[i]);
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    text = TrimLine(text);
    if (Blank(text)) continue;
    absl::StatusOr<v1::ModelInfo> m = DecodeJsonModel(text);
    if (!m.ok()) {
      ++bad;
      pipeline->CountCatalogRejected();
      LogWarning("%s line %d: catalog record rejected: %s", path, i + 1, m.status().message());
      continue;
    }
    auto [it, inserted] = last_of_model.try_emplace(m->model_id(), records.size());
    if (inserted) {
      records.push_back(CatalogRecord{m->model_id(), std::move(*m)});
    } else {
      records[it->second].info = std::move(*m);
    }
  }
  RETURN_IF_ERROR(pipeline->ApplyCatalog(records, {&applied, 1}));
  LogInfo("models file %s: %d models, %d records rejected", path, records.size(), bad);
  return absl::OkStatus();
}

}  // namespace hubmetrics
