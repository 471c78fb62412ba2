// Thin, error-reporting wrappers around the new mount API (fsopen, fsmount,
// open_tree, move_mount, mount_setattr). Mounts are built detached, out of
// sight, and attached only by an explicit move.
//
// Covered by every merge of tests/integration (merge_kinds.sh first).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

// One fsconfig() key: a string value, or a flag when value is empty and
// is_flag is set.
struct FsParam {
    std::string key;
    std::string value;
    bool is_flag = false;
};

// fsopen(fstype) + the parameters + FSCONFIG_CMD_CREATE + fsmount(attrs).
// Returns the detached mount. On failure the message carries what the file
// system itself said (read from the fs context), e.g. "overlay: ...".
Result<UniqueFd> mount_detached(const std::string& fstype, const std::vector<FsParam>& params,
                                uint64_t mount_attrs);

// A detached, non-recursive bind of the directory fd refers to.
Result<UniqueFd> clone_tree(int fd);

Result<void> set_mount_attrs(int mount_fd, uint64_t attrs);

// Attaches the detached mount on top of the directory target_fd refers to.
Result<void> attach_mount(int mount_fd, int target_fd);

// MOUNT_ATTR_* equivalents of the MS_* flags a class uses for its overlay.
uint64_t mount_attrs_from_flags(unsigned long ms_flags);

// umount2(MNT_DETACH) of the mount whose root `fd` refers to (through the
// fd's /proc magic link, so no path inside the untrusted root is re-walked).
Result<void> detach_mount_of(int fd);

}  // namespace rdext
