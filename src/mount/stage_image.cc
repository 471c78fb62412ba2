#include "mount/stage_image.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "image/probe.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

uint64_t image_mount_attrs(ImageClass cls) {
    uint64_t a = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
    if (cls == ImageClass::Confext) a |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
    return a;
}

// Mounts `detached` on the directory target_fd refers to and keeps an fd of
// the attached mount's root for a precise unmount later.
Result<void> attach_into(StagedImage& img, UniqueFd detached, int target_fd) {
    RDEXT_TRY(attach_mount(detached.get(), target_fd));
    img.mounts.push_back(std::move(detached));
    return {};
}

// A device node on the root only names a device: it may sit on a nodev
// mount (an /etc already merged by a confext), and its permissions are the
// root's to choose. Open the device itself through the running system's
// /dev, found by number in sysfs, and check it is the same device.
Result<UniqueFd> open_block_device(dev_t dev) {
    std::string id = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
    auto uevent_fd = open_path("/sys/dev/block/" + id + "/uevent", O_RDONLY);
    if (!uevent_fd) return uevent_fd.error().prefix("block device " + id + ": ");
    auto uevent = read_regular_file(uevent_fd->get(), 4096);
    if (!uevent) return uevent.error().prefix("block device " + id + ": ");
    std::string name;
    for (const auto& line : split(*uevent, '\n'))
        if (starts_with(line, "DEVNAME=")) name = line.substr(8);
    if (name.empty() || name.find("..") != std::string::npos)
        return Error(ENODEV) << "block device " << id << " has no device node name";
    auto fd = open_path("/dev/" + name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd) return fd.error();
    auto st = stat_fd(fd->get());
    if (!st) return st.error();
    if (!S_ISBLK(st->st_mode) || st->st_rdev != dev)
        return Error(ENODEV) << "/dev/" << name << " is not block device " << id;
    return fd;
}

Result<UniqueFd> reopen(const Candidate& c, int flags) {
    if (c.kind == ImageKind::Block) {
        auto st = stat_fd(c.fd->get());
        if (!st) return st.error();
        return open_block_device(st->st_rdev);
    }
    return open_path(proc_fd_path(c.fd->get()), flags | O_NOCTTY);
}

// A directory has no partitions and no protection: the policy sees an
// unprotected root, so a policy asking for verity or signatures refuses it.
Result<void> stage_directory(const Candidate& c, StagedImage& img, int slot_fd) {
    img.offered.push_back({Designator::Root, ImageState::Unprotected, ""});
    auto tree = clone_tree(c.fd->get());
    if (!tree) return tree.error().prefix("bind ");
    RDEXT_TRY(set_mount_attrs(tree->get(), image_mount_attrs(c.cls)));
    return attach_into(img, std::move(*tree), slot_fd);
}

// Mounts one file system of the image (the whole image or a partition).
Result<UniqueFd> mount_region(const Candidate& c, StagedImage& img, int backing_fd,
                              const ImagePartition& part, bool whole_device) {
    std::string source;
    if (c.kind == ImageKind::Block && whole_device) {
        source = proc_fd_path(backing_fd);
    } else {
        auto loop = LoopDevice::attach(backing_fd, part.offset, whole_device ? 0 : part.size, true);
        if (!loop) return loop.error().prefix("loop device: ");
        source = loop->path();
        img.loops.push_back(std::move(*loop));
    }
    RDEXT_TRY(fault_point("image-mount"));
    auto m = mount_detached(part.fstype, {{"source", source}, {"ro", "", true}}, image_mount_attrs(c.cls));
    if (!m) return m.error().prefix("mount " + part.fstype + ": ");
    return m;
}

// erofs (Linux 6.12+) reads a regular file directly: no loop device to set
// up, about twice as cheap per image. The source is the fd we probed,
// through its /proc link, so the kernel opens the very same file.
Result<UniqueFd> mount_erofs_from_file(const Candidate& c, int file_fd) {
    return mount_detached("erofs", {{"source", proc_fd_path(file_fd)}, {"ro", "", true}},
                          image_mount_attrs(c.cls));
}

Result<void> stage_raw(const Candidate& c, StagedImage& img, int slot_fd) {
    auto file = reopen(c, O_RDONLY | O_NONBLOCK);
    if (!file) return file.error().prefix("open: ");
    auto layout = probe_image(file->get());
    if (!layout) return layout.error();
    bool bare = layout->kind == ImageLayoutKind::FileSystem;
    if (bare && c.kind == ImageKind::Raw && layout->root->fstype == "erofs") {
        RDEXT_TRY(fault_point("image-mount"));
        if (auto m = mount_erofs_from_file(c, file->get()); m) {
            img.fstype = "erofs";
            img.offered.push_back({Designator::Root, ImageState::Unprotected, "erofs"});
            return attach_into(img, std::move(*m), slot_fd);
        }
        // Older kernels want a block device (ENOTBLK): use a loop device.
    }
    if (layout->root) {
        auto m = mount_region(c, img, file->get(), *layout->root, bare);
        if (!m) return m.error();
        img.fstype = layout->root->fstype;
        // No dm-verity yet: every partition is used unprotected.
        img.offered.push_back({Designator::Root, ImageState::Unprotected, layout->root->fstype});
        RDEXT_TRY(attach_into(img, std::move(*m), slot_fd));
    }
    if (layout->usr) {
        // The usr partition goes where /usr is in the image: on "usr" in the
        // root partition, or in an otherwise empty slot when there is none.
        int parent = img.mounts.empty() ? slot_fd : img.mounts.back().get();
        if (img.mounts.empty() && ::mkdirat(slot_fd, "usr", 0755) < 0) return ErrnoError() << "mkdir usr";
        auto usr_dir = open_in_root(parent, "usr", O_PATH | O_DIRECTORY);
        if (!usr_dir) return usr_dir.error().prefix("root partition has no /usr to mount the usr partition on: ");
        auto m = mount_region(c, img, file->get(), *layout->usr, false);
        if (!m) return m.error();
        if (img.fstype.empty()) img.fstype = layout->usr->fstype;
        img.offered.push_back({Designator::Usr, ImageState::Unprotected, layout->usr->fstype});
        RDEXT_TRY(attach_into(img, std::move(*m), usr_dir->get()));
    }
    return {};
}

}  // namespace

Result<std::string> StagedImage::layer_for(const std::string& hierarchy) const {
    auto fd = open_in_root(tree_fd.get(), hierarchy, O_PATH | O_DIRECTORY);
    if (!fd) {
        if (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR) return std::string();
        return fd.error();
    }
    auto p = fd_path(fd->get());
    if (!p) return p.error();
    if (!starts_with(*p, slot_path + "/") && *p != slot_path)
        return Error(EXDEV) << hierarchy << " leads outside the image";
    return *p;
}

void StagedImage::unmount() noexcept {
    // Innermost first: a usr partition sits on the root partition.
    while (!mounts.empty()) {
        (void)detach_mount_of(mounts.back().get());
        mounts.pop_back();
    }
    tree_fd.reset();
    loops.clear();
}

StagedImage::~StagedImage() { unmount(); }

Result<StagedImage> stage_image(const Candidate& c, Staging& staging, const std::string& slot_name) {
    StagedImage img;
    RDEXT_TRY(fault_point("stage-image"));
    auto slot = staging.make_slot(slot_name);
    if (!slot) return slot.error();
    img.slot_path = staging.slot_path(slot_name);
    auto r = c.kind == ImageKind::Directory ? stage_directory(c, img, slot->get()) : stage_raw(c, img, slot->get());
    if (!r) return r.error();
    auto tree = open_in_root_nofollow(staging.fd(), slot_name, O_PATH | O_DIRECTORY);
    if (!tree) return tree.error();
    img.tree_fd = std::move(*tree);
    return img;
}

}  // namespace rdext
