#include "lib/tls/tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace hubmetrics::tls {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

std::string Named(const FlagFile& file) { return absl::StrCat(file.flag, "=", file.path); }

// OpenSSL keeps errors in a per-thread queue that later TLS calls (gRPC's own,
// on this thread) would read as theirs: take them out, as text for a message.
std::string TakeOpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Refuses to ask for a passphrase: OpenSSL's default would prompt on the
// terminal of a daemon.
int NoPassphrase(char*, int, int, void*) { return -1; }

// The certificates of a PEM text, leaf first; an error naming `file` when
// there is none.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const FlagFile& file,
                                                       const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certs.emplace_back(x);
  }
  // Reading stops with "no start line" at the end of the text: not an error
  // once a certificate was read.
  const std::string errors = TakeOpenSslErrors();
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(file), ": no PEM certificate in it (", errors,
        "); give a file with \"-----BEGIN CERTIFICATE-----\" blocks, e.g. made by openssl req "
        "-x509 or openssl x509 -req"));
  }
  return certs;
}

}  // namespace

absl::StatusOr<std::string> ReadFlagFile(const FlagFile& file) {
  const int fd = open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = absl::StrCat(Named(file), ": cannot open: ", std::strerror(err),
                                       "; give the path of a readable PEM file");
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  std::string content;
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status =
        absl::InternalError(absl::StrCat(Named(file), ": cannot stat: ", std::strerror(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(
        absl::StrCat(Named(file), ": not a regular file; give the path of a PEM file"));
  } else {
    char buf[16384];
    while (status.ok()) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status =
            absl::InternalError(absl::StrCat(Named(file), ": cannot read: ", std::strerror(errno)));
      } else if (n == 0) {
        break;
      } else if (content.size() + static_cast<size_t>(n) > kMaxFileBytes) {
        status = absl::InvalidArgumentError(
            absl::StrCat(Named(file), ": larger than 1 MiB; give a PEM certificate or key file"));
      } else {
        content.append(buf, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  if (content.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(file), ": the file is empty; give a PEM certificate or key file"));
  }
  return content;
}

absl::StatusOr<std::string> ReadCaCertificates(const FlagFile& ca) {
  absl::StatusOr<std::string> pem = ReadFlagFile(ca);
  if (!pem.ok()) return pem.status();
  if (absl::StatusOr<std::vector<X509Ptr>> certs = ParseCertificates(ca, *pem); !certs.ok()) {
    return certs.status();
  }
  return pem;
}

absl::StatusOr<KeyPair> ReadKeyPair(const FlagFile& cert, const FlagFile& key) {
  if (cert.given() != key.given()) {
    const FlagFile& has = cert.given() ? cert : key;
    const FlagFile& lacks = cert.given() ? key : cert;
    return absl::InvalidArgumentError(absl::StrCat(
        Named(has), " is given without ", lacks.flag,
        ": give both, the PEM certificate chain and the private key that belongs to it"));
  }
  if (!cert.given()) {
    return absl::InvalidArgumentError(
        absl::StrCat("neither ", cert.flag, " nor ", key.flag, " is given: give both (PEM files)"));
  }
  KeyPair out;
  absl::StatusOr<std::string> cert_pem = ReadFlagFile(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFlagFile(key);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::vector<X509Ptr>> certs = ParseCertificates(cert, *cert_pem);
  if (!certs.ok()) return certs.status();

  BioPtr bio = MemoryBio(*key_pem);
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    const std::string errors = TakeOpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(
        Named(key), ": no unencrypted PEM private key in it (", errors,
        "); give the key file made with the certificate (an encrypted key can be decrypted "
        "with: openssl pkey -in KEY -out KEY.plain)"));
  }
  if (X509_check_private_key(certs->front().get(), pkey.get()) != 1) {
    TakeOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(Named(key), " does not belong to the certificate in ", Named(cert),
                     ": give the key that was made together with that certificate"));
  }
  out.cert_chain_pem = *std::move(cert_pem);
  out.private_key_pem = *std::move(key_pem);
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerTlsFiles& files) {
  if (!files.tls()) return grpc::InsecureServerCredentials();
  if (files.client_ca.given() && !files.cert.given() && !files.key.given()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(files.client_ca), " is given without ", files.cert.flag, " and ", files.key.flag,
        ": client certificates are only checked over TLS; give the "
        "server's certificate and key too"));
  }
  absl::StatusOr<KeyPair> pair = ReadKeyPair(files.cert, files.key);
  if (!pair.ok()) return pair.status();
  grpc::SslServerCredentialsOptions options(
      files.client_ca.given() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (files.client_ca.given()) {
    absl::StatusOr<std::string> ca = ReadCaCertificates(files.client_ca);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  options.pem_key_cert_pairs.push_back(
      {std::move(pair->private_key_pem), std::move(pair->cert_chain_pem)});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const ClientTlsFiles& files) {
  if (!files.tls()) return grpc::InsecureChannelCredentials();
  if (!files.ca.given()) {
    const FlagFile& given = files.cert.given() ? files.cert : files.key;
    return absl::InvalidArgumentError(
        absl::StrCat(Named(given), " is given without ", files.ca.flag,
                     ": give the CA certificate that the server's certificate chains to"));
  }
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadCaCertificates(files.ca);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *std::move(ca);
  if (files.cert.given() || files.key.given()) {
    absl::StatusOr<KeyPair> pair = ReadKeyPair(files.cert, files.key);
    if (!pair.ok()) return pair.status();
    options.pem_private_key = std::move(pair->private_key_pem);
    options.pem_cert_chain = std::move(pair->cert_chain_pem);
  }
  return grpc::SslCredentials(options);
}

}  // namespace hubmetrics::tls
