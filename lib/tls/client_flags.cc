#include "lib/tls/client_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates hubmetricsd's certificate must chain to: connect over TLS. Empty "
          "(default): plaintext.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate chain for a daemon that requires client certificates (mTLS); "
          "with --tls_key_file and --tls_ca_file. Empty (default): none.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key (unencrypted) of --tls_cert_file. Empty (default): none.");

namespace hubmetrics::tls {

ClientTlsFiles ClientTlsFilesFromFlags() {
  ClientTlsFiles files;
  files.ca.path = absl::GetFlag(FLAGS_tls_ca_file);
  files.cert.path = absl::GetFlag(FLAGS_tls_cert_file);
  files.key.path = absl::GetFlag(FLAGS_tls_key_file);
  return files;
}

}  // namespace hubmetrics::tls
