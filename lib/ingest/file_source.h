// The embedded file source: NDJSON events and models from local files, for
// quick starts, tests and backfills. Kafka is the production source.
//
// The events file is read from the byte offset stored with the state (source
// key "file:" + absolute path) to its end, in place: the file is mapped
// read-only and its lines are read where the page cache holds them, without
// a copy (a regular file only: FailedPrecondition for a pipe or a directory;
// it must not be truncated while it is read, which would fault). Its lines are
// submitted in batches (the next batch is cut into lines on a thread of its
// own, hm-read, while the current one is submitted) (FileSourceOptions: at
// most batch_lines lines or batch_bytes bytes); each batch commits with the
// offset after its last line, so a restart neither loses nor repeats a line.
// Rejected lines are logged with their byte offset and reason (never their
// content: it holds a user id) and counted per reason. A line longer than the
// pipeline's max_event_bytes is rejected too_large without being held: its
// pages past the first max_event_bytes + 1 bytes are released as it streams by
// in 1 MiB chunks, so memory stays flat (the pages of three batches' lines: the
// one submitted, the one being read and one being released, each at most
// batch_bytes, plus a chunk and that prefix) whatever a line's length; the
// stored offset moves past such a line only once its newline has been read.
// A stored offset past the end (the file was replaced by a shorter one) reads
// nothing, with a warning.
//
// The models file is read whole at every start. A file whose content is the
// one last applied (a digest is stored with the state, source key
// "models_file:" + absolute path) changes nothing. Otherwise the last record
// of each model counts, as in a compacted topic: records equal to the stored
// catalog change nothing, changed ones re-credit past counts. Lines that do
// not decode or validate (kMaxCatalogRecordBytes and the field bounds of
// lib/events included; over-long lines skipped the same way) are logged with
// their line number and counted (catalog_rejected), once per content of the
// file.
#ifndef HUBMETRICS_LIB_INGEST_FILE_SOURCE_H_
#define HUBMETRICS_LIB_INGEST_FILE_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/ingest/pipeline.h"
#include "lib/time/time.h"

namespace hubmetrics {

// How far a replay of an events file has come.
struct FileProgress {
  uint64_t records = 0;     // lines submitted since this replay started (blank lines excluded)
  int64_t bytes = 0;        // bytes read since this replay started
  int64_t total_bytes = 0;  // from where it started to the end of the file when it started
  absl::Duration elapsed;   // since it started, by FileSourceOptions::clock
  bool done = false;        // the end of the file was reached
};
// "replay: 1,234,567 events, 120.3 of 812.0 MiB (14.8%), 412,345 events/s,
// 30.1 MiB/s, ETA 23 s" (the ETA from the bytes left at the rate so far).
std::string FormatFileProgress(const FileProgress& p);

struct FileSourceOptions {
  // Lines per commit at most. Larger: fewer commits, more downloads merged
  // per update of the live distributions (each entity a batch touches costs
  // one update per live view and window, however many of its downloads the
  // batch holds) and more throughput; smaller: fresher queries during a
  // backfill and less work lost to a crash. The first batches are smaller
  // (8,192 lines, doubling), so that applying starts soon and overlaps
  // decoding, and so are the last ones (half of what is left), so that the
  // last apply, which overlaps nothing, is short.
  size_t batch_lines = 262144;
  // Bytes of lines per commit at most (a batch is held in memory while it is
  // decoded, and the next one while it is read); at least one line.
  size_t batch_bytes = size_t{32} << 20;
  // Called on the reading thread after a batch is submitted once
  // `progress_every` has passed by `clock` since the last call, and once at
  // the end of the file; not called when empty. `clock` must be set then.
  std::function<void(const FileProgress&)> on_progress;
  const Clock* clock = nullptr;
  absl::Duration progress_every = absl::Seconds(5);
};

// Returns at the end of the file, or early once `stop` is set. NotFound if the
// file does not exist; the pipeline's errors as they come.
absl::Status IngestEventsFile(Pipeline* pipeline, const std::string& path,
                              const std::atomic<bool>& stop, const FileSourceOptions& options);

absl::Status LoadModelsFile(Pipeline* pipeline, const std::string& path);

// Logs rejected records (source, partition, offset, reason, detail) — the first
// `max_logged` of them, then one summary line every 10,000 — and accepts them.
class LoggingDeadLetterSink final : public DeadLetterSink {
 public:
  explicit LoggingDeadLetterSink(int max_logged = 100) : max_logged_(max_logged) {}
  void Reject(const SourceRecord& record, const Rejection& rejection) override;
  absl::Status Flush() override { return absl::OkStatus(); }
  uint64_t rejected() const { return rejected_; }

 private:
  int max_logged_;
  uint64_t rejected_ = 0;
};

}  // namespace hubmetrics

#endif  // HUBMETRICS_LIB_INGEST_FILE_SOURCE_H_
