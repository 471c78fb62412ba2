#include "verity/plan.h"

#include "base/fs.h"
#include "verity/verity_sig.h"

namespace rdext {
namespace {

Result<std::string> read_partition(int fd, const ImagePartition& p, size_t max) {
    std::string what = std::string(partition_role_name(p.role)) + " partition";
    if (p.size > max) return Error(EFBIG) << what << " is larger than " << max << " bytes";
    return read_exact_at(fd, p.offset, p.size, what);
}

// A bare file system with a NAME.verity sidecar: the hash tree is that
// file, the root hash and signature are sidecars (or xattrs) too.
Result<void> plan_sidecar_verity(PartitionPlan& part, const VeritySidecars& sc) {
    if (!sc.hash_tree) {
        if (sc.hash()) return Error(EINVAL) << sc.hash()->source << " without a .verity hash tree";
        return {};
    }
    if (!sc.hash()) return Error(EINVAL) << sc.hash_tree->name << " without a root hash (.roothash, .usrhash or xattr)";
    part.hash_tree_source = sc.hash_tree->name;
    VerityPlan v;
    v.hash = {sc.hash_tree->fd.get(), 0, 0};
    v.root_hash = sc.hash()->hash;
    v.root_hash_source = sc.hash()->source;
    if (sc.signature()) {
        v.signature = sc.signature()->der;
        v.signature_source = sc.signature()->source;
    }
    part.verity = std::move(v);
    return {};
}

// A GPT data partition with a verity partition beside it: the root hash
// comes from the verity-sig partition (which must name this verity
// partition) or from a sidecar; without either, the partition is used
// unprotected (nothing to check it against), as systemd does.
Result<void> plan_gpt_verity(PartitionPlan& part, int fd, const ImagePartition& data,
                             const std::optional<ImagePartition>& verity, const std::optional<ImagePartition>& sig_part,
                             const std::optional<SidecarHash>& sidecar_hash,
                             const std::optional<SidecarSignature>& sidecar_sig) {
    if (!verity) return {};
    part.hash_tree_source = std::string(partition_role_name(verity->role)) + " partition";
    VerityPlan v;
    v.hash = {fd, verity->offset, verity->size};
    if (sig_part) {
        std::string what = std::string(partition_role_name(sig_part->role)) + " partition";
        auto raw = read_partition(fd, *sig_part, kVeritySigMaxBytes);
        if (!raw) return raw.error();
        auto sig = parse_verity_sig(*raw);
        if (!sig) return sig.error().prefix(what + ": ");
        if (auto r = check_verity_sig_partition_uuids(*sig, verity->uuid, data.uuid); !r)
            return r.error().prefix(what + ": ");
        if (sidecar_hash)
            if (auto r = check_verity_sig_root_hash(*sig, sidecar_hash->hash); !r)
                return r.error().prefix(what + " and " + sidecar_hash->source + ": ");
        v.root_hash = sig->root_hash;
        v.root_hash_source = what;
        v.signature = sig->signature;
        v.signature_source = what;
    } else if (sidecar_hash) {
        v.root_hash = sidecar_hash->hash;
        v.root_hash_source = sidecar_hash->source;
        if (sidecar_sig) {
            v.signature = sidecar_sig->der;
            v.signature_source = sidecar_sig->source;
        }
    } else {
        return {};
    }
    part.verity = std::move(v);
    return {};
}

PartitionPlan data_partition(Designator d, int fd, const ImagePartition& p, bool whole_file) {
    PartitionPlan part;
    part.designator = d;
    part.fstype = p.fstype;
    part.data = whole_file ? FileRegion{fd, 0, 0} : FileRegion{fd, p.offset, p.size};
    return part;
}

}  // namespace

std::vector<OfferedPartition> ImagePlan::offer(const std::vector<ImageState>& states) const {
    std::vector<OfferedPartition> offered;
    for (size_t i = 0; i < partitions.size() && i < states.size(); i++)
        offered.push_back({partitions[i].designator, states[i], partitions[i].fstype});
    auto plain = [&](Designator d) { offered.push_back({d, ImageState::Unprotected, ""}); };
    if (layout.kind == ImageLayoutKind::FileSystem) {
        if (sidecars.hash_tree) plain(Designator::RootVerity);
        return offered;
    }
    if (layout.root_verity) plain(Designator::RootVerity);
    if (layout.usr_verity) plain(Designator::UsrVerity);
    if (layout.root_verity_sig) plain(Designator::RootVeritySig);
    if (layout.usr_verity_sig) plain(Designator::UsrVeritySig);
    return offered;
}

std::vector<OfferedPartition> ImagePlan::best_case_offer() const {
    std::vector<ImageState> states;
    for (const auto& p : partitions) states.push_back(p.verity ? ImageState::Signed : ImageState::Unprotected);
    return offer(states);
}

Result<ImagePlan> plan_image(int file_fd, bool regular_file, ImageLayout layout, VeritySidecars sidecars) {
    ImagePlan plan;
    plan.layout = std::move(layout);
    plan.sidecars = std::move(sidecars);
    const ImageLayout& l = plan.layout;
    const VeritySidecars& sc = plan.sidecars;
    if (l.kind == ImageLayoutKind::FileSystem) {
        PartitionPlan root = data_partition(Designator::Root, file_fd, *l.root, true);
        RDEXT_TRY(plan_sidecar_verity(root, sc));
        root.from_file = regular_file && !root.verity && root.fstype == "erofs";
        plan.partitions.push_back(std::move(root));
        return plan;
    }
    if (sc.hash_tree) return Error(EINVAL) << sc.hash_tree->name << " next to a GPT disk image";
    if (l.root) {
        PartitionPlan root = data_partition(Designator::Root, file_fd, *l.root, false);
        RDEXT_TRY(plan_gpt_verity(root, file_fd, *l.root, l.root_verity, l.root_verity_sig, sc.root_hash,
                                  sc.root_hash_sig));
        plan.partitions.push_back(std::move(root));
    }
    if (l.usr) {
        PartitionPlan usr = data_partition(Designator::Usr, file_fd, *l.usr, false);
        RDEXT_TRY(plan_gpt_verity(usr, file_fd, *l.usr, l.usr_verity, l.usr_verity_sig, sc.usr_hash,
                                  sc.usr_hash_sig));
        plan.partitions.push_back(std::move(usr));
    }
    return plan;
}

}  // namespace rdext
