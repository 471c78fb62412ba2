// Where a transfer's files come from. A source reads its small files
// (the manifest, its signatures, the retraction list) whole and streams an
// image into a sink, each within a size limit and a deadline. Two kinds
// now: a directory in the root (Type=regular-file, an update partition or
// a removable medium mounted there) and file:// URLs, resolved inside the
// root as well (the root's config must not make rdext copy the initrd's
// files into the root). http:// and https:// come from libcurl
// (fetch/http_source.h), linked only into the binaries that fetch over the
// network: the static merge binary does without it (see
// network_sources_available()).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "fetch/transfer.h"

namespace rdext {

using Deadline = std::chrono::steady_clock::time_point;

// Receives a download as it arrives.
class Sink {
public:
    virtual ~Sink() = default;
    virtual Result<void> write(const char* data, size_t size) = 0;
};

class Source {
public:
    virtual ~Source() = default;
    // For messages and the record: the URL or directory.
    virtual std::string describe() const = 0;
    // A small file whole; ENOENT when the source does not have it, E2BIG
    // beyond `max` bytes, ETIMEDOUT past the deadline.
    virtual Result<std::string> read_small(const std::string& name, size_t max, Deadline deadline) = 0;
    // Streams NAME into `sink`; EFBIG beyond `max` bytes, ETIMEDOUT past the
    // deadline. On an error the sink may hold part of the file.
    virtual Result<void> fetch(const std::string& name, uint64_t max, Deadline deadline, Sink& sink) = 0;
};

// What the network transports are told: the trust anchors of TLS, which
// come from the running system (the initrd), never from the root.
struct NetworkOptions {
    std::optional<std::string> ca_file;  // --ca=; default: default_ca_file()
};

// The http(s) transport, once a binary that links it has installed it
// (enable_http_sources()).
using NetworkSourceFactory = Result<std::unique_ptr<Source>> (*)(const std::string& url, const NetworkOptions& o);
void set_network_source_factory(NetworkSourceFactory f);
bool network_sources_available();

// The source of a transfer; EPROTONOSUPPORT for a URL scheme rdext does
// not fetch, or http(s) in a binary without the network transport.
Result<std::unique_ptr<Source>> open_source(const Transfer& t, int root_fd, const NetworkOptions& net = {});

}  // namespace rdext
