// How an image's file systems are protected, established without
// device-mapper (the host running `rdext inspect` may have none): where the
// root hash and hash tree come from, whether the whole hash tree matches
// the data and the root hash (checked in user space by libcryptsetup, as
// `veritysetup verify` does), and whether the signature over the root hash
// verifies against the trust anchors (OpenSSL, as merge's user-space
// check). Which hash and signature belong to which partition is the
// image's plan (verity/plan.h), the one merge stages by.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/probe.h"
#include "policy/policy.h"
#include "verity/pkcs7.h"
#include "verity/plan.h"
#include "verity/root_hash.h"

namespace rdext {

enum class HashTreeCheck { NotChecked, Verified, Failed };
enum class SignatureCheck { None, Valid, Invalid };

const char* hash_tree_check_name(HashTreeCheck c);   // "not checked", "verified", "failed"
const char* signature_check_name(SignatureCheck c);  // "none", "valid", "invalid"

// One data file system of the image (the bare file system counts as root).
struct Protection {
    Designator designator = Designator::Root;
    std::string fstype;
    std::string hash_tree_source;  // "foo.verity", "root-verity partition"; empty: no hash tree
    std::optional<RootHash> root_hash;
    std::string root_hash_source;  // "foo.roothash", "root-verity-sig partition", ...
    HashTreeCheck hash_tree = HashTreeCheck::NotChecked;
    std::string hash_tree_detail;  // why not checked, or what failed
    SignatureCheck signature = SignatureCheck::None;
    std::string signature_source;  // "foo.roothash.p7s", "root-verity-sig partition"
    std::optional<SignatureSigner> signer;
    std::string signature_error;

    // What the image policy sees: Signed, Verity, SignatureFailed or
    // Unprotected. A hash tree that does not match counts as no protection
    // it could offer: the caller refuses the image for it.
    ImageState state() const;
};

// Checks every data partition of the plan: its whole hash tree (read
// with pread and through loop devices only while checking), its signature
// against `trust`.
std::vector<Protection> assess_protection(const ImagePlan& plan, const TrustStore& trust);

}  // namespace rdext
