#include "inspect/image_tree.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "mount/mount_api.h"
#include "mount/stage_image.h"

namespace rdext {
namespace {

// Nothing from an image under inspection may run or open devices.
constexpr uint64_t kAttrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;

}  // namespace

Result<ImageTree> ImageTree::open_directory(int dir_fd) {
    auto tree = clone_tree(dir_fd);
    if (!tree) return tree.error().prefix("bind: ");
    RDEXT_TRY(set_mount_attrs(tree->get(), kAttrs));
    ImageTree t;
    t.mounts_.push_back(std::move(*tree));
    return t;
}

Result<ImageTree> ImageTree::open_raw(const ImagePlan& plan) {
    ImageTree t;
    if (plan.partitions.front().designator == Designator::Root) {
        auto m = mount_partition(plan.partitions.front(), kAttrs, t.loops_);
        if (!m) return m.error();
        t.mounts_.push_back(std::move(*m));
    } else {
        // A usr-only image: its tree is an empty directory with /usr.
        auto tmp = mount_detached("tmpfs", {{"mode", "0755"}, {"size", "64k"}}, 0);
        if (!tmp) return tmp.error().prefix("tmpfs: ");
        if (::mkdirat(tmp->get(), "usr", 0755) < 0) return ErrnoError() << "mkdir usr";
        RDEXT_TRY(set_mount_attrs(tmp->get(), kAttrs));
        t.mounts_.push_back(std::move(*tmp));
    }
    if (plan.partitions.back().designator == Designator::Usr) {
        auto usr_dir = open_in_root(t.fd(), "usr", O_PATH | O_DIRECTORY);
        if (!usr_dir) return usr_dir.error().prefix("root partition has no /usr for the usr partition: ");
        auto m = mount_partition(plan.partitions.back(), kAttrs, t.loops_);
        if (!m) return m.error();
        // Attaching inside a detached tree (Linux 6.15+) keeps it private.
        RDEXT_TRY(attach_mount(m->get(), usr_dir->get()));
        t.mounts_.push_back(std::move(*m));
    }
    return t;
}

void ImageTree::unmount() noexcept {
    // Closing the last fd of a detached tree unmounts it (the attached usr
    // mount with it); the loop devices are then no longer held.
    while (!mounts_.empty()) mounts_.pop_back();
    loops_.clear();
}

ImageTree::~ImageTree() { unmount(); }

}  // namespace rdext
