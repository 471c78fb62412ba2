// How an image's file systems are protected, established without
// device-mapper (the host running `rdext inspect` may have none): where the
// root hash and hash tree come from, whether the whole hash tree matches
// the data and the root hash (checked in user space by libcryptsetup, as
// `veritysetup verify` does), and whether the signature over the root hash
// verifies against the trust anchors (OpenSSL, as merge's user-space
// check). The same sources and rules as merge (mount/stage_image.cc) decide
// which hash and signature belong to which partition.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/probe.h"
#include "policy/policy.h"
#include "verity/activate.h"
#include "verity/pkcs7.h"
#include "verity/root_hash.h"
#include "verity/sidecar.h"

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

// Assesses every data partition of `layout` (file_fd: the image, read with
// pread and through loop devices only while checking). A sidecar or
// signature partition that cannot be used the way merge would use it is an
// error naming it (merge refuses such an image too).
Result<std::vector<Protection>> assess_protection(int file_fd, const ImageLayout& layout,
                                                  const VeritySidecars& sidecars, const TrustStore& trust);

// The whole hash tree against the data and the root hash, in user space
// (libcryptsetup, no dm device). `size` 0 means the whole file; a region
// of a file is read through a read-only loop device, detached afterwards.
Result<void> verify_hash_tree(const FileRegion& data, const FileRegion& hash, const RootHash& root_hash);

}  // namespace rdext
