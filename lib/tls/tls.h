// TLS for hubmetrics' gRPC API and the exporter's /metrics: reads the PEM files
// that command-line flags name and builds gRPC credentials from them, one way
// for every binary (hubmetricsd, hubctl, hubmetrics-exporter, the bench
// clients), so that all of them accept the same files and fail the same way.
//
// Files are read and checked when the credentials are built, i.e. at start:
// a missing, unreadable or empty file, a file without a PEM certificate (or
// key), an encrypted key, and a key that does not belong to its certificate
// are reported then, instead of as a failed TLS handshake on the first call.
//
// Errors: every message names the flag and the file and says what to do.
// InvalidArgument for a combination of flags that makes no sense (a
// certificate without its key, a client CA without a server certificate) and
// for a file whose content is wrong; NotFound or PermissionDenied for a file
// that cannot be opened.
//
// Thread safety: free functions without shared state; safe from any thread.
#ifndef HUBMETRICS_LIB_TLS_TLS_H_
#define HUBMETRICS_LIB_TLS_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace hubmetrics::tls {

// A file named by a command-line flag; errors name both.
struct FlagFile {
  std::string flag;  // as typed on the command line, e.g. "--tls_cert_file"
  std::string path;  // empty: the flag was not given
  bool given() const { return !path.empty(); }
};

// The whole content of `file`. Errors: NotFound / PermissionDenied / Internal
// when it cannot be read (with the OS's reason), InvalidArgument when it is a
// directory, empty or larger than 1 MiB (no PEM file of ours is).
absl::StatusOr<std::string> ReadFlagFile(const FlagFile& file);

// PEM text of one TLS identity: the certificate chain (leaf first) and the
// private key of the leaf.
struct KeyPair {
  std::string cert_chain_pem;
  std::string private_key_pem;
};

// Reads and checks an identity: both flags given (else InvalidArgument naming
// the missing one), the certificate file holds at least one PEM certificate,
// the key file an unencrypted PEM private key, and the key belongs to the
// first certificate.
absl::StatusOr<KeyPair> ReadKeyPair(const FlagFile& cert, const FlagFile& key);

// Reads a file of trusted CA certificates (one or more PEM certificates).
absl::StatusOr<std::string> ReadCaCertificates(const FlagFile& ca);

// The TLS flags of a gRPC server. None given: plaintext.
struct ServerTlsFiles {
  FlagFile cert{"--tls_cert_file", ""};
  FlagFile key{"--tls_key_file", ""};
  // Given: clients must present a certificate that chains to one of these CAs
  // (mTLS). Only together with cert and key.
  FlagFile client_ca{"--tls_client_ca_file", ""};
  bool tls() const { return cert.given() || key.given() || client_ca.given(); }
};

// Credentials for grpc::ServerBuilder::AddListeningPort: insecure when no flag
// is given, TLS with cert + key, and with client_ca also
// GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY. Never null.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerTlsFiles& files);

// The TLS flags of a gRPC client. None given: plaintext.
struct ClientTlsFiles {
  // The CAs the server's certificate must chain to; the server's name (the
  // host of the target address) must be in its subjectAltName.
  FlagFile ca{"--tls_ca_file", ""};
  // Both or neither, and only with ca: the client's own certificate (mTLS).
  FlagFile cert{"--tls_cert_file", ""};
  FlagFile key{"--tls_key_file", ""};
  bool tls() const { return ca.given() || cert.given() || key.given(); }
};

// Credentials for grpc::CreateChannel / CreateCustomChannel: insecure when no
// flag is given, TLS verifying the server with ca, and presenting cert + key
// when given. A client certificate without ca is InvalidArgument: the client
// would otherwise trust every public CA, not the deployment's own. Never null.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const ClientTlsFiles& files);

}  // namespace hubmetrics::tls

#endif  // HUBMETRICS_LIB_TLS_TLS_H_
