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
#include "verity/sidecar.h"
#include "verity/verity_sig.h"

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
Result<UniqueFd> mount_region(const Candidate& c, StagedImage& img, int backing_fd,
                              const ImagePartition& part, bool whole_device) {
    auto loop = LoopDevice::attach(backing_fd, part.offset, whole_device ? 0 : part.size, true);
    if (!loop) return loop.error().prefix("loop device: ");
    std::string source = loop->path();
    img.loops.push_back(std::move(*loop));
    RDEXT_TRY(fault_point("image-mount"));
    RDEXT_TRY(ensure_filesystem(part.fstype));
    auto m = mount_detached(part.fstype, image_fs_params(part.fstype, source), image_mount_attrs(c.cls));
    if (!m) return m.error().prefix("mount " + part.fstype + ": ");
    return m;
}

// erofs (Linux 6.12+) reads a regular file directly: no loop device to set
// up, about twice as cheap per image. The source is the fd we probed,
// through its /proc link, so the kernel opens the very same file.
Result<UniqueFd> mount_erofs_from_file(const Candidate& c, int file_fd) {
    RDEXT_TRY(ensure_filesystem("erofs"));
    return mount_detached("erofs", {{"source", proc_fd_path(file_fd)}, {"ro", "", true}},
                          image_mount_attrs(c.cls));
}

// ---- dm-verity ---------------------------------------------------------

// How one file system of the image is protected: where its hash tree is,
// the root hash and signature to activate it with.
struct VerityPlan {
    FileRegion hash;
    RootHash root_hash;
    std::optional<std::vector<uint8_t>> signature;
    std::string source;  // where the root hash came from, for messages
};

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

// Activates dm-verity over `data` and mounts the dm device. A failed
// signature is reported as such to the policy and refuses the image.
Result<UniqueFd> mount_verity(const Candidate& c, StagedImage& img, int file_fd, const ImagePartition& data,
                              bool whole_file, const VerityPlan& plan, Designator d) {
    std::optional<TrustStore> trust;
    if (plan.signature) {
        auto t = initrd_trust_store();
        if (!t) return t.error().prefix("verity.d: ");
        trust = std::move(*t);
    }
    VerityRequest req;
    req.data = {file_fd, whole_file ? 0 : data.offset, whole_file ? 0 : data.size};
    req.hash = plan.hash;
    req.root_hash = plan.root_hash;
    req.signature = plan.signature ? &*plan.signature : nullptr;
    req.trust = trust ? &*trust : nullptr;
    auto active = activate_verity(req);
    if (!active) {
        if (active.error().code() == EKEYREJECTED)
            img.offered.push_back({d, ImageState::SignatureFailed, data.fstype});
        return active.error().prefix("dm-verity (root hash from " + plan.source + "): ");
    }
    for (auto& loop : active->loops) img.loops.push_back(std::move(loop));
    std::string name = active->device.name();
    img.verity.push_back(std::move(active->device));
    log_debug() << c.name << ": dm-verity device " << name
                << (active->is_signed ? ", signature accepted by " + active->signed_by : ", unsigned");
    auto dev = open_verity_device(img.verity.back());
    if (!dev) return dev.error();
    RDEXT_TRY(fault_point("image-mount"));
    RDEXT_TRY(ensure_filesystem(data.fstype));
    auto m = mount_detached(data.fstype, image_fs_params(data.fstype, proc_fd_path(dev->get())),
                            image_mount_attrs(c.cls));
    if (!m) {
        if (m.error().code() == EIO) m.error() << " (dm-verity refused a block: the data does not match its hash tree)";
        return m.error().prefix("mount " + data.fstype + " on " + name + ": ");
    }
    img.offered.push_back({d, active->is_signed ? ImageState::Signed : ImageState::Verity, data.fstype});
    return m;
}

// Where the file the candidate resolves to is: found inside the root, or,
// for an image a refresh reopened beneath the current merge
// (merge/refresh.h), inside the staging area's copy of the root's own
// hierarchy.
Result<DirEntryRef> locate_image(const Candidate& c, const Staging& staging) {
    auto path = fd_path(c.fd->get());
    if (path && starts_with(*path, staging.path() + "/"))
        return locate_in_root(staging.fd(), path->substr(staging.path().size()), c.fd->get());
    return locate_in_root(c.root_fd, c.path, c.fd->get());
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
    // Reached through a symlink: beside the file it leads to, found inside
    // the root (never by the file's name from /, which the root could
    // redirect with a symlink swapped in meanwhile).
    auto where = locate_image(c, staging);
    if (!where) return where.error().prefix("sidecars: ");
    return find_verity_sidecars(where->dir.get(), where->name, file_fd);
}

// A bare file system with a NAME.verity sidecar: the hash tree is that
// file, the root hash and signature are sidecars (or xattrs) too.
Result<std::optional<VerityPlan>> sidecar_verity_plan(const VeritySidecars& sc) {
    if (!sc.hash_tree) {
        if (sc.hash()) return Error(EINVAL) << sc.hash()->source << " without a .verity hash tree";
        return std::optional<VerityPlan>();
    }
    if (!sc.hash()) return Error(EINVAL) << sc.hash_tree->name << " without a root hash (.roothash, .usrhash or xattr)";
    VerityPlan plan;
    plan.hash = {sc.hash_tree->fd.get(), 0, 0};
    plan.root_hash = sc.hash()->hash;
    plan.source = sc.hash()->source;
    if (sc.signature()) plan.signature = sc.signature()->der;
    return std::optional<VerityPlan>(std::move(plan));
}

Result<std::string> read_partition(int fd, const ImagePartition& p, size_t max) {
    if (p.size > max) return Error(EFBIG) << partition_role_name(p.role) << " partition is larger than " << max << " bytes";
    std::string buf(p.size, '\0');
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(p.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError() << "read " << partition_role_name(p.role) << " partition";
        if (n == 0) return Error(EIO) << partition_role_name(p.role) << " partition is truncated";
        done += static_cast<size_t>(n);
    }
    return buf;
}

// A GPT data partition with a verity partition beside it: the root hash
// comes from the verity-sig partition (which must name this verity
// partition) or from a sidecar; without either, the partition is used
// unprotected (nothing to check it against), as systemd does.
Result<std::optional<VerityPlan>> gpt_verity_plan(int fd, const ImagePartition& data,
                                                  const std::optional<ImagePartition>& verity,
                                                  const std::optional<ImagePartition>& sig_part,
                                                  const SidecarHash* sidecar_hash, const SidecarSignature* sidecar_sig) {
    if (!verity) return std::optional<VerityPlan>();
    VerityPlan plan;
    plan.hash = {fd, verity->offset, verity->size};
    if (sig_part) {
        std::string what = std::string(partition_role_name(sig_part->role)) + " partition";
        auto raw = read_partition(fd, *sig_part, kVeritySigMaxBytes);
        if (!raw) return raw.error();
        auto sig = parse_verity_sig(*raw);
        if (!sig) return sig.error().prefix(what + ": ");
        if (auto r = check_verity_sig_partition_uuids(sig.value(), verity->uuid, data.uuid); !r)
            return r.error().prefix(what + ": ");
        if (sidecar_hash)
            if (auto r = check_verity_sig_root_hash(sig.value(), sidecar_hash->hash); !r)
                return r.error().prefix(what + " and " + sidecar_hash->source + ": ");
        plan.root_hash = sig->root_hash;
        plan.signature = sig->signature;
        plan.source = what;
    } else if (sidecar_hash) {
        plan.root_hash = sidecar_hash->hash;
        plan.source = sidecar_hash->source;
        if (sidecar_sig) plan.signature = sidecar_sig->der;
    } else {
        return std::optional<VerityPlan>();
    }
    return std::optional<VerityPlan>(std::move(plan));
}

// The hash tree (and signature) partitions are offered too, as plain data,
// after the data partitions: systemd's policy check sees them the same way
// (a verity sidecar of a bare file system counts as root-verity).
void offer_protection_partitions(std::vector<OfferedPartition>& offered, const ImageLayout& layout,
                                 const VeritySidecars& sc) {
    auto offer = [&](Designator d) { offered.push_back({d, ImageState::Unprotected, ""}); };
    if (layout.kind == ImageLayoutKind::FileSystem) {
        if (sc.hash_tree) offer(Designator::RootVerity);
        return;
    }
    if (layout.root_verity) offer(Designator::RootVerity);
    if (layout.usr_verity) offer(Designator::UsrVerity);
    if (layout.root_verity_sig) offer(Designator::RootVeritySig);
    if (layout.usr_verity_sig) offer(Designator::UsrVeritySig);
}

// What the image can at best offer, known before anything is mounted: a
// partition with a verity plan may turn out signed, one without is
// unprotected. The policy sees this first, so an image it refuses anyway is
// never handed to the kernel's file system code.
std::vector<OfferedPartition> best_case_offer(const ImageLayout& layout, bool root_verity, bool usr_verity,
                                              const VeritySidecars& sidecars) {
    std::vector<OfferedPartition> offered;
    auto state = [](bool verity) { return verity ? ImageState::Signed : ImageState::Unprotected; };
    if (layout.root) offered.push_back({Designator::Root, state(root_verity), layout.root->fstype});
    if (layout.usr) offered.push_back({Designator::Usr, state(usr_verity), layout.usr->fstype});
    offer_protection_partitions(offered, layout, sidecars);
    return offered;
}

Result<void> stage_raw(const Candidate& c, const Staging& staging, StagedImage& img, int slot_fd,
                       const PolicyGate& gate) {
    auto file = reopen(c, O_RDONLY | O_NONBLOCK);
    if (!file) return file.error().prefix("open: ");
    auto layout = probe_image(file->get());
    if (!layout) return layout.error();
    bool bare = layout->kind == ImageLayoutKind::FileSystem;
    VeritySidecars sidecars;
    if (c.kind == ImageKind::Raw) {
        auto sc = image_sidecars(c, staging, file->get());
        if (!sc) return sc.error();
        sidecars = std::move(*sc);
    }

    // Which file systems are to be read through dm-verity.
    std::optional<VerityPlan> root_plan, usr_plan;
    if (bare) {
        auto p = sidecar_verity_plan(sidecars);
        if (!p) return p.error();
        root_plan = std::move(*p);
    } else {
        if (sidecars.hash_tree) return Error(EINVAL) << sidecars.hash_tree->name << " next to a GPT disk image";
        if (layout->root) {
            auto p = gpt_verity_plan(file->get(), *layout->root, layout->root_verity, layout->root_verity_sig,
                                     sidecars.root_hash ? &*sidecars.root_hash : nullptr,
                                     sidecars.root_hash_sig ? &*sidecars.root_hash_sig : nullptr);
            if (!p) return p.error();
            root_plan = std::move(*p);
        }
        if (layout->usr) {
            auto p = gpt_verity_plan(file->get(), *layout->usr, layout->usr_verity, layout->usr_verity_sig,
                                     sidecars.usr_hash ? &*sidecars.usr_hash : nullptr,
                                     sidecars.usr_hash_sig ? &*sidecars.usr_hash_sig : nullptr);
            if (!p) return p.error();
            usr_plan = std::move(*p);
        }
    }

    RDEXT_TRY(gate(best_case_offer(*layout, root_plan.has_value(), usr_plan.has_value(), sidecars)));

    // Never erofs-from-file for an image with verity: it would bypass it.
    if (bare && !root_plan && c.kind == ImageKind::Raw && layout->root->fstype == "erofs") {
        RDEXT_TRY(fault_point("image-mount"));
        auto m = mount_erofs_from_file(c, file->get());
        if (m) {
            img.fstype = "erofs";
            img.offered.push_back({Designator::Root, ImageState::Unprotected, "erofs"});
            return attach_into(img, std::move(*m), slot_fd);
        }
        // Older kernels want a block device (ENOTBLK): use a loop device.
        // Any other failure (a corrupt image, a missing module) would fail
        // the same way through a loop device: report it, do not retry.
        if (m.error().code() != ENOTBLK) return m.error().prefix("mount erofs: ");
    }
    if (layout->root) {
        auto m = root_plan ? mount_verity(c, img, file->get(), *layout->root, bare, *root_plan, Designator::Root)
                           : mount_region(c, img, file->get(), *layout->root, bare);
        if (!m) return m.error();
        img.fstype = layout->root->fstype;
        if (!root_plan) img.offered.push_back({Designator::Root, ImageState::Unprotected, layout->root->fstype});
        RDEXT_TRY(attach_into(img, std::move(*m), slot_fd));
    }
    if (layout->usr) {
        // The usr partition goes where /usr is in the image: on "usr" in the
        // root partition, or in an otherwise empty slot when there is none.
        int parent = img.mounts.empty() ? slot_fd : img.mounts.back().get();
        if (img.mounts.empty() && ::mkdirat(slot_fd, "usr", 0755) < 0) return ErrnoError() << "mkdir usr";
        auto usr_dir = open_in_root(parent, "usr", O_PATH | O_DIRECTORY);
        if (!usr_dir) return usr_dir.error().prefix("root partition has no /usr to mount the usr partition on: ");
        auto m = usr_plan ? mount_verity(c, img, file->get(), *layout->usr, false, *usr_plan, Designator::Usr)
                          : mount_region(c, img, file->get(), *layout->usr, false);
        if (!m) return m.error();
        if (img.fstype.empty()) img.fstype = layout->usr->fstype;
        if (!usr_plan) img.offered.push_back({Designator::Usr, ImageState::Unprotected, layout->usr->fstype});
        RDEXT_TRY(attach_into(img, std::move(*m), usr_dir->get()));
    }
    offer_protection_partitions(img.offered, *layout, sidecars);
    return {};
}

}  // namespace

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
                                const PolicyGate& gate) {
    StagedImage img;
    RDEXT_TRY(fault_point("stage-image"));
    auto slot = staging.make_slot(slot_name);
    if (!slot) return slot.error();
    img.slot_path = staging.slot_path(slot_name);
    auto r = c.kind == ImageKind::Directory ? stage_directory(c, img, slot->get(), gate)
                                            : stage_raw(c, staging, img, slot->get(), gate);
    if (!r) return r.error();
    auto tree = open_in_root_nofollow(staging.fd(), slot_name, O_PATH | O_DIRECTORY);
    if (!tree) return tree.error();
    img.tree_fd = std::move(*tree);
    return img;
}

}  // namespace rdext
