// Where a transfer's files come from. A source reads its small files
// (the manifest, its signatures, the retraction list) whole and streams an
// image into a sink, each within a size limit and a deadline. Two kinds
// now: a directory in the root (Type=regular-file, an update partition or
// a removable medium mounted there) and file:// URLs, resolved inside the
// root as well (the root's config must not make rdext copy the initrd's
// files into the root). http(s) plugs in behind the same interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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

// The source of a transfer; EPROTONOSUPPORT for a URL scheme rdext does
// not fetch (yet).
Result<std::unique_ptr<Source>> open_source(const Transfer& t, int root_fd);

}  // namespace rdext
