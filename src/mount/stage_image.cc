#include "mount/stage_image.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "image/probe.h"
#include "kmod/modules.h"
#include "mount/mount_api.h"
#include "verity/plan.h"

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

// A directory has no partitions and no protection: the policy sees an
// unprotected root, so a policy asking for verity or signatures refuses it.
Result<void> stage_directory(const Candidate& c, StagedImage& img, int slot_fd, const PolicyGate& gate) {
    img.offered.push_back({Designator::Root, ImageState::Unprotected, ""});
    RDEXT_TRY(gate(img.offered));
    auto tree = clone_tree(c.fd->get());
    if (!tree) return tree.error().prefix("bind ");
    RDEXT_TRY(set_mount_attrs(tree->get(), image_mount_attrs(c.cls)));
    return attach_into(img, std::move(*tree), slot_fd);
}

// The mount parameters of an image's file system. A read-only mount alone
// does not keep a journaling file system from writing: ext4, xfs and f2fs
// replay a journal that needs recovery (and btrfs its log tree) on a device
// that is writable. Images are only ever read, so recovery is turned off,
// as systemd does for read-only images; the device below is read-only too
// (a loop device or dm-verity), which would make such a mount fail instead.
std::vector<FsParam> image_fs_params(const std::string& fstype, const std::string& source) {
    std::vector<FsParam> params{{"source", source}, {"ro", "", true}};
    if (fstype == "ext4" || fstype == "xfs" || fstype == "f2fs") params.push_back({"norecovery", "", true});
    if (fstype == "btrfs") params.push_back({"rescue", "nologreplay"});
    return params;
}

// Mounts one file system of the image (the whole image or a partition),
// always through a read-only loop device, a block device entry too: the
// file system then sees a read-only device and cannot write to the one
// the entry names, whatever its own options say.
Result<UniqueFd> mount_region(const PartitionPlan& part, uint64_t attrs, std::vector<LoopDevice>& loops,
                              LoopReuse* reuse) {
    auto loop = LoopDevice::attach(part.data.fd, part.data.offset, part.data.size, true, reuse);
    if (!loop) return loop.error().prefix("loop device: ");
    std::string source = loop->path();
    loops.push_back(std::move(*loop));
    RDEXT_TRY(fault_point("image-mount"));
    RDEXT_TRY(ensure_filesystem(part.fstype));
    auto m = mount_detached(part.fstype, image_fs_params(part.fstype, source), attrs);
    if (!m) return m.error().prefix("mount " + part.fstype + ": ");
    return m;
}

// erofs reads a regular file directly: the source is the fd we probed,
// through its /proc link, so the kernel opens the very same file.
Result<UniqueFd> mount_erofs_from_file(const PartitionPlan& part, uint64_t attrs) {
    RDEXT_TRY(fault_point("image-mount"));
    RDEXT_TRY(ensure_filesystem("erofs"));
    return mount_detached("erofs", {{"source", proc_fd_path(part.data.fd)}, {"ro", "", true}}, attrs);
}

// ---- dm-verity ---------------------------------------------------------

// The verity.d certificates of the running system (the initrd), never of
// the root being extended.
Result<TrustStore> initrd_trust_store() {
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    auto dirs = open_verity_dirs(slash->get());
    if (!dirs) return dirs.error();
    auto store = load_trusted_certificates(*dirs);
    if (!store) return store.error();
    for (const auto& w : store->warnings) log_debug() << "verity.d: " << w;
    return store;
}

// Activates dm-verity over the partition's data as its plan says and
// mounts the dm device; `state` is then Signed or Verity.
Result<UniqueFd> mount_verity(const Candidate& c, StagedImage& img, const PartitionPlan& part, ImageState& state,
                              LoopReuse* reuse) {
    const VerityPlan& plan = *part.verity;
    std::optional<TrustStore> trust;
    if (plan.signature) {
        auto t = initrd_trust_store();
        if (!t) return t.error().prefix("verity.d: ");
        trust = std::move(*t);
    }
    VerityRequest req;
    req.data = part.data;
    req.hash = plan.hash;
    req.root_hash = plan.root_hash;
    req.signature = plan.signature ? &*plan.signature : nullptr;
    req.trust = trust ? &*trust : nullptr;
    req.loop_reuse = reuse;
    auto active = activate_verity(req);
    if (!active) return active.error().prefix("dm-verity (root hash from " + plan.root_hash_source + "): ");
    for (auto& loop : active->loops) img.loops.push_back(std::move(loop));
    std::string name = active->device.name();
    img.verity.push_back(std::move(active->device));
    img.verity_root_hash = plan.root_hash.hex;
    log_debug() << c.name << ": dm-verity device " << name
                << (active->is_signed ? ", signature accepted by " + active->signed_by : ", unsigned");
    auto dev = open_verity_device(img.verity.back());
    if (!dev) return dev.error();
    RDEXT_TRY(fault_point("image-mount"));
    RDEXT_TRY(ensure_filesystem(part.fstype));
    auto m = mount_detached(part.fstype, image_fs_params(part.fstype, proc_fd_path(dev->get())),
                            image_mount_attrs(c.cls));
    if (!m) {
        if (m.error().code() == EIO) m.error() << " (dm-verity refused a block: the data does not match its hash tree)";
        return m.error().prefix("mount " + part.fstype + " on " + name + ": ");
    }
    state = active->is_signed ? ImageState::Signed : ImageState::Verity;
    return m;
}

// The sidecars next to the file the candidate resolves to. `file_fd` is
// the image opened for reading (xattrs cannot be read through O_PATH).
Result<VeritySidecars> image_sidecars(const Candidate& c, const Staging& staging, int file_fd) {
    if (c.siblings) {
        // Found in the search directory itself: its listing says which
        // sidecars exist.
        std::string entry = c.path.substr(c.path.rfind('/') + 1);
        return find_verity_sidecars(c.siblings->fd.get(), entry, file_fd, &c.siblings->names);
    }
    // Reached through a symlink: beside the file it leads to, inside the
    // root, or, for an image a refresh reopened beneath the current merge
    // (merge/refresh.h), inside the staging area's copy of the root's own
    // hierarchy.
    auto path = fd_path(c.fd->get());
    if (path && starts_with(*path, staging.path() + "/"))
        return find_verity_sidecars_in_root(staging.fd(), path->substr(staging.path().size()), file_fd);
    return find_verity_sidecars_in_root(c.root_fd, c.path, file_fd);
}

// The probed image with its sidecars, planned (verity/plan.h).
Result<ImagePlan> plan_candidate(const Candidate& c, const Staging& staging, int file_fd) {
    auto layout = probe_image(file_fd);
    if (!layout) return layout.error();
    VeritySidecars sidecars;
    if (c.kind == ImageKind::Raw) {
        auto sc = image_sidecars(c, staging, file_fd);
        if (!sc) return sc.error();
        sidecars = std::move(*sc);
    }
    return plan_image(file_fd, c.kind == ImageKind::Raw, std::move(*layout), std::move(sidecars));
}

// Where the usr partition goes: on "usr" in the root partition, or in an
// otherwise empty slot when there is none.
Result<UniqueFd> usr_mount_point(const StagedImage& img, int slot_fd) {
    int parent = img.mounts.empty() ? slot_fd : img.mounts.back().get();
    if (img.mounts.empty() && ::mkdirat(slot_fd, "usr", 0755) < 0) return ErrnoError() << "mkdir usr";
    auto usr_dir = open_in_root(parent, "usr", O_PATH | O_DIRECTORY);
    if (!usr_dir) return usr_dir.error().prefix("root partition has no /usr to mount the usr partition on: ");
    return usr_dir;
}

Result<void> stage_raw(const Candidate& c, const Staging& staging, StagedImage& img, int slot_fd,
                       const PolicyGate& gate, LoopReuse* reuse) {
    auto file = open_candidate_image(c, O_RDONLY | O_NONBLOCK);
    if (!file) return file.error().prefix("open: ");
    auto plan = plan_candidate(c, staging, file->get());
    if (!plan) return plan.error();
    RDEXT_TRY(gate(plan->best_case_offer()));

    std::vector<ImageState> states;
    for (const auto& part : plan->partitions) {
        UniqueFd target;
        if (part.designator == Designator::Usr) {
            auto where = usr_mount_point(img, slot_fd);
            if (!where) return where.error();
            target = std::move(*where);
        }
        ImageState state = ImageState::Unprotected;
        auto m = part.verity ? mount_verity(c, img, part, state, reuse)
                             : mount_partition(part, image_mount_attrs(c.cls), img.loops, reuse);
        if (!m) return m.error();
        if (img.fstype.empty()) img.fstype = part.fstype;
        states.push_back(state);
        RDEXT_TRY(attach_into(img, std::move(*m), target ? target.get() : slot_fd));
    }
    img.offered = plan->offer(states);
    return {};
}

}  // namespace

namespace {

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

}  // namespace

Result<UniqueFd> open_candidate_image(const Candidate& c, int flags) {
    if (c.kind == ImageKind::Block) {
        auto st = stat_fd(c.fd->get());
        if (!st) return st.error();
        return open_block_device(st->st_rdev);
    }
    return open_path(proc_fd_path(c.fd->get()), flags | O_NOCTTY);
}

Result<UniqueFd> mount_partition(const PartitionPlan& part, uint64_t attrs, std::vector<LoopDevice>& loops,
                                 LoopReuse* reuse) {
    if (part.from_file) {
        auto m = mount_erofs_from_file(part, attrs);
        if (m) return m;
        // Older kernels want a block device (ENOTBLK): use a loop device.
        // Any other failure (a corrupt image, a missing module) would fail
        // the same way through a loop device: report it, do not retry.
        if (m.error().code() != ENOTBLK) return m.error().prefix("mount erofs: ");
    }
    return mount_region(part, attrs, loops, reuse);
}

Result<std::string> StagedImage::layer_for(const std::string& hierarchy) const {
    for (const auto& l : layers_)
        if (l.hierarchy == hierarchy) return l.fd ? proc_fd_path(l.fd.get()) : std::string();
    return Error(ENOENT) << hierarchy << " was not resolved in the image";
}

Result<void> StagedImage::resolve_layers(const std::vector<std::string>& hierarchies) {
    for (const auto& h : hierarchies) {
        auto layer = find_layer(h);
        if (!layer) return layer.error();
        layers_.push_back(std::move(*layer));
    }
    return {};
}

int StagedImage::layer_fd(const std::string& hierarchy) const {
    for (const auto& l : layers_)
        if (l.hierarchy == hierarchy) return l.fd ? l.fd.get() : -1;
    return -1;
}

Result<StagedImage::Layer> StagedImage::find_layer(const std::string& hierarchy) const {
    Layer l{hierarchy, {}};
    auto fd = open_in_root(tree_fd.get(), hierarchy, O_PATH | O_DIRECTORY);
    if (!fd) {
        if (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR) return l;
        return fd.error();
    }
    auto p = fd_path(fd->get());
    if (!p) return p.error();
    if (!starts_with(*p, slot_path + "/") && *p != slot_path)
        return Error(EXDEV) << hierarchy << " leads outside the image";
    l.fd = std::move(*fd);
    return l;
}

void StagedImage::unmount() noexcept {
    layers_.clear();  // they pin the mounts
    // Innermost first: a usr partition sits on the root partition.
    while (!mounts.empty()) {
        (void)detach_mount_of(mounts.back().get());
        mounts.pop_back();
    }
    tree_fd.reset();
    verity.clear();  // before the loop devices under them
    loops.clear();
}

void StagedImage::relinquish() noexcept {
    for (auto& v : verity) v.release();
    for (auto& loop : loops) loop.relinquish();
    // The mounts stay where they are: the staging area's one recursive
    // detach takes them all. Each unmount of our own would cost the kernel
    // an RCU grace period (a millisecond or more per image on a busy
    // machine); one for the whole area is enough.
    mounts.clear();
    tree_fd.reset();
    layers_.clear();
}

StagedImage::~StagedImage() { unmount(); }

Result<StagedImage> stage_image(const Candidate& c, Staging& staging, const std::string& slot_name,
                                const PolicyGate& gate, LoopReuse* reuse) {
    StagedImage img;
    RDEXT_TRY(fault_point("stage-image"));
    auto slot = staging.make_slot(slot_name);
    if (!slot) return slot.error();
    img.slot_path = staging.slot_path(slot_name);
    auto r = c.kind == ImageKind::Directory ? stage_directory(c, img, slot->get(), gate)
                                            : stage_raw(c, staging, img, slot->get(), gate, reuse);
    if (!r) return r.error();
    auto tree = open_in_root_nofollow(staging.fd(), slot_name, O_PATH | O_DIRECTORY);
    if (!tree) return tree.error();
    img.tree_fd = std::move(*tree);
    return img;
}

}  // namespace rdext
