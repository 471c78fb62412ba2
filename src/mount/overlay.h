// Builds a read-only overlay from lower layers given top to bottom.
// Uses one fsconfig("lowerdir+") per layer (Linux 6.8+), which has no limit
// but overlay's own 500 layers; older kernels get one "lowerdir=" string,
// which the kernel cuts at a page (about 95 typical paths).
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

struct OverlaySpec {
    std::string source;               // shown in mountinfo: "sysext" / "confext"
    std::vector<std::string> lowers;  // absolute paths, topmost first
    unsigned long flags = 0;          // MS_RDONLY | MS_NODEV | ...
    // A writable overlay (mutable merges): upper and work directory on one
    // file system, with systemd-sysext's options (redirect_dir=on,
    // metacopy=off, index=off, noatime); MS_RDONLY is then dropped.
    std::string upper, work;
};

// Overlay's own limit on lower layers.
constexpr size_t kMaxOverlayLayers = 500;

// Returns the detached overlay mount. `lowerdir_plus_refused` is what the
// run learned of the kernel so far: once it refused "lowerdir+", it is
// asked no more (each refusal is a line in its log, "unrecognized mount
// option"); set here when it refuses.
Result<UniqueFd> create_overlay(const OverlaySpec& spec, bool& lowerdir_plus_refused);

// Escapes ':' ',' and '\' for the legacy single-string lowerdir= option.
std::string escape_lowerdir(const std::string& path);

}  // namespace rdext
