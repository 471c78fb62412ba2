// http:// and https:// sources through libcurl. Linked only into the
// binaries that fetch over the network (the dynamic rdext, the static
// rdext-fetch); the static merge binary carries neither libcurl nor TLS.
//
// Every GET is bounded: a total deadline (the fetch's), an abort when less
// than a byte a second arrives for kStallSeconds, a size limit. Redirects
// (at most 5) may lead to http or https only, and from https to https only;
// no proxy is used, whatever the environment says. TLS is always verified,
// against a CA pinned in the running system (the initrd) or its CA bundle,
// never against anything of the root being fetched into.
//
// Covered by tests/integration/fetch_http.sh.
#pragma once

#include <optional>
#include <string>

#include "fetch/source.h"

namespace rdext {

// A pinned CA (only this one is trusted), the first that exists of
// /etc/rdext/fetch-ca.pem, /run/rdext/fetch-ca.pem and
// /usr/lib/rdext/fetch-ca.pem; else the system's bundle, the first of
// /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt,
// /etc/ssl/ca-bundle.pem and /etc/ssl/cert.pem. Paths of the running
// system (the initrd), never of the root.
std::optional<std::string> default_ca_file();

// Installs the http(s) transport behind open_source(); once, early in
// main() (it initialises libcurl).
void enable_http_sources();

}  // namespace rdext
