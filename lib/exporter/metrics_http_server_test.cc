#include "lib/exporter/metrics_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace hubmetrics::exporter {
namespace {

using ::testing::HasSubstr;

constexpr char kGetMetrics[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

// A connected TCP socket to 127.0.0.1:port with receive/send timeouts, or -1.
int Connect(int port, absl::Duration timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(timeout));
  tv.tv_usec = static_cast<suseconds_t>(
      absl::ToInt64Microseconds(timeout - absl::Seconds(absl::ToInt64Seconds(timeout))));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct Reply {
  bool complete = false;  // the server closed the connection after answering
  std::string text;       // what it sent
  std::string error;      // why not complete
  int status() const {
    return absl::StartsWith(text, "HTTP/1.") && text.size() > 12 ? std::atoi(text.c_str() + 9) : 0;
  }
  std::string body() const {
    const size_t at = text.find("\r\n\r\n");
    return at == std::string::npos ? "" : text.substr(at + 4);
  }
};

// Sends `request` over plain TCP and reads until the server closes.
Reply Plain(int port, const std::string& request, absl::Duration timeout = absl::Seconds(10)) {
  Reply r;
  const int fd = Connect(port, timeout);
  if (fd < 0) {
    r.error = absl::StrCat("connect: ", std::strerror(errno));
    return r;
  }
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    r.error = absl::StrCat("send: ", std::strerror(errno));
  }
  char buffer[65536];
  while (r.error.empty()) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) {
      r.complete = true;
      break;
    }
    if (n < 0) {
      r.error = absl::StrCat("recv: ", std::strerror(errno));
      break;
    }
    r.text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return r;
}

// Makes test certificates with the openssl command in a fresh directory.
class Certs {
 public:
  bool Make() {
    char tmpl[] = "/tmp/hm-mhd-certs-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return false;
    dir_ = tmpl;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    auto leaf = [&](const std::string& name, const std::string& ext) {
      return absl::StrCat("openssl req ", ec, " -subj /CN=", name, " -keyout ", name, ".key -out ",
                          name, ".csr && printf '", ext, "' > ", name,
                          ".ext && openssl x509 -req -in ", name,
                          ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ", name,
                          ".ext -out ", name, ".crt");
    };
    const std::string script = absl::StrCat(
        "(cd ", dir_, " && openssl req -x509 ", ec, " -days 2 -subj /CN=test-ca -keyout ca.key",
        " -out ca.crt && openssl req -x509 ", ec,
        " -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.crt && ",
        leaf("server", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n"), " && ",
        leaf("client", "extendedKeyUsage=clientAuth\\n"), ") >/dev/null 2>&1");
    return std::system(script.c_str()) == 0;
  }
  ~Certs() {
    if (!dir_.empty()) std::system(absl::StrCat("rm -rf ", dir_).c_str());
  }
  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string dir_;
};

// Sends `request` over TLS, trusting `ca_file` and checking that the server's
// certificate names 127.0.0.1; presents client.crt when client_cert.
Reply Tls(int port, const Certs& certs, const std::string& ca, bool client_cert,
          const std::string& request = kGetMetrics) {
  Reply r;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), certs.Path(ca).c_str(), nullptr) != 1) {
    r.error = "cannot load the CA";
    return r;
  }
  if (client_cert &&
      (SSL_CTX_use_certificate_chain_file(ctx.get(), certs.Path("client.crt").c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx.get(), certs.Path("client.key").c_str(), SSL_FILETYPE_PEM) !=
           1)) {
    r.error = "cannot load the client certificate";
    return r;
  }
  const int fd = Connect(port, absl::Seconds(10));
  if (fd < 0) {
    r.error = "connect failed";
    return r;
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), "127.0.0.1");
  SSL_set_fd(ssl.get(), fd);
  if (SSL_connect(ssl.get()) != 1) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof(err));
    r.error = absl::StrCat("handshake: ", err);
    close(fd);
    return r;
  }
  SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
  char buffer[65536];
  while (true) {
    const int n = SSL_read(ssl.get(), buffer, sizeof(buffer));
    if (n <= 0) {
      const int e = SSL_get_error(ssl.get(), n);
      r.complete = e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL;
      if (!r.complete) r.error = absl::StrCat("SSL_read error ", e);
      break;
    }
    r.text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return r;
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  MetricsHttpServerTest() : registry_(std::make_shared<prometheus::Registry>()) {
    prometheus::BuildCounter()
        .Name("test_events_total")
        .Help("Events read.")
        .Register(*registry_)
        .Add({{"outcome", "unique"}})
        .Increment(42);
  }

  std::unique_ptr<MetricsHttpServer> StartServer(MetricsHttpServerOptions options) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(std::move(options), {registry_});
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  std::shared_ptr<prometheus::Registry> registry_;
};

TEST_F(MetricsHttpServerTest, ServesTheTextFormat) {
  auto server = StartServer({});
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  const Reply r = Plain(server->port(), kGetMetrics);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status(), 200) << r.text;
  EXPECT_THAT(r.text, HasSubstr("Content-Type: text/plain; version=0.0.4\r\n"));
  EXPECT_THAT(r.body(), HasSubstr("# HELP test_events_total Events read.\n"
                                  "# TYPE test_events_total counter\n"
                                  "test_events_total{outcome=\"unique\"} 42\n"));
}

TEST_F(MetricsHttpServerTest, OtherPathsAre404) {
  auto server = StartServer({});
  ASSERT_NE(server, nullptr);
  for (const char* path : {"/", "/metricsx", "/metrics/", "/favicon.ico"}) {
    const Reply r =
        Plain(server->port(), absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(r.complete || !r.text.empty()) << path << ": " << r.error;
    EXPECT_EQ(r.status(), 404) << path;
    EXPECT_THAT(r.body(), ::testing::Not(HasSubstr("test_events_total"))) << path;
  }
  const Reply post = Plain(server->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(post.status(), 405);
}

TEST_F(MetricsHttpServerTest, IdleConnectionsDoNotDelayAScrape) {
  auto server = StartServer({.max_connections = 128, .idle_timeout = absl::Seconds(60)});
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 64; ++i) {
    const int fd = Connect(server->port(), absl::Seconds(10));
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // One more idle connection that sent half a request.
  const int half = Connect(server->port(), absl::Seconds(10));
  ASSERT_GE(half, 0);
  ASSERT_GT(send(half, "GET /metr", 9, MSG_NOSIGNAL), 0);
  const absl::Time start = absl::Now();
  const Reply r = Plain(server->port(), kGetMetrics, absl::Seconds(5));
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status(), 200);
  EXPECT_LT(took, absl::Seconds(2));
  for (int fd : idle) close(fd);
  close(half);
}

TEST_F(MetricsHttpServerTest, AConnectionOverTheLimitIsClosedNotLeftWaiting) {
  auto server = StartServer({.max_connections = 4, .idle_timeout = absl::Seconds(60)});
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) {
    const int fd = Connect(server->port(), absl::Seconds(10));
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // Accepted in order: the fifth finds four open and is closed at once (EOF or
  // reset), long before the idle timeout.
  const absl::Time start = absl::Now();
  const Reply r = Plain(server->port(), kGetMetrics, absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(r.complete || absl::StrContains(r.error, "reset")) << r.error;
  EXPECT_EQ(r.status(), 0) << r.text;
  EXPECT_EQ(server->refused_connections(), 1);

  for (int fd : idle) close(fd);
  // Once they are closed, scrapes are answered again.
  Reply again;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    again = Plain(server->port(), kGetMetrics, absl::Seconds(5));
    if (again.status() == 200) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(again.status(), 200) << again.error;
}

TEST_F(MetricsHttpServerTest, ClosesAnIdleConnectionAfterTheTimeout) {
  auto server = StartServer({.idle_timeout = absl::Seconds(1)});
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port(), absl::Seconds(30));
  ASSERT_GE(fd, 0);
  const absl::Time start = absl::Now();
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);
  EXPECT_EQ(n, 0) << std::strerror(errno);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  close(fd);
}

TEST_F(MetricsHttpServerTest, ServesHttpsAndRefusesPlainHttp) {
  Certs certs;
  if (!certs.Make()) GTEST_SKIP() << "the openssl command failed or is missing";
  MetricsHttpServerOptions options;
  ASSERT_TRUE(ReadMetricsTlsFiles({.cert = {"--web_tls_cert_file", certs.Path("server.crt")},
                                   .key = {"--web_tls_key_file", certs.Path("server.key")}},
                                  &options)
                  .ok());
  auto server = StartServer(std::move(options));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());
  EXPECT_FALSE(server->mtls());

  const Reply r = Tls(server->port(), certs, "ca.crt", false);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status(), 200);
  EXPECT_THAT(r.body(), HasSubstr("test_events_total{outcome=\"unique\"} 42\n"));

  const Reply other = Tls(server->port(), certs, "other-ca.crt", false);
  EXPECT_THAT(other.error, HasSubstr("certificate verify failed"));

  const Reply plain = Plain(server->port(), kGetMetrics, absl::Seconds(5));
  EXPECT_NE(plain.status(), 200);
  EXPECT_THAT(plain.text, ::testing::Not(HasSubstr("test_events_total")));
}

TEST_F(MetricsHttpServerTest, MutualTlsNeedsAClientCertificateOfTheCa) {
  Certs certs;
  if (!certs.Make()) GTEST_SKIP() << "the openssl command failed or is missing";
  MetricsHttpServerOptions options;
  ASSERT_TRUE(ReadMetricsTlsFiles({.cert = {"--web_tls_cert_file", certs.Path("server.crt")},
                                   .key = {"--web_tls_key_file", certs.Path("server.key")},
                                   .client_ca = {"--web_tls_client_ca_file", certs.Path("ca.crt")}},
                                  &options)
                  .ok());
  auto server = StartServer(std::move(options));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->mtls());

  const Reply without = Tls(server->port(), certs, "ca.crt", false);
  EXPECT_EQ(without.status(), 403) << without.error;
  EXPECT_THAT(without.text, ::testing::Not(HasSubstr("test_events_total")));

  const Reply with = Tls(server->port(), certs, "ca.crt", true);
  ASSERT_TRUE(with.complete) << with.error;
  EXPECT_EQ(with.status(), 200);
  EXPECT_THAT(with.body(), HasSubstr("test_events_total{outcome=\"unique\"} 42\n"));
}

TEST(MetricsHttpServerOptionsTest, BadOptionsAreErrors) {
  auto start = [](MetricsHttpServerOptions o) {
    return MetricsHttpServer::Start(std::move(o), {}).status();
  };
  EXPECT_EQ(start({.listen = "127.0.0.1"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.listen = ":9464"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.listen = "127.0.0.1:70000"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.max_connections = 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.idle_timeout = absl::Milliseconds(10)}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.tls_cert_pem = "x"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.tls_client_ca_pem = "x"}).code(), absl::StatusCode::kInvalidArgument);

  // A port in use.
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> first = MetricsHttpServer::Start({}, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Status second = start({.listen = absl::StrCat("127.0.0.1:", (*first)->port())});
  EXPECT_EQ(second.code(), absl::StatusCode::kUnavailable) << second;
  EXPECT_THAT(std::string(second.message()), HasSubstr("--listen"));

  MetricsHttpServerOptions options;
  const absl::Status ca_alone =
      ReadMetricsTlsFiles({.client_ca = {"--web_tls_client_ca_file", "ca.crt"}}, &options);
  EXPECT_EQ(ca_alone.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ca_alone.message()), HasSubstr("--web_tls_cert_file"));
  const absl::Status cert_alone =
      ReadMetricsTlsFiles({.cert = {"--web_tls_cert_file", "server.crt"}}, &options);
  EXPECT_THAT(std::string(cert_alone.message()), HasSubstr("without --web_tls_key_file"));
  EXPECT_TRUE(ReadMetricsTlsFiles({}, &options).ok());
  EXPECT_TRUE(options.tls_cert_pem.empty());
}

}  // namespace
}  // namespace hubmetrics::exporter
