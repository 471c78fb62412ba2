#include "inspect/protection.h"

#include "verity/activate.h"

namespace rdext {
namespace {

// What the plan says of one data partition, nothing checked yet.
Protection planned(const PartitionPlan& part) {
    Protection p;
    p.designator = part.designator;
    p.fstype = part.fstype;
    p.hash_tree_source = part.hash_tree_source;
    if (!part.verity) {
        // As merge: nothing to check the hash tree against, the partition
        // is used unprotected.
        if (!part.hash_tree_source.empty()) p.hash_tree_detail = "no root hash (no verity-sig partition or sidecar)";
        return p;
    }
    p.root_hash = part.verity->root_hash;
    p.root_hash_source = part.verity->root_hash_source;
    p.signature_source = part.verity->signature_source;
    return p;
}

// Checks what the plan names: the hash tree in full, the signature against
// the trust anchors. Failures are findings, recorded in the Protection.
Protection check(const PartitionPlan& part, const TrustStore& trust) {
    Protection p = planned(part);
    if (!part.verity) return p;
    const VerityPlan& v = *part.verity;
    if (auto r = verify_hash_tree(part.data, v.hash, v.root_hash); r) {
        p.hash_tree = HashTreeCheck::Verified;
    } else {
        p.hash_tree = HashTreeCheck::Failed;
        p.hash_tree_detail = r.error().what();
    }
    if (v.signature) {
        auto signer = verify_root_hash_signature(v.root_hash.hex, *v.signature, trust);
        if (signer) {
            p.signature = SignatureCheck::Valid;
            p.signer = std::move(*signer);
        } else {
            p.signature = SignatureCheck::Invalid;
            p.signature_error = signer.error().what();
        }
    }
    return p;
}

}  // namespace

const char* hash_tree_check_name(HashTreeCheck c) {
    switch (c) {
        case HashTreeCheck::NotChecked: return "not checked";
        case HashTreeCheck::Verified: return "verified";
        case HashTreeCheck::Failed: return "failed";
    }
    return "?";
}

const char* signature_check_name(SignatureCheck c) {
    switch (c) {
        case SignatureCheck::None: return "none";
        case SignatureCheck::Valid: return "valid";
        case SignatureCheck::Invalid: return "invalid";
    }
    return "?";
}

ImageState Protection::state() const {
    if (signature == SignatureCheck::Invalid) return ImageState::SignatureFailed;
    if (!root_hash || hash_tree != HashTreeCheck::Verified) return ImageState::Unprotected;
    return signature == SignatureCheck::Valid ? ImageState::Signed : ImageState::Verity;
}

std::vector<Protection> assess_protection(const ImagePlan& plan, const TrustStore& trust) {
    std::vector<Protection> out;
    for (const auto& part : plan.partitions) out.push_back(check(part, trust));
    return out;
}

}  // namespace rdext
