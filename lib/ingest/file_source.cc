#include "lib/ingest/file_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/aggregate/lane_worker.h"
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

// Memory that holds the lines of one batch: a LineReader's buffer, handed
// over with them (LineReader::TakeLines) and given back for reuse.
struct LineBuffer {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
};

// Reads a file line by line in fixed chunks, keeping at most `keep` bytes of any
// line: the rest of an over-long line is skipped while it streams by, so memory
// stays at the lines not yet released, a chunk and `keep`, whatever the file
// holds (a 1 GB line included). Lines are handed out as positions in the buffer
// (Text() views them until the next Refill()), valid until Release() (TakeLines() hands the buffer
// over with them).
class LineReader {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  struct Line {
    // Where the line starts in the buffer, and how many of its bytes are kept:
    // the line without its newline, or its first `keep` bytes when longer.
    size_t pos;
    size_t kept;
    // The line's whole length in bytes, without its newline.
    uint64_t size;
    // File offsets of its first byte and of the byte after its newline (or
    // after its last byte, for a last line without one).
    int64_t offset;
    int64_t end;
  };

  LineReader(FILE* f, int64_t offset, size_t keep) : f_(f), keep_(keep), offset_(offset) {}

  // Shortens a partial line longer than `keep`, then appends the next chunk
  // to the buffer (lines handed out keep their positions). DataLoss on a read
  // error.
  absl::Status Refill(const std::string& path) {
    // What follows the lines handed out is the start of a line whose newline
    // is still to come.
    if (size_ - start_ > keep_) {
      dropped_ += static_cast<int64_t>(size_ - start_ - keep_);
      size_ = start_ + keep_;
    }
    if (eof_) return absl::OkStatus();
    if (capacity_ - size_ < kChunkBytes) {
      // Twice what it must hold, and not zero-filled (as a std::string's
      // resize would be, at every read).
      capacity_ = 2 * (size_ + kChunkBytes);
      std::unique_ptr<char[]> grown(new char[capacity_]);
      if (size_ > 0) std::memcpy(grown.get(), buffer_.get(), size_);
      buffer_ = std::move(grown);
    }
    const size_t n = std::fread(buffer_.get() + size_, 1, kChunkBytes, f_);
    size_ += n;
    if (n < kChunkBytes) {
      if (std::ferror(f_)) {
        return absl::DataLossError(absl::StrCat("reading ", path, ": ", std::strerror(errno)));
      }
      eof_ = true;
    }
    return absl::OkStatus();
  }

  // The next line read whole, or nullopt when the buffer holds no more
  // complete line (then Refill(), unless eof()). At the end of the file, a
  // last line without a newline counts as a line.
  std::optional<Line> Next() {
    if (start_ >= size_) return std::nullopt;
    const char* const data = buffer_.get();
    const void* found = std::memchr(data + start_, '\n', size_ - start_);
    if (found == nullptr && !eof_) return std::nullopt;
    const size_t nl =
        found == nullptr ? size_ : static_cast<size_t>(static_cast<const char*>(found) - data);
    // Bytes skipped so far belong to the line at start_: the file offset of
    // buffer_[i] is offset_ + i up to its kept part, offset_ + dropped_ + i after it.
    const size_t in_buffer = nl - start_;
    Line line{start_, std::min(in_buffer, keep_),
              static_cast<uint64_t>(in_buffer) + static_cast<uint64_t>(dropped_),
              offset_ + static_cast<int64_t>(start_),
              offset_ + dropped_ + static_cast<int64_t>(std::min(nl + 1, size_))};
    offset_ += dropped_;
    dropped_ = 0;
    start_ = std::min(nl + 1, size_);
    return line;
  }

  // The buffer the lines handed out are in (a Refill() may move it).
  const char* data() const { return buffer_.get(); }
  // A line's kept bytes; valid until the next Refill() or Release().
  std::string_view Text(const Line& line) const {
    return std::string_view(buffer_.get() + line.pos, line.kept);
  }
  // Bytes of the lines handed out and not released.
  size_t held() const { return start_; }
  // Hands over the buffer that holds the lines handed out (their positions,
  // and the views Text() gave of them, stay valid in it) and goes on in
  // `spare`, grown when too small, with the bytes that follow them.
  LineBuffer TakeLines(LineBuffer spare) {
    const size_t tail = size_ - start_;
    if (spare.capacity < tail + kChunkBytes) {
      spare.capacity = 2 * (tail + kChunkBytes);
      spare.data.reset(new char[spare.capacity]);
    }
    if (tail > 0) std::memcpy(spare.data.get(), buffer_.get() + start_, tail);
    LineBuffer taken{std::move(buffer_), capacity_};
    buffer_ = std::move(spare.data);
    capacity_ = spare.capacity;
    size_ = tail;
    offset_ += static_cast<int64_t>(start_);
    start_ = 0;
    return taken;
  }
  // Drops the lines handed out (their positions are then invalid).
  void Release() {
    if (size_ > start_) std::memmove(buffer_.get(), buffer_.get() + start_, size_ - start_);
    size_ -= start_;
    offset_ += static_cast<int64_t>(start_);
    start_ = 0;
  }

  // True once the file's end has been read (every line then comes from Next()).
  bool eof() const { return eof_; }
  // The file offset after the last line handed out.
  int64_t position() const { return offset_ + static_cast<int64_t>(start_); }

 private:
  FILE* const f_;
  const size_t keep_;
  // File offset of buffer_[0].
  int64_t offset_;
  // size_ bytes read into buffer_, which has room for capacity_.
  std::unique_ptr<char[]> buffer_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  // Next unread position in buffer_: the lines before it were handed out.
  size_t start_ = 0;
  // Bytes of the line at start_ that were read and not kept.
  int64_t dropped_ = 0;
  bool eof_ = false;
};

constexpr size_t kFirstBatchLines = 8192;

// Lines of the next batch, after one of `last` lines: double that (from
// kFirstBatchLines, up to batch_lines) while the file is long, so that applying
// starts soon and overlaps decoding from the start; and half of what is left
// (estimated from the `lines` in the `bytes` read so far) towards its end, so
// that the last batch, whose apply overlaps nothing, is short.
size_t NextBatchLines(const FileSourceOptions& options, size_t last, int64_t bytes, uint64_t lines,
                      int64_t bytes_left) {
  const size_t least = std::min(options.batch_lines, kFirstBatchLines);
  size_t next = std::clamp(2 * last, least, options.batch_lines);
  if (bytes > 0 && lines > 0 && bytes_left > 0) {
    const double lines_left =
        static_cast<double>(bytes_left) * static_cast<double>(lines) / static_cast<double>(bytes);
    if (lines_left < 2.0 * static_cast<double>(next)) {
      next = std::max(least, static_cast<size_t>(lines_left / 2));
    }
  }
  return next;
}

// One batch of lines, read on one thread and submitted on another.
struct ReadBatch {
  // Holds the bytes the records view.
  LineBuffer lines;
  std::vector<SourceRecord> records;
  // The file offset after its last line: the offset stored with it.
  int64_t end = 0;
  // The end of the file was reached: no batch follows.
  bool at_eof = false;
  // `stop` was seen: the batch is incomplete and must not be submitted.
  bool stopped = false;
  // A read error (DataLoss); the batch must not be submitted.
  absl::Status status;
};

// Cuts a file into batches of lines (sizes as NextBatchLines says).
class BatchReader {
 public:
  BatchReader(FILE* f, const std::string& path, int64_t offset, uint64_t max_bytes,
              int64_t total_bytes, const FileSourceOptions& options)
      : path_(path),
        max_bytes_(max_bytes),
        offset_(offset),
        total_bytes_(total_bytes),
        options_(options),
        // One byte more than the limit: a kept prefix of an over-long line is still over it.
        reader_(f, offset,
                static_cast<size_t>(
                    std::min<uint64_t>(max_bytes, std::numeric_limits<uint32_t>::max()) + 1)),
        limit_(std::min(options.batch_lines, kFirstBatchLines)) {}

  // The next batch; it goes on reading into `spare` (memory of a batch
  // already submitted, or none). Checks `stop` at every read of the file.
  ReadBatch Next(LineBuffer spare, const std::atomic<bool>& stop) {
    ReadBatch out;
    out.records.reserve(limit_);
    // Records are made as their lines are found (still in the cache); a
    // Refill() that moves the buffer moves their views with it.
    const char* base = reader_.data();
    while (true) {
      bool full = false;
      while (std::optional<LineReader::Line> line = reader_.Next()) {
        const std::string_view text = reader_.Text(*line);
        if (line->size > max_bytes_) {
          // The pipeline rejects it (too_large) from its size; its content is not logged.
          out.records.push_back(
              SourceRecord{text, path_, -1, line->offset, {}, static_cast<int64_t>(line->size)});
        } else if (!Blank(text)) {
          out.records.push_back(SourceRecord{TrimLine(text), path_, -1, line->offset});
        }
        if (out.records.size() >= limit_ || reader_.held() >= options_.batch_bytes) {
          full = true;
          break;
        }
      }
      if (full) break;
      if (reader_.eof()) {
        out.at_eof = true;
        break;
      }
      if (stop.load()) {
        out.stopped = true;
        return out;
      }
      if (out.status = reader_.Refill(path_); !out.status.ok()) return out;
      if (const char* moved = reader_.data(); moved != base) {
        const uintptr_t old_base = reinterpret_cast<uintptr_t>(base);
        for (SourceRecord& r : out.records) {
          const size_t pos = reinterpret_cast<uintptr_t>(r.value.data()) - old_base;
          r.value = std::string_view(moved + pos, r.value.size());
        }
        base = moved;
      }
    }
    // Blank-only tails and skipped parts of a line advance the stored offset
    // only once a line ends, so a restart re-reads an unfinished line.
    out.end = reader_.position();
    lines_ += out.records.size();
    limit_ = NextBatchLines(options_, out.records.size(), out.end - offset_, lines_,
                            total_bytes_ - (out.end - offset_));
    out.lines = reader_.TakeLines(std::move(spare));
    return out;
  }

 private:
  const std::string& path_;
  const uint64_t max_bytes_;
  const int64_t offset_;       // where the replay started
  const int64_t total_bytes_;  // from there to the end of the file
  const FileSourceOptions& options_;
  LineReader reader_;
  size_t limit_;        // lines of the batch being read
  uint64_t lines_ = 0;  // lines of the batches read so far
};

// Reads `f` from `offset` and submits its lines in batches. Reading and
// splitting the next batch (on a thread of its own) overlaps submitting the
// current one, so that the file's bytes are never the only work on a core.
absl::Status SubmitLines(Pipeline* pipeline, FILE* f, const std::string& path,
                         const std::string& key, int64_t offset, const std::atomic<bool>& stop,
                         const FileSourceOptions& options, LoggingDeadLetterSink* dead_letters) {
  int64_t submitted = offset;  // the stored offset after the last batch submitted
  FileProgress progress;
  absl::Time started, last_report;
  struct stat st;
  progress.total_bytes = fstat(fileno(f), &st) == 0 ? std::max<int64_t>(0, st.st_size - offset) : 0;
  if (options.on_progress) started = last_report = options.clock->Now();
  auto report = [&](bool done) {
    if (!options.on_progress) return;
    const absl::Time now = options.clock->Now();
    if (!done && now - last_report < options.progress_every) return;
    last_report = now;
    progress.bytes = submitted - offset;
    progress.elapsed = now - started;
    progress.done = done;
    options.on_progress(progress);
  };

  BatchReader batches(f, path, offset, pipeline->max_event_bytes(), progress.total_bytes, options);
  ReadBatch current = batches.Next(LineBuffer{}, stop);
  ReadBatch next;
  LineBuffer spare;
  // Declared last: destroyed first, so a batch being read on it is finished
  // before what it reads into goes.
  LaneWorker read_ahead("hm-read");
  while (true) {
    RETURN_IF_ERROR(current.status);
    if (current.stopped || stop.load()) return absl::OkStatus();
    const bool more = !current.at_eof;
    if (more) read_ahead.Start([&] { next = batches.Next(std::move(spare), stop); });
    if (!current.records.empty() || current.end != submitted) {
      SourceOffset position{key, current.end};
      // Pipelined: the batch is applied while the next one is read and
      // decoded (its records are decoded before SubmitEvents returns).
      RETURN_IF_ERROR(pipeline->SubmitEvents(current.records, EventFormat::kJson, {&position, 1},
                                             dead_letters));
      submitted = position.next_offset;
      progress.records += current.records.size();
    }
    if (!more) {
      report(/*done=*/true);
      return absl::OkStatus();
    }
    report(/*done=*/false);
    read_ahead.Wait();
    spare = std::move(current.lines);
    current = std::move(next);
  }
}

}  // namespace

std::string FormatFileProgress(const FileProgress& p) {
  constexpr double kMiB = 1024.0 * 1024.0;
  const double seconds = absl::ToDoubleSeconds(p.elapsed);
  std::string out = absl::StrFormat("replay: %d events, %.1f of %.1f MiB", p.records,
                                    static_cast<double>(p.bytes) / kMiB,
                                    static_cast<double>(p.total_bytes) / kMiB);
  if (p.total_bytes > 0) {
    absl::StrAppendFormat(
        &out, " (%.1f%%)",
        100.0 * static_cast<double>(p.bytes) / static_cast<double>(p.total_bytes));
  }
  if (seconds > 0) {
    const double bytes_per_sec = static_cast<double>(p.bytes) / seconds;
    absl::StrAppendFormat(&out, ", %.0f events/s, %.1f MiB/s",
                          static_cast<double>(p.records) / seconds, bytes_per_sec / kMiB);
    if (p.done) {
      absl::StrAppendFormat(&out, ", done in %.1f s", seconds);
    } else if (bytes_per_sec > 0 && p.total_bytes > p.bytes) {
      absl::StrAppendFormat(&out, ", ETA %.0f s",
                            static_cast<double>(p.total_bytes - p.bytes) / bytes_per_sec);
    }
  }
  return out;
}

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
  // A digest of the whole file, chained line by line (SipHash-2-4 under a
  // fixed key: stable across runs, unlike absl::Hash).
  constexpr std::array<uint8_t, 16> kDigestKey = {'h', 'u', 'b', 'm', 'e', 't', 'r', 'i',
                                                  'c', 's', '-', 'm', 'o', 'd', 'e', 'l'};
  uint64_t digest = SipHash24(kDigestKey, "");
  // The file's lines: read whole first (for the digest), decoded only when
  // the file is not the one last applied.
  struct ModelLine {
    int64_t line_no;
    uint64_t size;     // the line's whole length
    std::string text;  // trimmed; empty for a line over the limit
  };
  std::vector<ModelLine> lines;
  // Lines over the record limit are skipped as they stream by, never held whole.
  LineReader reader(f.get(), 0, kMaxCatalogRecordBytes + 1);
  int64_t line_no = 0;
  do {
    reader.Release();
    RETURN_IF_ERROR(reader.Refill(path));
    while (std::optional<LineReader::Line> line = reader.Next()) {
      ++line_no;
      const std::string_view line_text = reader.Text(*line);
      std::string chained(reinterpret_cast<const char*>(&digest), sizeof digest);
      absl::StrAppend(&chained, line->size, ":",
                      absl::string_view(line_text.data(), line_text.size()));
      digest = SipHash24(kDigestKey, chained);
      if (line->size > kMaxCatalogRecordBytes) {
        lines.push_back(ModelLine{line_no, line->size, {}});
        continue;
      }
      const std::string_view text = TrimLine(line_text);
      if (!Blank(text)) lines.push_back(ModelLine{line_no, line->size, std::string(text)});
    }
  } while (!reader.eof());
  // The digest is stored with the catalog it produced: a restart on the same
  // file re-applies nothing and counts its bad lines no second time.
  const SourceOffset applied{absl::StrCat("models_file:", absolute), static_cast<int64_t>(digest)};
  if (pipeline->StoredOffset(applied.source_key) == applied.next_offset) {
    LogInfo("models file %s: unchanged since it was last applied", path);
    return absl::OkStatus();
  }
  // Decoded in two halves at once when there are many (protobuf's JSON
  // parser is slow, and the replay waits for the catalog).
  std::vector<std::optional<absl::StatusOr<v1::ModelInfo>>> decoded(lines.size());
  auto decode = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      if (lines[i].size <= kMaxCatalogRecordBytes) decoded[i] = DecodeJsonModel(lines[i].text);
    }
  };
  if (lines.size() >= 2048) {
    std::thread helper(decode, lines.size() / 2, lines.size());
    decode(0, lines.size() / 2);
    helper.join();
  } else {
    decode(0, lines.size());
  }
  // Like a compacted topic, the last record of a model is the one that
  // counts: the ones before it are never applied, so they cannot re-credit.
  std::vector<CatalogRecord> records;
  absl::flat_hash_map<std::string, size_t> last_of_model;
  // Rejections are logged and counted only if the file is applied.
  std::vector<std::string> rejections;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto reject = [&](absl::string_view why) {
      rejections.push_back(
          absl::StrCat(path, " line ", lines[i].line_no, ": catalog record rejected: ", why));
    };
    if (lines[i].size > kMaxCatalogRecordBytes) {
      reject(absl::StrCat("record of ", lines[i].size, " bytes is longer than the limit of ",
                          kMaxCatalogRecordBytes, " bytes"));
      continue;
    }
    absl::StatusOr<v1::ModelInfo>& m = *decoded[i];
    if (!m.ok()) {
      reject(m.status().message());
      continue;
    }
    auto [it, inserted] = last_of_model.try_emplace(m->model_id(), records.size());
    if (inserted) {
      records.push_back(CatalogRecord{m->model_id(), std::move(*m)});
    } else {
      records[it->second].info = std::move(*m);
    }
  }
  for (size_t i = 0; i < rejections.size(); ++i) {
    pipeline->CountCatalogRejected();
    if (i < 100) LogWarning("%s", rejections[i]);
  }
  RETURN_IF_ERROR(pipeline->ApplyCatalog(records, {&applied, 1}));
  LogInfo("models file %s: %d models, %d records rejected", path, records.size(),
          rejections.size());
  return absl::OkStatus();
}

}  // namespace hubmetrics
