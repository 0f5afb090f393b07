// The client TLS flags shared by every program that calls hubmetricsd's gRPC
// API (hubctl, the exporter, the bench clients): --tls_ca_file,
// --tls_cert_file, --tls_key_file, defined once here. A program that links
// this library has the flags; ChannelCredentials (tls.h) turns them into
// credentials.
#ifndef HUBMETRICS_LIB_TLS_CLIENT_FLAGS_H_
#define HUBMETRICS_LIB_TLS_CLIENT_FLAGS_H_

#include "lib/tls/tls.h"

namespace hubmetrics::tls {

// The files the flags name (empty: not given). Call after absl::ParseCommandLine.
ClientTlsFiles ClientTlsFilesFromFlags();

}  // namespace hubmetrics::tls

#endif  // HUBMETRICS_LIB_TLS_CLIENT_FLAGS_H_
