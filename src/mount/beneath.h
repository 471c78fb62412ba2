// Swapping the mount on a hierarchy for another without a moment in
// between: move_mount(MOVE_MOUNT_BENEATH) (Linux 6.5) slides the new mount
// beneath the current top one, then the top is detached. Every lookup sees
// the old tree or the new one, never the bare directory underneath.
//
// Covered by tests/integration/refresh_gap.sh and refresh.sh.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

// Puts the detached mount `mount_fd` beneath the mount whose root `top_fd`
// refers to. EINVAL when the kernel cannot (before 6.5, or a propagation
// setup it refuses); the caller then swaps the classic way.
Result<void> mount_beneath(int mount_fd, int top_fd);

// Whether the running kernel is new enough for mount beneath; only used to
// word the fallback message.
bool kernel_has_mount_beneath();

// A mount sitting below another one (e.g. /usr/share/foo on /usr).
struct ChildMount {
    std::string rel;  // path below the parent mount's root, "share/foo"
    UniqueFd copy;    // detached recursive copy, to attach elsewhere
};

// The mount id of the mount fd refers to (statx STATX_MNT_ID), and the id
// of the mount it is attached to (from /proc/self/mountinfo).
Result<uint64_t> mount_id_of(int fd);
Result<uint64_t> parent_mount_id(uint64_t id);

// When the mount whose root `top_fd` refers to is stacked on an overlay
// mounted with `overlay_source` (a merge, at the same place): the top
// mount's file system type and source, "tmpfs (cover)". Empty otherwise.
Result<std::string> mount_covering_overlay(int top_fd, const std::string& overlay_source);

// Detached copies of the mounts attached directly below the mount whose
// root `top_fd` refers to (their own submounts included), except the ones
// on `skip_rel` (the metadata directory, which every merge brings itself).
Result<std::vector<ChildMount>> copy_child_mounts(int top_fd, const std::string& skip_rel);

// Attaches the copies at the same places below `new_root_fd`. A place the
// new tree lacks is reported and its mount dropped.
void attach_child_mounts(int new_root_fd, std::vector<ChildMount>& children);

}  // namespace rdext
