// How hubctl prints answers: the protobuf JSON mapping for programs, aligned
// tables for people. Pure functions of the messages; no I/O.
//
// Tables: integers are printed exactly as received; HHI with 6 decimals, Gini
// with 4, top-k shares as percentages with 2 decimals and entity shares with 4
// (they are often small). A missing watermark prints as "none".
#ifndef HUBMETRICS_SERVICES_HUBCTL_FORMAT_H_
#define HUBMETRICS_SERVICES_HUBCTL_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"
#include "proto/hubmetrics/v1/metrics.pb.h"

namespace hubmetrics::hubctl {

// One line (no trailing newline) of the protobuf JSON mapping with the proto's
// own field names and every primitive field, zero values included. Errors:
// Internal if protobuf cannot print the message (not expected for our types).
absl::StatusOr<std::string> ToJsonLine(const google::protobuf::Message& message);

// Multi-line tables, each ending with a newline.
std::string FormatConcentration(const v1::Concentration& c);
std::string FormatSeries(const v1::ConcentrationSeries& series);
// shares: the entities (numbered #1..#k) with their totals over the range,
// then one row per week with each one's share and the rest's.
std::string FormatShareSeries(const v1::ShareSeries& series);
std::string FormatTopEntities(const v1::TopEntities& top);
std::string FormatEntity(const v1::EntityReport& report);
std::string FormatIngestStats(const v1::IngestStats& stats);
// change: the two windows' measures side by side, then ΔHHI split into the
// top movers (each with downloads, share and rank before → after), the other
// entrants, the other exits and the rest, which add up to ΔHHI; then all
// entrants and exits as a summary. Contributions and ΔHHI with 6 decimals and
// a sign.
std::string FormatChange(const v1::ConcentrationChange& change);

// watch: a header (view, window, column names; sized for `first`'s top-k
// list) printed once, then one fixed-width row per update.
std::string FormatWatchHeader(const v1::Concentration& first);
std::string FormatWatchRow(const v1::Concentration& c);

// The canonical name of a gRPC status code, e.g. "INVALID_ARGUMENT";
// "CODE_<n>" for a number outside the known codes.
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace hubmetrics::hubctl

#endif  // HUBMETRICS_SERVICES_HUBCTL_FORMAT_H_
