// The contents of an image, mounted read-only where nobody else can see
// them: detached mounts (fsmount/open_tree, never attached to any mount
// namespace) held by fds, so `rdext inspect` can read the release file on a
// host that merges nothing. Loop devices are owned and detached with the
// mounts; nothing is left behind whatever happens.
//
// The data is read WITHOUT dm-verity (the host may have no device-mapper):
// inspect checks the hash tree separately, in user space (protection.h).
#pragma once

#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "image/loop.h"
#include "verity/plan.h"

namespace rdext {

class ImageTree {
public:
    // A directory image: a detached clone of it.
    static Result<ImageTree> open_directory(int dir_fd);
    // A raw image (file or block device) as planned (verity/plan.h), its
    // file systems mounted as merge mounts them without dm-verity
    // (mount_partition(), mount/stage_image.h): the root partition (or
    // bare file system), with a usr partition on its /usr, or alone on an
    // empty tmpfs's /usr.
    static Result<ImageTree> open_raw(const ImagePlan& plan);

    ImageTree() = default;
    ImageTree(ImageTree&&) noexcept = default;
    ImageTree& operator=(ImageTree&&) noexcept = default;
    ~ImageTree();

    // O_PATH-capable directory fd of the tree's top (the detached mount).
    int fd() const { return mounts_.empty() ? -1 : mounts_.front().get(); }

    // Unmounts, then detaches the loop devices. Safe to call twice.
    void unmount() noexcept;

private:
    std::vector<UniqueFd> mounts_;  // detached mounts, the top first
    std::vector<LoopDevice> loops_;
};

}  // namespace rdext
