// A separate /var: extensions in /var/lib/extensions live on a file system
// that an initrd usually does not mount (only / and /usr are mounted before
// switch-root). When the root's fstab lists /var and nothing is mounted on
// <root>/var yet, rdext mounts it there before discovery; the booted
// system then finds it already mounted. The fstab is the root's, so only
// what a separate /var legitimately is gets mounted: a block device of the
// running system (/dev path, UUID=, LABEL=, PARTUUID=, PARTLABEL=) holding
// a local file system, nosuid,nodev, on the root's real /var directory.
//
// Covered by tests/integration/separate_var.sh.
#pragma once

#include <optional>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "target/target.h"

namespace rdext {

class VarMount {
public:
    VarMount() = default;
    VarMount(VarMount&& o) noexcept : mount_fd_(std::move(o.mount_fd_)) {}
    VarMount& operator=(VarMount&&) = delete;
    ~VarMount();  // unmounts unless kept
    bool mounted() const { return mount_fd_.valid(); }
    // The merge succeeded: /var stays for the booted system.
    void keep() { mount_fd_.reset(); }

private:
    friend Result<VarMount> mount_var_from_fstab(const Target& target);
    UniqueFd mount_fd_;  // root of the /var mount, for a precise unmount
};

// No-op (an empty VarMount) when there is no fstab, no /var line, or /var
// is already a mount point. Lines that are not such a device (bind, tmpfs,
// network, nofail, noauto, a file, another type than the device holds),
// and a /var that is a symlink, are skipped with a warning: the merge goes
// on without them. A device that cannot be found or mounted is an error.
Result<VarMount> mount_var_from_fstab(const Target& target);

}  // namespace rdext
