#include "inspect/image_tree.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

// Nothing from an image under inspection may run or open devices.
constexpr uint64_t kAttrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;

// One file system of the image, read-only. erofs reads a regular file
// directly (Linux 6.12+), everything else goes through a loop device over
// its region.
Result<UniqueFd> mount_part(int file_fd, const ImagePartition& part, bool whole, std::vector<LoopDevice>& loops) {
    if (whole && part.fstype == "erofs") {
        auto m = mount_detached("erofs", {{"source", proc_fd_path(file_fd)}, {"ro", "", true}}, kAttrs);
        if (m) return m;
        // Older kernels want a block device: fall through to a loop device.
    }
    auto loop = LoopDevice::attach(file_fd, whole ? 0 : part.offset, whole ? 0 : part.size, false);
    if (!loop) return loop.error().prefix("loop device: ");
    std::string source = loop->path();
    loops.push_back(std::move(*loop));
    auto m = mount_detached(part.fstype, {{"source", source}, {"ro", "", true}}, kAttrs);
    if (!m) return m.error().prefix("mount " + part.fstype + " (" + partition_role_name(part.role) + "): ");
    return m;
}

}  // namespace

Result<ImageTree> ImageTree::open_directory(int dir_fd) {
    auto tree = clone_tree(dir_fd);
    if (!tree) return tree.error().prefix("bind: ");
    RDEXT_TRY(set_mount_attrs(tree->get(), kAttrs));
    ImageTree t;
    t.mounts_.push_back(std::move(*tree));
    return t;
}

Result<ImageTree> ImageTree::open_raw(int file_fd, const ImageLayout& layout) {
    ImageTree t;
    bool whole = layout.kind == ImageLayoutKind::FileSystem;
    if (layout.root) {
        auto m = mount_part(file_fd, *layout.root, whole, t.loops_);
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
    if (layout.usr) {
        auto usr_dir = open_in_root(t.fd(), "usr", O_PATH | O_DIRECTORY);
        if (!usr_dir) return usr_dir.error().prefix("root partition has no /usr for the usr partition: ");
        auto m = mount_part(file_fd, *layout.usr, false, t.loops_);
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
