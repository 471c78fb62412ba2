// One raw image's plan, shared by the merge's staging (mount/stage_image.h)
// and `rdext inspect` (inspect/protection.h), so both read an image by the
// same rules: the probed layout, its sidecars, for each data file system
// where its hash tree, root hash and signature come from, how it is
// mounted without dm-verity, and what the image at best offers the image
// policy. Planning has no side effect: it reads the verity-sig partitions
// and nothing else (the layout and the sidecars are the caller's, found
// before). Staging then only activates and mounts what the plan names,
// inspect only verifies it in user space.
//
// The rules are systemd's: a bare file system is protected by a .verity
// sidecar with its .roothash/.usrhash (or xattr); a GPT partition by its
// verity partition with the root hash from the verity-sig partition (which
// must name this verity partition and agree with a sidecar hash) or from a
// sidecar. A hash tree with nothing to check it against leaves the
// partition unprotected.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/probe.h"
#include "policy/policy.h"
#include "verity/activate.h"
#include "verity/root_hash.h"
#include "verity/sidecar.h"

namespace rdext {

// How one file system is protected: the hash tree, the root hash and the
// signature to activate (or verify) it with, and where each came from.
struct VerityPlan {
    FileRegion hash;  // a .verity sidecar or a verity partition
    RootHash root_hash;
    std::string root_hash_source;  // "foo.roothash", "xattr user.verity.roothash", "root-verity-sig partition"
    std::optional<std::vector<uint8_t>> signature;  // DER PKCS#7
    std::string signature_source;  // "foo.roothash.p7s", "root-verity-sig partition"; empty: unsigned
};

// One data file system of the image: the root partition (a bare file
// system counts as root) or the usr partition.
struct PartitionPlan {
    Designator designator = Designator::Root;
    std::string fstype;
    FileRegion data;  // the whole file for a bare file system
    std::string hash_tree_source;  // "foo.verity", "root-verity partition"; empty: no hash tree
    std::optional<VerityPlan> verity;  // none: used unprotected
    // erofs straight from the regular file (Linux 6.12+: no loop device,
    // about twice as cheap); never with verity, which it would bypass.
    bool from_file = false;
};

struct ImagePlan {
    ImageLayout layout;
    VeritySidecars sidecars;
    std::vector<PartitionPlan> partitions;  // root first, then usr

    // What the policy sees: each data partition in the state given for it
    // (states[i] for partitions[i]), then the hash tree and signature
    // partitions as plain data, as systemd's check sees them (a .verity
    // sidecar of a bare file system counts as root-verity).
    std::vector<OfferedPartition> offer(const std::vector<ImageState>& states) const;
    // Known before anything is mounted: a partition with a verity plan may
    // turn out signed, one without is unprotected. The policy sees this
    // first, so an image it refuses anyway never reaches the kernel's file
    // system code.
    std::vector<OfferedPartition> best_case_offer() const;
};

// Plans the image `file_fd` (open for reading) as probe_image() laid it
// out, with the sidecars found beside it (none for a block device).
// `regular_file`: the image is a file, not a block device. Sidecars or a
// verity-sig partition that cannot be used that way are an error naming
// them (the image is refused).
Result<ImagePlan> plan_image(int file_fd, bool regular_file, ImageLayout layout, VeritySidecars sidecars);

}  // namespace rdext
