// io.systemd.sysext served as systemd-sysext 257 serves it (methods Merge,
// Unmerge, Refresh, List; errors NoImagesFound, AlreadyMerged, and
// io.systemd.System for a failed operation), so systemd-sysupdate and the
// management tools can call rdext after an update. The methods run the
// commands' own code: merge() and unmerge() (merge/merge.h) and discovery
// (discover/discover.h), for the class the call names (sysext when none).
//
// Covered by tests/integration/varlink.sh.
#pragma once

#include "base/result.h"
#include "target/target.h"

namespace rdext {

// Serves `fd` (varlink/varlink.h: varlink_listen_fd) for the root with
// the settings of the command line (the kernel command line's, --mutable=,
// the image policy); each call may only narrow them to one class.
Result<void> serve_sysext_varlink(int fd, const Target& target, const Settings& settings);

}  // namespace rdext
