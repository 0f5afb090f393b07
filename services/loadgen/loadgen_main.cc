// loadgen: realistic Hugging Face Hub-like traffic for hubmetrics (file mode).
//
//   loadgen --out=events.ndjson --models_out=models.ndjson --events=200000 --seed=1
//       --start=2025-01-06T00:00:00Z --days=70 --models=3000 --users=60000 --bad_fraction=0.01
//
// Writes the catalog (ModelInfo NDJSON) and the raw download events
// (DownloadEvent NDJSON, bad records included) and prints the shape it
// produced to stderr. The same flags always give the same bytes.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/time/time.h"
#include "services/loadgen/traffic.h"

ABSL_FLAG(std::string, out, "", "Events NDJSON file to write (required).");
ABSL_FLAG(std::string, models_out, "", "Models (catalog) NDJSON file to write (required).");
ABSL_FLAG(int64_t, events, 200000, "Event records to write, bad ones included.");
ABSL_FLAG(uint64_t, seed, 1, "Random seed; the same flags give the same bytes.");
ABSL_FLAG(std::string, start, "2025-01-06T00:00:00Z",
          "RFC 3339 time whose UTC day is the first simulated day.");
ABSL_FLAG(int, days, 70, "Simulated days the events span.");
ABSL_FLAG(int, models, 3000, "Models in the catalog.");
ABSL_FLAG(int, users, 60000, "Distinct users.");
ABSL_FLAG(double, bad_fraction, 0.01,
          "Fraction of event records that are bad, spread over every rejection reason.");

namespace {

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string models_out = absl::GetFlag(FLAGS_models_out);
  if (out.empty() || models_out.empty()) {
    return absl::InvalidArgumentError("--out and --models_out are required");
  }
  hubmetrics::loadgen::TrafficOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.events = absl::GetFlag(FLAGS_events);
  auto start = hubmetrics::ParseRfc3339(absl::GetFlag(FLAGS_start));
  if (!start.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--start: ", start.status().message()));
  }
  options.start = *start;
  options.days = absl::GetFlag(FLAGS_days);
  options.models = absl::GetFlag(FLAGS_models);
  options.users = absl::GetFlag(FLAGS_users);
  options.bad_fraction = absl::GetFlag(FLAGS_bad_fraction);
  auto generator = hubmetrics::loadgen::TrafficGenerator::Create(options);
  if (!generator.ok()) return generator.status();

  std::ofstream models_file(models_out, std::ios::binary | std::ios::trunc);
  if (!models_file) return absl::NotFoundError(absl::StrCat("cannot open ", models_out));
  while (auto m = (*generator)->NextModel()) models_file << m->json << '\n';
  models_file.close();
  if (!models_file) return absl::DataLossError(absl::StrCat("cannot write ", models_out));

  std::ofstream events_file(out, std::ios::binary | std::ios::trunc);
  if (!events_file) return absl::NotFoundError(absl::StrCat("cannot open ", out));
  while (auto e = (*generator)->NextEvent()) events_file << e->json << '\n';
  events_file.close();
  if (!events_file) return absl::DataLossError(absl::StrCat("cannot write ", out));

  std::cerr << hubmetrics::loadgen::FormatShape((*generator)->Shape());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes realistic Hub-like download events and a model catalog as NDJSON.\n"
      "  loadgen --out=events.ndjson --models_out=models.ndjson [--events=N --seed=S ...]");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::cerr << "loadgen: " << status << "\n";
    return 1;
  }
  return 0;
}
