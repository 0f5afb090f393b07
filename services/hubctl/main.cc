// hubctl: the command line client of hubmetricsd's gRPC MetricsService.
//
// Exit status: 0 success, 1 the server answered with an error or could not be
// reached, 2 usage error. Errors go to stderr as "hubctl: CODE: message".
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/tls/client_flags.h"
#include "lib/tls/tls.h"
#include "lib/views/views.h"
#include "proto/hubmetrics/v1/metrics.grpc.pb.h"
#include "services/hubctl/format.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "hubmetricsd's gRPC address, HOST:PORT.");
ABSL_FLAG(bool, json, false,
          "Print each response (each update for watch) as one line of the protobuf JSON mapping, "
          "with the proto field names and zero values.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "Time limit for connecting and getting the answer (watch: for connecting only).");
ABSL_FLAG(std::string, level, "",
          "View level (required): model | developer | country | org_type | license | task | "
          "modality | size | derivation | A+B (a pair of two levels other than model).");
ABSL_FLAG(std::string, filter, "all", "View filter: all | rolling_1y.");
ABSL_FLAG(std::string, attribution, "direct", "View attribution: direct | recursive.");
ABSL_FLAG(std::string, sample, "all", "View sample: all | population | head.");
ABSL_FLAG(std::string, window, "all",
          "Window: week:YYYY-Www | week:current | trailing:N | range:YYYY-Www..YYYY-Www | all.");
ABSL_FLAG(std::vector<std::string>, top_k, {},
          "concentration, series, watch: the top-k shares to report, e.g. 1,10,100 (the server's "
          "default when empty: 1,10,100).");
ABSL_FLAG(int, k, 0,
          "top: how many entities, 1..10000 (0: the server's default, 10); shares: how many "
          "entities to follow, 1..1000 (0: 20); change: how many top movers, 1..1000 (0: 10).");
ABSL_FLAG(std::string, from, "",
          "series, shares: first ISO week, YYYY-Www; change: the earlier window (any window "
          "word).");
ABSL_FLAG(std::string, to, "",
          "series, shares: last ISO week (inclusive), YYYY-Www; change: the later window.");
ABSL_FLAG(std::string, entity, "", "entity: model id, developer name or country code.");
ABSL_FLAG(int, count, 0, "watch: stop after N updates (the first value counts); 0: until Ctrl-C.");

namespace hubmetrics::hubctl {
namespace {

// The usage text; VIEW and W list the words of lib/views.
std::string Usage() {
  return absl::StrCat(R"(query hubmetricsd, live concentration of model downloads.

usage: hubctl [--addr=127.0.0.1:50051] [--json] [--timeout=10s]
              [--tls_ca_file=CA.pem [--tls_cert_file=CLIENT.pem --tls_key_file=CLIENT.key]]
              COMMAND [flags]

commands:
  concentration VIEW [--window=W] [--top_k=1,10,100]  HHI, Gini and top-k shares
  top           VIEW [--window=W] [--k=10]            leaderboard: rank, entity, downloads, share
  series        VIEW --from=YYYY-Www --to=YYYY-Www [--top_k=...]
                                                    the measures week by week
  shares        VIEW --from=YYYY-Www --to=YYYY-Www [--k=20]
                                                    per week, the shares of the k entities
                                                    largest over the range, and the rest
  entity        VIEW [--window=W] --entity=NAME       one entity's downloads, share and rank
  change        VIEW --from=W --to=W [--k=10] [--top_k=...]
                                                    why HHI moved from one window to the
                                                    other: ΔHHI split exactly into the k top
                                                    movers, other entrants, other exits, rest
  watch         VIEW [--window=W] [--top_k=...] [--count=N]
                                                    each change of the measures (at most every
                                                    100 ms); stops after N updates if N > 0,
                                                    else at Ctrl-C
  stats                                             ingest counters, rejects by reason, lag

VIEW: --level=LEVEL [--filter=all|rolling_1y] [--attribution=direct|recursive]
      [--sample=all|population|head]   (defaults: all, direct, all)
LEVEL: )",
                      LevelWords(), R"(
W:    )",
                      absl::string_view(WindowWords().data(), WindowWords().size()),
                      R"( (default: all)

Flags may come before or after COMMAND. --json prints exactly one JSON object per line
per response (per update for watch). Exit status: 0 ok; 1 server error or server
unreachable; 2 usage error.)");
}

constexpr int kExitServer = 1;
constexpr int kExitUsage = 2;

int UsageError(const std::string& message) {
  std::cerr << "hubctl: " << message << "\n(run hubctl without arguments for usage)\n";
  return kExitUsage;
}

int ServerError(const grpc::Status& status) {
  std::cerr << "hubctl: " << GrpcCodeName(status.error_code()) << ": " << status.error_message()
            << "\n";
  return kExitServer;
}

// Prints `message` as JSON or as the table `format` gives.
template <typename M>
int Print(const M& message, std::string (*format)(const M&)) {
  if (absl::GetFlag(FLAGS_json)) {
    absl::StatusOr<std::string> json = ToJsonLine(message);
    if (!json.ok()) {
      std::cerr << "hubctl: " << json.status().message() << "\n";
      return kExitServer;
    }
    std::cout << *json << "\n";
  } else {
    std::cout << format(message);
  }
  std::cout << std::flush;
  return 0;
}

// Connects now, so that an unreachable server gets its own message instead of
// an UNAVAILABLE that could also be the server's own answer. Fails fast when
// the connection is refused or its TLS handshake fails; waits at most until
// `deadline` otherwise.
bool Connect(const std::shared_ptr<grpc::Channel>& channel, absl::Time deadline, std::string* why) {
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      // The channel keeps no reason; a call that does not wait for the
      // connection fails at once with gRPC's last connection error (refused,
      // the TLS handshake's error, the socket closed by the server).
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      v1::IngestStats ignored;
      grpc::Status s = v1::MetricsService::NewStub(channel)->GetIngestStats(
          &ctx, v1::IngestStatsRequest(), &ignored);
      if (s.ok()) return true;  // connected in the meantime
      *why = s.error_message();
      return false;
    }
    if (!channel->WaitForStateChange(state, absl::ToChronoTime(deadline))) {
      *why =
          absl::StrCat("no connection within ", absl::FormatDuration(absl::GetFlag(FLAGS_timeout)));
      return false;
    }
    state = channel->GetState(/*try_to_connect=*/true);
  }
  return true;
}

struct Call {
  std::unique_ptr<v1::MetricsService::Stub> stub;
  absl::Time deadline;
  void Limit(grpc::ClientContext* ctx) const { ctx->set_deadline(absl::ToChronoTime(deadline)); }
};

v1::View ViewFromFlags() {
  v1::View v;
  v.set_level(absl::GetFlag(FLAGS_level));
  v.set_filter(absl::GetFlag(FLAGS_filter));
  v.set_attribution(absl::GetFlag(FLAGS_attribution));
  v.set_sample(absl::GetFlag(FLAGS_sample));
  return v;
}

// --top_k parsed; nullopt (after printing the usage error) when malformed.
std::optional<std::vector<uint32_t>> TopKFromFlags() {
  std::vector<uint32_t> out;
  for (const std::string& s : absl::GetFlag(FLAGS_top_k)) {
    uint32_t k = 0;
    if (!absl::SimpleAtoi(s, &k) || k == 0) {
      UsageError(absl::StrCat("--top_k: '", s, "' is not a positive integer"));
      return std::nullopt;
    }
    out.push_back(k);
  }
  return out;
}

int Concentration(const Call& call, const v1::ConcentrationRequest& request) {
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::Concentration out;
  grpc::Status s = call.stub->GetConcentration(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatConcentration) : ServerError(s);
}

int Top(const Call& call) {
  v1::TopEntitiesRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_window(absl::GetFlag(FLAGS_window));
  request.set_k(static_cast<uint32_t>(absl::GetFlag(FLAGS_k)));
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::TopEntities out;
  grpc::Status s = call.stub->GetTopEntities(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatTopEntities) : ServerError(s);
}

int Series(const Call& call, const std::vector<uint32_t>& top_k) {
  v1::ConcentrationSeriesRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_from_week(absl::GetFlag(FLAGS_from));
  request.set_to_week(absl::GetFlag(FLAGS_to));
  for (uint32_t k : top_k) request.add_top_k(k);
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::ConcentrationSeries out;
  grpc::Status s = call.stub->GetConcentrationSeries(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatSeries) : ServerError(s);
}

int Shares(const Call& call) {
  v1::ShareSeriesRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_from_week(absl::GetFlag(FLAGS_from));
  request.set_to_week(absl::GetFlag(FLAGS_to));
  request.set_k(static_cast<uint32_t>(absl::GetFlag(FLAGS_k)));
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::ShareSeries out;
  grpc::Status s = call.stub->GetShareSeries(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatShareSeries) : ServerError(s);
}

int Entity(const Call& call) {
  v1::EntityRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_window(absl::GetFlag(FLAGS_window));
  request.set_entity(absl::GetFlag(FLAGS_entity));
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::EntityReport out;
  grpc::Status s = call.stub->GetEntity(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatEntity) : ServerError(s);
}

int Change(const Call& call, const std::vector<uint32_t>& top_k) {
  v1::ExplainChangeRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_from_window(absl::GetFlag(FLAGS_from));
  request.set_to_window(absl::GetFlag(FLAGS_to));
  request.set_k(static_cast<uint32_t>(absl::GetFlag(FLAGS_k)));
  for (uint32_t k : top_k) request.add_top_k(k);
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::ConcentrationChange out;
  grpc::Status s = call.stub->ExplainChange(&ctx, request, &out);
  return s.ok() ? Print(out, &FormatChange) : ServerError(s);
}

int Stats(const Call& call) {
  grpc::ClientContext ctx;
  call.Limit(&ctx);
  v1::IngestStats out;
  grpc::Status s = call.stub->GetIngestStats(&ctx, v1::IngestStatsRequest(), &out);
  return s.ok() ? Print(out, &FormatIngestStats) : ServerError(s);
}

int Watch(const Call& call, const v1::ConcentrationRequest& request) {
  const int count = absl::GetFlag(FLAGS_count);
  const bool json = absl::GetFlag(FLAGS_json);
  grpc::ClientContext ctx;  // no deadline: a watch runs until stopped
  std::unique_ptr<grpc::ClientReader<v1::Concentration>> reader =
      call.stub->WatchConcentration(&ctx, request);
  v1::Concentration update;
  int received = 0;
  while (reader->Read(&update)) {
    if (json) {
      if (int rc = Print(update, &FormatWatchRow); rc != 0) return rc;
    } else {
      if (received == 0) std::cout << FormatWatchHeader(update);
      std::cout << FormatWatchRow(update) << std::flush;
    }
    if (++received == count) {
      ctx.TryCancel();
      (void)reader->Finish();
      return 0;
    }
  }
  grpc::Status s = reader->Finish();
  return s.ok() ? 0 : ServerError(s);
}

int Run(const std::vector<char*>& args) {
  if (args.size() < 2) {
    std::cerr << "hubctl: " << Usage() << "\n";
    return kExitUsage;
  }
  if (args.size() > 2) {
    std::vector<std::string> extra(args.begin() + 2, args.end());
    return UsageError(
        absl::StrCat("unexpected arguments after the command: ", absl::StrJoin(extra, " ")));
  }
  const std::string command = args[1];
  const bool is_view_command = command == "concentration" || command == "top" ||
                               command == "series" || command == "shares" || command == "entity" ||
                               command == "watch" || command == "change";
  if (!is_view_command && command != "stats") {
    return UsageError(
        absl::StrCat("unknown command '", command,
                     "'; one of concentration, top, series, shares, entity, change, watch, stats"));
  }

  // Flags that belong to another command are a mistake worth reporting.
  auto only_for = [&](bool given, const char* flag, std::initializer_list<const char*> commands) {
    for (const char* c : commands) {
      if (command == c) return std::optional<int>();
    }
    if (!given) return std::optional<int>();
    return std::optional<int>(
        UsageError(absl::StrCat("--", flag, " does not apply to '", command, "' (only to ",
                                absl::StrJoin(commands, ", "), ")")));
  };
  for (std::optional<int> rc :
       {only_for(!absl::GetFlag(FLAGS_level).empty(), "level",
                 {"concentration", "top", "series", "shares", "entity", "change", "watch"}),
        only_for(!absl::GetFlag(FLAGS_top_k).empty(), "top_k",
                 {"concentration", "series", "change", "watch"}),
        only_for(!absl::GetFlag(FLAGS_from).empty(), "from", {"series", "shares", "change"}),
        only_for(!absl::GetFlag(FLAGS_to).empty(), "to", {"series", "shares", "change"}),
        only_for(absl::GetFlag(FLAGS_k) != 0, "k", {"top", "shares", "change"}),
        only_for(!absl::GetFlag(FLAGS_entity).empty(), "entity", {"entity"}),
        only_for(absl::GetFlag(FLAGS_count) != 0, "count", {"watch"})}) {
    if (rc.has_value()) return *rc;
  }
  if (is_view_command && absl::GetFlag(FLAGS_level).empty()) {
    return UsageError(absl::StrCat("'", command, "' needs --level=", LevelWords()));
  }
  if ((command == "series" || command == "shares") &&
      (absl::GetFlag(FLAGS_from).empty() || absl::GetFlag(FLAGS_to).empty())) {
    return UsageError(absl::StrCat("'", command, "' needs --from=YYYY-Www and --to=YYYY-Www"));
  }
  if (command == "change" &&
      (absl::GetFlag(FLAGS_from).empty() || absl::GetFlag(FLAGS_to).empty())) {
    return UsageError(absl::StrCat("'change' needs --from=W and --to=W, windows among: ",
                                   absl::string_view(WindowWords().data(), WindowWords().size())));
  }
  if (command == "entity" && absl::GetFlag(FLAGS_entity).empty()) {
    return UsageError("'entity' needs --entity=NAME");
  }
  if (absl::GetFlag(FLAGS_k) < 0) return UsageError("--k must be 0 (the default) or more");
  if (absl::GetFlag(FLAGS_count) < 0) return UsageError("--count must be 0 or more");
  if (absl::GetFlag(FLAGS_timeout) <= absl::ZeroDuration()) {
    return UsageError("--timeout must be positive, e.g. 10s");
  }
  std::optional<std::vector<uint32_t>> top_k = TopKFromFlags();
  if (!top_k.has_value()) return kExitUsage;

  const tls::ClientTlsFiles tls_files = tls::ClientTlsFilesFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tls::ChannelCredentials(tls_files);
  if (!credentials.ok()) return UsageError(std::string(credentials.status().message()));

  const std::string addr = absl::GetFlag(FLAGS_addr);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(addr, *credentials);
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_timeout);
  if (std::string why; !Connect(channel, deadline, &why)) {
    std::cerr << "hubctl: cannot reach hubmetricsd at " << addr << ": " << why
              << " (is it running there? set --addr=HOST:PORT"
              << (tls_files.tls() ? "; does it serve TLS with a certificate of --tls_ca_file's CA, "
                                    "and does it require a client certificate "
                                    "(--tls_cert_file, --tls_key_file)?"
                                  : "; if it serves TLS, give --tls_ca_file")
              << ")\n";
    return kExitServer;
  }
  const Call call{v1::MetricsService::NewStub(channel), deadline};

  v1::ConcentrationRequest request;
  *request.mutable_view() = ViewFromFlags();
  request.set_window(absl::GetFlag(FLAGS_window));
  for (uint32_t k : *top_k) request.add_top_k(k);

  if (command == "concentration") return Concentration(call, request);
  if (command == "top") return Top(call);
  if (command == "series") return Series(call, *top_k);
  if (command == "shares") return Shares(call);
  if (command == "entity") return Entity(call);
  if (command == "change") return Change(call, *top_k);
  if (command == "watch") return Watch(call, request);
  return Stats(call);
}

}  // namespace
}  // namespace hubmetrics::hubctl

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(hubmetrics::hubctl::Usage());
  return hubmetrics::hubctl::Run(absl::ParseCommandLine(argc, argv));
}
