#include "lib/ingest/file_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/aggregate/lane_worker.h"
#include "lib/base/log.h"
#include "lib/base/status_macros.h"

namespace hubmetrics {
namespace {

// A regular file mapped read-only, whole: its lines are read where the page
// cache holds them, without a copy into a buffer of ours (reading took 16%
// of a replay's CPU with the copy, 10% without). Release() gives back the
// pages of bytes that will not be read again, so that the memory held stays
// at the lines in use however long the file is. The file must not shrink
// while it is mapped: touching a page past its new end faults (SIGBUS).
class MappedFile {
 public:
  // NotFound when `path` cannot be opened; FailedPrecondition when it is not
  // a regular file (a pipe or a device cannot be mapped) or cannot be mapped.
  static absl::StatusOr<MappedFile> Map(const std::string& path, std::string* absolute) {
    std::error_code ec;
    *absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
    }
    // The mapping keeps the file; the descriptor is not needed after it.
    struct FdCloser {
      int fd;
      ~FdCloser() { close(fd); }
    } closer{fd};
    struct stat st;
    if (fstat(fd, &st) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot stat ", path, ": ", std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path,
                       " is not a regular file: events and models files are read in place "
                       "(mapped); write a pipe's output to a file first"));
    }
    MappedFile out;
    out.size_ = static_cast<size_t>(st.st_size);
    if (out.size_ == 0) return out;
    void* data = mmap(nullptr, out.size_, PROT_READ, MAP_SHARED, fd, 0);
    if (data == MAP_FAILED) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot map ", path, ": ", std::strerror(errno)));
    }
    // Read once, front to back: read ahead far, and keep little behind.
    madvise(data, out.size_, MADV_SEQUENTIAL);
    out.data_ = static_cast<const char*>(data);
    return out;
  }

  MappedFile(MappedFile&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<char*>(data_), size_);
  }

  // The file's bytes, as large as it was when mapped (nullptr when empty).
  const char* data() const { return data_; }
  size_t size() const { return size_; }

  // The bytes [begin, end) will not be read again soon: the whole pages
  // among them leave this process's memory (they stay in the page cache, and
  // a later read of them maps them again: releasing never changes what is
  // read).
  void Release(size_t begin, size_t end) const {
    static const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    begin = (std::min(begin, size_) + kPage - 1) / kPage * kPage;
    end = std::min(end, size_) / kPage * kPage;
    if (data_ != nullptr && begin < end) {
      madvise(const_cast<char*>(data_) + begin, end - begin, MADV_DONTNEED);
    }
  }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

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

// Where the lines of one batch are in the file: LineReader::TakeLines hands
// it over with them, and takes it back to release its pages once they are
// no longer viewed.
struct LineRange {
  size_t begin = 0;
  size_t end = 0;
};

// Cuts a mapped file into lines, a chunk at a time, keeping at most `keep`
// bytes of any line: the pages of the rest of an over-long line are released
// as it streams by, so memory stays at the lines not yet released, a chunk
// and `keep`, whatever the file holds (a 1 GB line included). Lines are views
// into the mapping, valid as long as it is.
class LineReader {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  struct Line {
    // The file offset of its first byte, and how many of its bytes are kept:
    // the line without its newline, or its first `keep` bytes when longer.
    size_t offset;
    size_t kept;
    // The line's whole length in bytes, without its newline.
    uint64_t size;
  };

  // Reads `file`, which must outlive it, from `offset` (nothing when past its
  // end).
  LineReader(const MappedFile& file, int64_t offset, size_t keep)
      : file_(file),
        keep_(keep),
        start_(static_cast<size_t>(std::max<int64_t>(0, offset))),
        size_(start_),
        scanned_(start_),
        taken_(start_) {}

  // Lets Next() see the next chunk of the file, and releases the bytes of a
  // partial line past its first `keep` (skipped: never read again).
  void Refill() {
    if (size_ - start_ > keep_) file_.Release(start_ + keep_, size_);
    if (!eof()) size_ = std::min(file_.size(), size_ + kChunkBytes);
  }

  // The next line, or nullopt when what Next() sees holds no more complete
  // line (then Refill(), unless eof()). At the end of the file, a last line
  // without a newline counts as a line.
  std::optional<Line> Next() {
    if (start_ >= size_) return std::nullopt;
    const char* const data = file_.data();
    // A long line's start was searched already: each byte is searched once.
    const size_t from = std::max(start_, scanned_);
    const void* found = std::memchr(data + from, '\n', size_ - from);
    if (found == nullptr && !eof()) {
      scanned_ = size_;
      return std::nullopt;
    }
    const size_t nl =
        found == nullptr ? size_ : static_cast<size_t>(static_cast<const char*>(found) - data);
    Line line{start_, std::min(nl - start_, keep_), static_cast<uint64_t>(nl - start_)};
    start_ = std::min(nl + 1, size_);
    return line;
  }

  // A line's kept bytes.
  std::string_view Text(const Line& line) const {
    return std::string_view(file_.data() + line.offset, line.kept);
  }
  // Bytes of the lines handed out since the last TakeLines() or Release().
  size_t held() const { return start_ - taken_; }
  // Where the lines handed out since the last call are; releases `done`, a
  // range it returned before whose lines are no longer viewed.
  LineRange TakeLines(LineRange done) {
    file_.Release(done.begin, done.end);
    const LineRange taken{taken_, start_};
    taken_ = start_;
    return taken;
  }
  // Releases the lines handed out (their views are then not to be used).
  void Release() {
    file_.Release(taken_, start_);
    taken_ = start_;
  }

  // True once Next() sees the file's end (every line then comes from Next()).
  bool eof() const { return size_ >= file_.size(); }
  // The file offset after the last line handed out (and its newline).
  int64_t position() const { return static_cast<int64_t>(start_); }

 private:
  const MappedFile& file_;
  const size_t keep_;
  // File offsets: the next line starts at start_; Next() sees up to size_;
  // no newline is in [start_, scanned_); the lines from taken_ to start_
  // were handed out since the last TakeLines().
  size_t start_;
  size_t size_;
  size_t scanned_;
  size_t taken_;
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
  // Where the bytes the records view are in the file.
  LineRange lines;
  std::vector<SourceRecord> records;
  // The file offset after its last line: the offset stored with it.
  int64_t end = 0;
  // The end of the file was reached: no batch follows.
  bool at_eof = false;
  // `stop` was seen: the batch is incomplete and must not be submitted.
  bool stopped = false;
};

// Cuts a file into batches of lines (sizes as NextBatchLines says).
class BatchReader {
 public:
  BatchReader(const MappedFile& file, const std::string& path, int64_t offset, uint64_t max_bytes,
              int64_t total_bytes, const FileSourceOptions& options)
      : path_(path),
        max_bytes_(max_bytes),
        offset_(offset),
        total_bytes_(total_bytes),
        options_(options),
        // One byte more than the limit: a kept prefix of an over-long line is still over it.
        reader_(file, offset,
                static_cast<size_t>(
                    std::min<uint64_t>(max_bytes, std::numeric_limits<uint32_t>::max()) + 1)),
        limit_(std::min(options.batch_lines, kFirstBatchLines)) {}

  // The next batch; `done` (the lines of a batch handed out before, no
  // longer viewed) is released. Checks `stop` at every chunk of the file.
  ReadBatch Next(LineRange done, const std::atomic<bool>& stop) {
    ReadBatch out;
    out.records.reserve(limit_);
    while (true) {
      bool full = false;
      while (std::optional<LineReader::Line> line = reader_.Next()) {
        const std::string_view text = reader_.Text(*line);
        const int64_t offset = static_cast<int64_t>(line->offset);
        if (line->size > max_bytes_) {
          // The pipeline rejects it (too_large) from its size; its content is not logged.
          out.records.push_back(
              SourceRecord{text, path_, -1, offset, {}, static_cast<int64_t>(line->size)});
        } else if (!Blank(text)) {
          out.records.push_back(SourceRecord{TrimLine(text), path_, -1, offset});
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
      reader_.Refill();
    }
    // Blank-only tails and skipped parts of a line advance the stored offset
    // only once a line ends, so a restart re-reads an unfinished line.
    out.end = reader_.position();
    lines_ += out.records.size();
    limit_ = NextBatchLines(options_, out.records.size(), out.end - offset_, lines_,
                            total_bytes_ - (out.end - offset_));
    out.lines = reader_.TakeLines(done);
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

// Reads `file` from `offset` and submits its lines in batches. Reading and
// splitting the next batch (on a thread of its own) overlaps submitting the
// current one, so that the file's bytes are never the only work on a core.
absl::Status SubmitLines(Pipeline* pipeline, const MappedFile& file, const std::string& path,
                         const std::string& key, int64_t offset, const std::atomic<bool>& stop,
                         const FileSourceOptions& options, LoggingDeadLetterSink* dead_letters) {
  int64_t submitted = offset;  // the stored offset after the last batch submitted
  FileProgress progress;
  absl::Time started, last_report;
  progress.total_bytes = std::max<int64_t>(0, static_cast<int64_t>(file.size()) - offset);
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

  BatchReader batches(file, path, offset, pipeline->max_event_bytes(), progress.total_bytes,
                      options);
  ReadBatch current = batches.Next(LineRange{}, stop);
  ReadBatch next;
  LineRange done;
  // Declared last: destroyed first, so a batch being read on it is finished
  // before what it reads goes.
  LaneWorker read_ahead("hm-read");
  while (true) {
    if (current.stopped || stop.load()) return absl::OkStatus();
    const bool more = !current.at_eof;
    if (more) read_ahead.Start([&] { next = batches.Next(done, stop); });
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
    // Decoded (SubmitEvents returned): its lines are not viewed any more.
    done = current.lines;
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
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Map(path, &absolute));
  const std::string key = absl::StrCat("file:", absolute);
  const int64_t offset = pipeline->StoredOffset(key).value_or(0);
  if (offset > static_cast<int64_t>(file.size())) {
    LogWarning(
        "%s is shorter (%d bytes) than its stored offset %d (replaced by another file?): "
        "nothing to read",
        path, file.size(), offset);
  } else if (offset > 0) {
    LogInfo("resuming %s at byte %d", path, offset);
  }
  LoggingDeadLetterSink dead_letters;
  const absl::Status read =
      SubmitLines(pipeline, file, path, key, offset, stop, options, &dead_letters);
  // Submitted batches use dead_letters: on every way out, wait for them to
  // be committed.
  const absl::Status drained = pipeline->Drain();
  return read.ok() ? drained : read;
}

absl::Status LoadModelsFile(Pipeline* pipeline, const std::string& path) {
  std::string absolute;
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Map(path, &absolute));
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
  LineReader reader(file, 0, kMaxCatalogRecordBytes + 1);
  int64_t line_no = 0;
  do {
    reader.Release();
    reader.Refill();
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
