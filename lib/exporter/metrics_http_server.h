// MetricsHttpServer: the exporter's /metrics endpoint, served by GNU
// libmicrohttpd (HTTP, or HTTPS through GnuTLS, optionally with client
// certificates).
//
// What it serves: GET (or HEAD) /metrics answers 200 with the Prometheus text
// format (`text/plain; version=0.0.4`), rendered by prometheus-cpp's
// TextSerializer from the families that the given collectables return at that
// moment, in the order given. Every other path is 404, every other method 405.
//
// Threads: one. libmicrohttpd's internal polling thread (epoll) accepts,
// reads, renders and writes every connection, so an open connection costs a
// socket, not a thread: idle clients cannot delay a scrape. A connection that
// sends nothing (or does not read its answer) for `idle_timeout` is closed.
// At most `max_connections` are open at once; a connection beyond that is
// accepted and closed at once (the client sees the connection closed, it is
// not left waiting), and a warning is logged (the first, then every 2^k-th).
//
// TLS: with a certificate and key the port speaks only HTTPS. With client CAs
// too (mTLS) a request is answered only when the client presented a
// certificate that chains to one of them and may be used for TLS client
// authentication; otherwise it is answered 403 and nothing else.
//
// Lifetime: Start() binds the port and starts the thread; the destructor stops
// it (closes the listening socket and every connection, joins the thread). The
// collectables are shared with the server and must be safe to Collect() from
// its thread while other threads use them.
//
// Errors (from Start, as absl::Status; nothing throws): InvalidArgument for
// options that make no sense (a malformed --listen, a limit or timeout out of
// range, a key without a certificate, client CAs without TLS) and for PEM text
// GnuTLS does not accept; Unavailable when the address cannot be bound (in
// use, not local), with libmicrohttpd's reason. Files are read and checked by
// ReadMetricsTlsFiles, with the messages of lib/tls (flag and file named).
#ifndef HUBMETRICS_LIB_EXPORTER_METRICS_HTTP_SERVER_H_
#define HUBMETRICS_LIB_EXPORTER_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/tls/tls.h"
#include "prometheus/collectable.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace hubmetrics::exporter {

inline constexpr int kMaxWebConnections = 65536;

struct MetricsHttpServerOptions {
  // HOST:PORT, HOST an IPv4 address, a bracketed IPv6 address or a name
  // (resolved once, at start; the first address is used); port 0: any free one.
  std::string listen = "127.0.0.1:0";
  // Connections open at once, 1..kMaxWebConnections.
  int max_connections = 64;
  // A connection idle this long is closed; 1s..1h, whole seconds (rounded up).
  absl::Duration idle_timeout = absl::Seconds(10);
  // PEM text. Empty: plain HTTP. Both or neither.
  std::string tls_cert_pem = {};  // the chain, leaf first
  std::string tls_key_pem = {};   // unencrypted
  // PEM CA certificates; not empty: clients must present a certificate that
  // chains to one of them (only with tls_cert_pem and tls_key_pem).
  std::string tls_client_ca_pem = {};
};

// The server's TLS flags, e.g. --web_tls_cert_file, --web_tls_key_file,
// --web_tls_client_ca_file. None given: plain HTTP.
struct MetricsTlsFiles {
  tls::FlagFile cert{"--web_tls_cert_file", ""};
  tls::FlagFile key{"--web_tls_key_file", ""};
  tls::FlagFile client_ca{"--web_tls_client_ca_file", ""};
};

// Reads and checks the files (lib/tls: readable, PEM, the key belongs to the
// certificate) into options->tls_*. None given: leaves options alone and
// returns OK. A client CA without certificate and key, or one of those
// without the other, is InvalidArgument naming the flags.
absl::Status ReadMetricsTlsFiles(const MetricsTlsFiles& files, MetricsHttpServerOptions* options);

class MetricsHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      MetricsHttpServerOptions options,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port (the chosen one when options.listen had port 0).
  int port() const { return port_; }
  bool tls() const { return !options_.tls_cert_pem.empty(); }
  bool mtls() const { return !options_.tls_client_ca_pem.empty(); }
  // Connections closed at once because max_connections were open.
  int64_t refused_connections() const { return refused_.load(std::memory_order_relaxed); }

 private:
  MetricsHttpServer(MetricsHttpServerOptions options,
                    std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

  friend struct MhdCallbacks;  // libmicrohttpd's callbacks (metrics_http_server.cc)

  std::string Render() const;
  bool ClientCertificateOk(MHD_Connection* connection) const;

  const MetricsHttpServerOptions options_;
  const std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  // Touched by the polling thread only (and by Start before it exists).
  int open_connections_ = 0;
  std::atomic<int64_t> refused_{0};
  // libmicrohttpd's messages while Start runs, for its error.
  absl::Mutex mu_;
  bool starting_ ABSL_GUARDED_BY(mu_) = true;
  std::string start_errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hubmetrics::exporter

#endif  // HUBMETRICS_LIB_EXPORTER_METRICS_HTTP_SERVER_H_
