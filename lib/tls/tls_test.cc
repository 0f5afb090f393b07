// Tests of the TLS file helpers with certificates made by the openssl command
// at test time (a CA, a server certificate for 127.0.0.1/localhost, a client
// certificate, and a second, unrelated CA), and of real TLS connections to an
// in-process gRPC server on 127.0.0.1.
#include "lib/tls/tls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "gtest/gtest.h"

namespace hubmetrics::tls {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Makes the certificates once for all tests, in a fresh directory.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "tls_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    const std::string script = absl::StrCat("set -e; cd '", *dir_, "'\n",
                                            R"(
mkca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
mkcert() {  # name, ca, extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
mkca ca
mkca other-ca
mkcert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
mkcert client ca "extendedKeyUsage=clientAuth"
: > empty.pem
)");
    if (std::system(("which openssl >/dev/null 2>&1")) != 0) {
      openssl_missing_ = true;
      return;
    }
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl could not make the test certificates";
  }

  static void TearDownTestSuite() {
    std::system(absl::StrCat("rm -rf '", *dir_, "'").c_str());
    delete dir_;
  }

  void SetUp() override {
    if (openssl_missing_) GTEST_SKIP() << "the openssl command is not installed";
  }

  static std::string Path(const std::string& name) { return absl::StrCat(*dir_, "/", name); }

  static ServerTlsFiles Server(const std::string& cert, const std::string& key,
                               const std::string& client_ca = "") {
    ServerTlsFiles f;
    f.cert.path = cert.empty() ? "" : Path(cert);
    f.key.path = key.empty() ? "" : Path(key);
    f.client_ca.path = client_ca.empty() ? "" : Path(client_ca);
    return f;
  }

  static ClientTlsFiles Client(const std::string& ca, const std::string& cert = "",
                               const std::string& key = "") {
    ClientTlsFiles f;
    f.ca.path = ca.empty() ? "" : Path(ca);
    f.cert.path = cert.empty() ? "" : Path(cert);
    f.key.path = key.empty() ? "" : Path(key);
    return f;
  }

  static std::string* dir_;
  static bool openssl_missing_;
};

std::string* TlsTest::dir_ = nullptr;
bool TlsTest::openssl_missing_ = false;

TEST_F(TlsTest, ReadsAFile) {
  absl::StatusOr<std::string> pem = ReadFlagFile({"--tls_ca_file", Path("ca.crt")});
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_THAT(*pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
}

TEST_F(TlsTest, MissingFileNamesFlagAndPath) {
  absl::StatusOr<std::string> pem = ReadFlagFile({"--tls_ca_file", Path("nope.crt")});
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(pem.status().message(),
              AllOf(HasSubstr("--tls_ca_file="), HasSubstr(Path("nope.crt")),
                    HasSubstr("No such file or directory")));
}

TEST_F(TlsTest, EmptyFileAndDirectoryAreRefused) {
  absl::StatusOr<std::string> empty = ReadFlagFile({"--tls_key_file", Path("empty.pem")});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(),
              AllOf(HasSubstr("--tls_key_file="), HasSubstr("the file is empty")));
  absl::StatusOr<std::string> dir = ReadFlagFile({"--tls_key_file", *dir_});
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dir.status().message(), HasSubstr("not a regular file"));
}

TEST_F(TlsTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string path = Path("unreadable.key");
  std::ofstream(path) << "x";
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  absl::StatusOr<std::string> pem = ReadFlagFile({"--tls_key_file", path});
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(pem.status().message(), HasSubstr("--tls_key_file="));
}

TEST_F(TlsTest, ReadsAMatchingKeyPair) {
  absl::StatusOr<KeyPair> pair =
      ReadKeyPair({"--tls_cert_file", Path("server.crt")}, {"--tls_key_file", Path("server.key")});
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_THAT(pair->cert_chain_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(pair->private_key_pem, HasSubstr("PRIVATE KEY"));
}

TEST_F(TlsTest, MismatchedKeyPairIsRefused) {
  absl::StatusOr<KeyPair> pair =
      ReadKeyPair({"--tls_cert_file", Path("server.crt")}, {"--tls_key_file", Path("client.key")});
  EXPECT_EQ(pair.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pair.status().message(),
              AllOf(HasSubstr(Path("client.key")), HasSubstr("does not belong to the certificate"),
                    HasSubstr(Path("server.crt"))));
}

TEST_F(TlsTest, SwappedCertAndKeyFilesAreRefused) {
  absl::StatusOr<KeyPair> as_cert =
      ReadKeyPair({"--tls_cert_file", Path("server.key")}, {"--tls_key_file", Path("server.key")});
  EXPECT_THAT(as_cert.status().message(),
              AllOf(HasSubstr("--tls_cert_file="), HasSubstr("no PEM certificate")));
  absl::StatusOr<KeyPair> as_key =
      ReadKeyPair({"--tls_cert_file", Path("server.crt")}, {"--tls_key_file", Path("server.crt")});
  EXPECT_THAT(as_key.status().message(),
              AllOf(HasSubstr("--tls_key_file="), HasSubstr("no unencrypted PEM private key")));
}

TEST_F(TlsTest, CertificateWithoutKeyNamesTheMissingFlag) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ServerCredentials(Server("server.crt", ""));
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(),
              AllOf(HasSubstr("--tls_cert_file="), HasSubstr("without --tls_key_file")));
  creds = ServerCredentials(Server("", "server.key"));
  EXPECT_THAT(creds.status().message(),
              AllOf(HasSubstr("--tls_key_file="), HasSubstr("without --tls_cert_file")));
}

TEST_F(TlsTest, ClientCaWithoutServerCertificateIsRefused) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ServerCredentials(Server("", "", "ca.crt"));
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(),
              AllOf(HasSubstr("--tls_client_ca_file="), HasSubstr("--tls_cert_file")));
}

TEST_F(TlsTest, ClientCertificateWithoutCaIsRefused) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      ChannelCredentials(Client("", "client.crt", "client.key"));
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(), HasSubstr("without --tls_ca_file"));
}

TEST_F(TlsTest, NoFlagsMeansPlaintext) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server = ServerCredentials({});
  ASSERT_TRUE(server.ok());
  EXPECT_NE(*server, nullptr);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> client = ChannelCredentials({});
  ASSERT_TRUE(client.ok());
  EXPECT_NE(*client, nullptr);
}

// Answers every method by echoing the request: a server needs a service, and
// this one needs no generated code.
class EchoService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Echo final : public grpc::ServerGenericBidiReactor {
     public:
      Echo() { StartRead(&message_); }
      void OnReadDone(bool ok) override {
        if (ok) {
          StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
        } else {
          Finish(grpc::Status::OK);
        }
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer message_;
    };
    return new Echo;
  }
};

// One unary call from a client with `client` credentials to a fresh server
// with `server` credentials on 127.0.0.1: its status.
grpc::Status Call(const std::shared_ptr<grpc::ServerCredentials>& server,
                  const std::shared_ptr<grpc::ChannelCredentials>& client) {
  EchoService echo;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", server, &port);
  builder.RegisterCallbackGenericService(&echo);
  std::unique_ptr<grpc::Server> s = builder.BuildAndStart();
  if (s == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "the server did not start");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), client);
  grpc::Slice slice(std::string("ping"));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(),
      grpc::internal::RpcMethod("/test.Echo/Echo", grpc::internal::RpcMethod::NORMAL_RPC), &ctx,
      request, &response);
  s->Shutdown();
  return status;
}

TEST_F(TlsTest, TlsConnectsOnlyWithTheRightCa) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server =
      ServerCredentials(Server("server.crt", "server.key"));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> right =
      ChannelCredentials(Client("ca.crt"));
  ASSERT_TRUE(right.ok()) << right.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> wrong =
      ChannelCredentials(Client("other-ca.crt"));
  ASSERT_TRUE(wrong.ok()) << wrong.status();

  grpc::Status ok = Call(*server, *right);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::Status untrusted = Call(*server, *wrong);
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(untrusted.error_message(), HasSubstr("certificate verify failed"));
  grpc::Status plaintext = Call(*server, grpc::InsecureChannelCredentials());
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
}

TEST_F(TlsTest, MutualTlsNeedsTheClientCertificate) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server =
      ServerCredentials(Server("server.crt", "server.key", "ca.crt"));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> with_cert =
      ChannelCredentials(Client("ca.crt", "client.crt", "client.key"));
  ASSERT_TRUE(with_cert.ok()) << with_cert.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> without_cert =
      ChannelCredentials(Client("ca.crt"));
  ASSERT_TRUE(without_cert.ok()) << without_cert.status();

  grpc::Status ok = Call(*server, *with_cert);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::Status refused = Call(*server, *without_cert);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
}

}  // namespace
}  // namespace hubmetrics::tls
