#include "lib/exporter/metrics_http_server.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "lib/base/log.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace hubmetrics::exporter {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4";

// HOST:PORT → host (brackets of an IPv6 literal removed) and port.
absl::Status SplitListen(const std::string& listen, std::string* host, std::string* port) {
  const size_t colon = listen.rfind(':');
  int number = 0;
  if (colon == std::string::npos || colon + 1 == listen.size() ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &number) || number < 0 ||
      number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen=", listen, ": expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"));
  }
  absl::string_view h = absl::string_view(listen).substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen=", listen, ": no host; give 0.0.0.0:PORT to listen on every IPv4 address"));
  }
  *host = std::string(h);
  *port = std::to_string(number);
  return absl::OkStatus();
}

// The first address `host`:`port` resolves to, for listening.
absl::Status Resolve(const std::string& listen, sockaddr_storage* out, socklen_t* out_len) {
  std::string host, port;
  if (absl::Status s = SplitListen(listen, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen=", listen, ": cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::memcpy(out, result->ai_addr, result->ai_addrlen);
  *out_len = result->ai_addrlen;
  freeaddrinfo(result);
  return absl::OkStatus();
}

// Logs the first refusal and then every 2^k-th, so that a flood does not flood the log.
bool PowerOfTwo(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

MHD_Result Respond(MHD_Connection* connection, unsigned int status, const std::string& body,
                   const char* content_type) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  const MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

}  // namespace

// libmicrohttpd's callbacks; each runs on the server's polling thread.
struct MhdCallbacks {
  static MHD_Result AcceptPolicy(void* cls, const sockaddr* /*addr*/, socklen_t /*addrlen*/) {
    auto* self = static_cast<MetricsHttpServer*>(cls);
    if (self->open_connections_ < self->options_.max_connections) return MHD_YES;
    const int64_t refused = self->refused_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (PowerOfTwo(refused)) {
      LogWarning(
          "/metrics: %d connections are open (--web_max_connections), closing a new one at once "
          "(%d refused so far)",
          self->options_.max_connections, refused);
    }
    return MHD_NO;
  }

  static void NotifyConnection(void* cls, MHD_Connection* /*connection*/, void** /*socket_context*/,
                               MHD_ConnectionNotificationCode toe) {
    auto* self = static_cast<MetricsHttpServer*>(cls);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
      ++self->open_connections_;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
      --self->open_connections_;
    }
  }

  static MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char* /*version*/, const char* /*upload_data*/,
                           size_t* upload_data_size, void** /*con_cls*/) {
    auto* self = static_cast<MetricsHttpServer*>(cls);
    // A request body is not read: the answer below is queued on the first call,
    // and libmicrohttpd closes the connection after it.
    *upload_data_size = 0;
    if (self->mtls() && !self->ClientCertificateOk(connection)) {
      return Respond(connection, MHD_HTTP_FORBIDDEN,
                     "a client certificate of the CA in --web_tls_client_ca_file is required\n",
                     "text/plain; charset=utf-8");
    }
    if (std::strcmp(url, "/metrics") != 0) {
      return Respond(connection, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n",
                     "text/plain; charset=utf-8");
    }
    if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
      return Respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n",
                     "text/plain; charset=utf-8");
    }
    return Respond(connection, MHD_HTTP_OK, self->Render(), kContentType);
  }

  __attribute__((format(printf, 2, 0))) static void Logger(void* cls, const char* format,
                                                           va_list ap) {
    auto* self = static_cast<MetricsHttpServer*>(cls);
    char buffer[512];
    std::vsnprintf(buffer, sizeof(buffer), format, ap);
    const absl::string_view message = absl::StripTrailingAsciiWhitespace(buffer);
    {
      absl::MutexLock lock(&self->mu_);
      if (self->starting_) {
        absl::StrAppend(&self->start_errors_, self->start_errors_.empty() ? "" : "; ", message);
        return;
      }
    }
    LogWarning("/metrics (libmicrohttpd): %s", message);
  }
};

absl::Status ReadMetricsTlsFiles(const MetricsTlsFiles& files, MetricsHttpServerOptions* options) {
  if (!files.cert.given() && !files.key.given() && !files.client_ca.given()) {
    return absl::OkStatus();
  }
  if (files.client_ca.given() && !files.cert.given() && !files.key.given()) {
    return absl::InvalidArgumentError(absl::StrCat(
        files.client_ca.flag, "=", files.client_ca.path, " is given without ", files.cert.flag,
        " and ", files.key.flag,
        ": client certificates are only checked over HTTPS; give the server's certificate and "
        "key too"));
  }
  absl::StatusOr<tls::KeyPair> pair = tls::ReadKeyPair(files.cert, files.key);
  if (!pair.ok()) return pair.status();
  std::string client_ca;
  if (files.client_ca.given()) {
    absl::StatusOr<std::string> ca = tls::ReadCaCertificates(files.client_ca);
    if (!ca.ok()) return ca.status();
    client_ca = *std::move(ca);
  }
  options->tls_cert_pem = std::move(pair->cert_chain_pem);
  options->tls_key_pem = std::move(pair->private_key_pem);
  options->tls_client_ca_pem = std::move(client_ca);
  return absl::OkStatus();
}

MetricsHttpServer::MetricsHttpServer(
    MetricsHttpServerOptions options,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
    : options_(std::move(options)), collectables_(std::move(collectables)) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    MetricsHttpServerOptions options,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  if (options.max_connections < 1 || options.max_connections > kMaxWebConnections) {
    return absl::InvalidArgumentError(
        absl::StrCat("--web_max_connections=", options.max_connections, ": must be between 1 and ",
                     kMaxWebConnections));
  }
  if (options.idle_timeout < absl::Seconds(1) || options.idle_timeout > absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--web_idle_timeout=", absl::FormatDuration(options.idle_timeout),
                     ": must be between 1s and 1h"));
  }
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("a TLS certificate needs its key and a key its certificate");
  }
  if (!options.tls_client_ca_pem.empty() && options.tls_cert_pem.empty()) {
    return absl::InvalidArgumentError("client CAs (mTLS) need the server's certificate and key");
  }
  for (const auto& c : collectables) {
    if (c == nullptr) return absl::InvalidArgumentError("a null collectable");
  }
  sockaddr_storage address{};
  socklen_t address_len = 0;
  if (absl::Status s = Resolve(options.listen, &address, &address_len); !s.ok()) return s;

  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(std::move(options), std::move(collectables)));
  const MetricsHttpServerOptions& o = server->options_;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (address.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  if (server->tls()) flags |= MHD_USE_TLS;
  // The limit is enforced by AcceptPolicy (closing at once); libmicrohttpd's own,
  // one above it, is never reached: at its limit it would stop accepting, and a
  // new client would wait in the listen backlog instead of being told.
  const auto idle_seconds =
      static_cast<unsigned int>(absl::ToInt64Seconds(absl::Ceil(o.idle_timeout, absl::Seconds(1))));
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_SOCK_ADDR, 0, &address},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(o.max_connections) + 1, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds, nullptr},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&MhdCallbacks::NotifyConnection),
       server.get()},
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&MhdCallbacks::Logger), server.get()},
  };
  if (server->tls()) {
    items.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(o.tls_cert_pem.c_str())});
    items.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(o.tls_key_pem.c_str())});
    if (server->mtls()) {
      // libmicrohttpd then asks every client for a certificate; Handle checks it.
      items.push_back(
          {MHD_OPTION_HTTPS_MEM_TRUST, 0, const_cast<char*>(o.tls_client_ca_pem.c_str())});
    }
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});

  server->daemon_ =
      MHD_start_daemon(flags, 0, &MhdCallbacks::AcceptPolicy, server.get(), &MhdCallbacks::Handle,
                       server.get(), MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  std::string errors;
  {
    absl::MutexLock lock(&server->mu_);
    server->starting_ = false;
    errors = std::move(server->start_errors_);
  }
  if (server->daemon_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve /metrics on ", o.listen,
                     " (--listen): ", errors.empty() ? "libmicrohttpd did not start" : errors));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(server->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  server->port_ = info != nullptr ? info->port : 0;
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

std::string MetricsHttpServer::Render() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables_) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

bool MetricsHttpServer::ClientCertificateOk(MHD_Connection* connection) const {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return false;
  auto session = static_cast<gnutls_session_t>(info->tls_session);
  unsigned int peers = 0;
  if (gnutls_certificate_get_peers(session, &peers) == nullptr || peers == 0) return false;
  // Chains to the trusted CAs, in its validity period, usable for client authentication.
  gnutls_typed_vdata_st purpose{};
  purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
  purpose.data = reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT));
  unsigned int status = 0;
  if (gnutls_certificate_verify_peers(session, &purpose, 1, &status) != GNUTLS_E_SUCCESS) {
    return false;
  }
  return status == 0;
}

}  // namespace hubmetrics::exporter
