// What a refresh needs beyond a merge: telling "nothing changed" without
// mounting anything, and reaching a merged hierarchy's own directory while
// the merge still covers it.
//
// Covered by tests/integration/refresh.sh and refresh_gap.sh.
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "discover/discover.h"
#include "mount/staging.h"
#include "release/os_release.h"
#include "target/target.h"

namespace rdext {

// Fingerprint (a line of text each) of everything a class's merge is made from: each
// discovered entry's path, kind, state and identity (a raw image's mode,
// size and times; a directory image's own and those of a few entries near
// its top, see add_directory_tops in refresh.cc: not its whole tree), the
// root's os-release, and the settings that decide (exclusions, pins,
// image policy, mutable mode, the mutable directories). Recorded in every
// hierarchy the merge covers (state/metadata.h). A fixed few stat calls per
// image: a merge (the boot path) records it too, so the refresh after it
// can tell that nothing changed.
std::string inputs_fingerprint(const Target& target, const Settings& settings, ImageClass cls,
                               const std::vector<Candidate>& candidates);

// True when the class's current merge was made from exactly what the root
// offers now: discovery and stat calls only, nothing is mounted.
Result<bool> class_unchanged(const Target& target, const Settings& settings, ImageClass cls);

// The hierarchy's own directory as it is beneath the merge on it: a
// non-recursive copy of the mount holding the hierarchy's parent directory,
// attached in a staging slot (so overlayfs takes it as a layer). Returns an
// O_PATH fd of the hierarchy in it, opened without following a symlink.
// ENOTSUP when the merge does not sit right on that mount (e.g. /usr is a
// file system of its own).
Result<UniqueFd> stage_base(const Target& target, Staging& staging, ImageClass cls, const std::string& hierarchy);

// The OS's os-release (release/os_release.h) from the root's own /etc and
// /usr, beneath any merge on them: a merged confext or a mutable /etc may
// show another one, which must not decide what fits the OS. Reads the root
// directly when nothing is merged there. EXDEV when a merge covers a file
// system of its own (a refresh then unmerges first).
Result<ReleaseFields> read_own_os_release(const Target& target, Staging& staging);

// A refresh discovers through the current merge (/etc/extensions under the
// merged /etc, Flatcar's /opt/extensions under the merged /opt). An image
// opened that way is a file of the old overlay: its loop device or bind
// mount would keep the old merge, and everything under it, alive after the
// swap. Each such candidate is reopened beneath the merge, in the root's
// own hierarchy (stage_base); one that only a merged extension provides is
// not there, as after systemd-sysext's unmerge, and is marked broken.
void reopen_beneath_merges(const Target& target, Staging& staging, std::vector<Candidate>& candidates);

}  // namespace rdext
