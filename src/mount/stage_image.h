// Mounts one discovered image, read-only, into a slot of the staging area,
// so its release file can be read and its hierarchies used as overlay
// layers. Directories are bind-cloned from the fd discovery resolved, raw
// images and block devices go through a read-only loop device.
//
// Covered by tests/integration/merge_kinds.sh (every image kind),
// bad_input.sh and hostile.sh (refusals, races, nothing left behind);
// dm-verity staging by the VM scenarios verity.sh and fault_verity.sh.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "discover/discover.h"
#include "image/loop.h"
#include "mount/staging.h"
#include "policy/policy.h"
#include "verity/activate.h"
#include "verity/plan.h"

namespace rdext {

struct StagedImage {
    std::string slot_path;  // absolute path of the image's tree in the staging area
    UniqueFd tree_fd;       // O_PATH fd of that tree
    std::string fstype;     // empty for directories
    // What the image offers, per partition designator, for the image policy.
    std::vector<OfferedPartition> offered;
    std::vector<LoopDevice> loops;  // released to autoclear once merged
    // dm-verity devices the mounts sit on; removed with the mounts, or
    // (deferred) when the last user goes if something still holds them.
    std::vector<VerityDevice> verity;
    // The root hash the mounted partition was checked against (lower-case
    // hex), for systemd's origin file (merge/sysext_origin.h); empty without.
    std::string verity_root_hash;

    // Layer for a hierarchy ("/usr"), resolved inside the image so a
    // symlink in the image cannot point the layer elsewhere; empty when the
    // image has nothing there. It is "/proc/self/fd/N" of the fd the check
    // resolved: a directory image is a live bind of the root's directory,
    // and a path into it, walked again by the kernel, could meet a symlink
    // swapped in since. The magic link leads to the very directory checked.
    Result<std::string> layer_for(const std::string& hierarchy) const;
    // Resolves them ahead, once (layer_for() then only looks them up).
    Result<void> resolve_layers(const std::vector<std::string>& hierarchies);
    // O_PATH fd of a layer resolve_layers() found; -1 when none.
    int layer_fd(const std::string& hierarchy) const;
    // A sysext with kernel modules for the running kernel (merge/module_index.h).
    bool ships_modules = false;

    // Drops the image's mounts now (a refused image), dm and loop devices
    // with them.
    void unmount() noexcept;
    // Merged: the overlay holds the mounts; loop devices autoclear and dm
    // devices go (deferred removal) when their last user does. The image's
    // own mounts are left to the staging area's detach.
    void relinquish() noexcept;

    StagedImage() = default;
    StagedImage(StagedImage&&) = default;
    StagedImage& operator=(StagedImage&&) = default;
    ~StagedImage();

    std::vector<UniqueFd> mounts;  // attached mounts in the slot, innermost last

private:
    struct Layer {
        std::string hierarchy;
        UniqueFd fd;  // none: the image has nothing there
    };
    Result<Layer> find_layer(const std::string& hierarchy) const;
    std::vector<Layer> layers_;
};

// Checks what an image offers against the image policy; called before the
// image is mounted (with the best case) and again by the caller afterwards.
using PolicyGate = std::function<Result<void>(const std::vector<OfferedPartition>&)>;

// The candidate's image opened with `flags` (O_RDONLY...): a file through
// its fd; a block device node on the root only names a device (it may sit
// on a nodev mount, its permissions are the root's to choose), so the
// device itself is opened through the running system's /dev, found by
// number in sysfs, and checked to be the same device.
Result<UniqueFd> open_candidate_image(const Candidate& c, int flags);

// Mounts the image into a new slot of the staging area, unless `gate`
// refuses it first. A raw image is planned first (verity/plan.h); staging
// then activates and mounts what the plan names. A refresh passes its
// `reuse` index: an image that stays keeps its loop devices.
Result<StagedImage> stage_image(const Candidate& c, Staging& staging, const std::string& slot_name,
                                const PolicyGate& gate, LoopReuse* reuse = nullptr);

// Mounts one planned file system without dm-verity, detached, with mount
// attributes `attrs`: erofs from the file where the plan says so (a loop
// device on kernels that want a block device), else through a read-only
// loop device over its region (added to `loops`), a block device entry
// too, so the file system cannot write to the device the entry names.
// Journal recovery is off: images are only ever read.
Result<UniqueFd> mount_partition(const PartitionPlan& part, uint64_t attrs, std::vector<LoopDevice>& loops,
                                 LoopReuse* reuse = nullptr);

}  // namespace rdext
