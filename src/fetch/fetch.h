// `rdext fetch`: brings the root's extensions up to date from the sources
// its sysupdate transfer definitions name (fetch/transfer.h): per
// transfer, the newest version the source offers that is signed (Verify=),
// not retracted, at least MinVersion=, built for this machine and, once
// downloaded, checksummed and accepted by the same extension-release and
// image policy checks as the merge (inspect_candidate()). Downloads land
// under a name discovery skips (is_partial_download()), are fsynced and
// renamed; CurrentSymlink= is replaced atomically; retracted instances are
// removed, InstancesMax= enforced without touching the image in use or a
// protected one. Any failure leaves the target as it was.
//
// Covered by tests/integration/fetch.sh.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "state/fetch_record.h"
#include "target/target.h"

namespace rdext {

struct FetchOptions {
    std::optional<std::string> keyring;  // --keyring=; default: default_keyring()
    std::optional<std::string> ca;       // --ca=; default: default_ca_file() (fetch/http_source.h)
    std::chrono::seconds timeout{300};   // the whole fetch
    uint64_t max_image_size = uint64_t(16) << 30;
};

// The record says what each transfer did; `failure` is set when one failed
// or a definition was refused (the others still ran).
FetchRecord fetch(const Target& target, const Settings& settings, const FetchOptions& options);

}  // namespace rdext
