#include "inspect/protection.h"

#include <libcryptsetup.h>
#include <unistd.h>

#include <memory>
#include <optional>

#include "base/fs.h"
#include "image/loop.h"
#include "verity/verity_sig.h"

namespace rdext {
namespace {

struct CryptFree {
    void operator()(crypt_device* cd) const { crypt_free(cd); }
};
using CryptDevice = std::unique_ptr<crypt_device, CryptFree>;

// libcryptsetup says what failed (e.g. "Verification failed at position
// 8192.") through its log, not its return code: keep its error lines.
void keep_error(int level, const char* msg, void* logged) {
    if (level != CRYPT_LOG_ERROR || !msg) return;
    std::string line = msg;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    auto* s = static_cast<std::string*>(logged);
    if (!s->empty()) *s += " ";
    *s += line;
}

Error crypt_failure(int r, const std::string& what, const std::string& logged) {
    Error e = Error::sys(-r);
    e << what;
    if (!logged.empty()) e << " (" << logged << ")";
    return e;
}

// A path libcryptsetup can open for a region: the file itself through its
// /proc link when the region is the whole file, else a loop device over it.
Result<std::string> region_path(const FileRegion& region, std::optional<LoopDevice>& loop) {
    if (region.size == 0 && region.offset == 0) return proc_fd_path(region.fd);
    auto l = LoopDevice::attach(region.fd, region.offset, region.size, false);
    if (!l) return l.error().prefix("loop device: ");
    loop = std::move(*l);
    return loop->path();
}

Result<std::string> read_region(int fd, const ImagePartition& p, size_t max) {
    const char* what = partition_role_name(p.role);
    if (p.size > max) return Error(EFBIG) << what << " partition is larger than " << max << " bytes";
    std::string buf(p.size, '\0');
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(p.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError() << "read " << what << " partition";
        if (n == 0) return Error(EIO) << what << " partition is truncated";
        done += static_cast<size_t>(n);
    }
    return buf;
}

// Which hash and signature protect one data partition; nothing is checked
// yet. The rules are merge's: a bare file system is protected by a .verity
// sidecar with its .roothash/.usrhash (or xattr); a GPT partition by its
// verity partition with the hash from the verity-sig partition (which must
// name this verity partition and agree with a sidecar hash) or a sidecar.
struct Plan {
    Protection p;
    FileRegion data, hash;
    std::optional<std::vector<uint8_t>> signature;
};

Result<Plan> bare_plan(int fd, const ImagePartition& part, const VeritySidecars& sc) {
    Plan plan;
    plan.p.designator = Designator::Root;
    plan.p.fstype = part.fstype;
    plan.data = {fd, 0, 0};
    if (!sc.hash_tree) {
        if (sc.hash()) return Error(EINVAL) << sc.hash()->source << " without a .verity hash tree";
        return plan;
    }
    if (!sc.hash()) return Error(EINVAL) << sc.hash_tree->name << " without a root hash (.roothash, .usrhash or xattr)";
    plan.p.hash_tree_source = sc.hash_tree->name;
    plan.hash = {sc.hash_tree->fd.get(), 0, 0};
    plan.p.root_hash = sc.hash()->hash;
    plan.p.root_hash_source = sc.hash()->source;
    if (sc.signature()) {
        plan.signature = sc.signature()->der;
        plan.p.signature_source = sc.signature()->source;
    }
    return plan;
}

Result<Plan> gpt_plan(int fd, Designator d, const ImagePartition& data, const std::optional<ImagePartition>& verity,
                      const std::optional<ImagePartition>& sig_part, const std::optional<SidecarHash>& sidecar_hash,
                      const std::optional<SidecarSignature>& sidecar_sig) {
    Plan plan;
    plan.p.designator = d;
    plan.p.fstype = data.fstype;
    plan.data = {fd, data.offset, data.size};
    if (!verity) return plan;
    plan.p.hash_tree_source = std::string(partition_role_name(verity->role)) + " partition";
    plan.hash = {fd, verity->offset, verity->size};
    if (sig_part) {
        std::string what = std::string(partition_role_name(sig_part->role)) + " partition";
        auto raw = read_region(fd, *sig_part, kVeritySigMaxBytes);
        if (!raw) return raw.error();
        auto sig = parse_verity_sig(*raw);
        if (!sig) return sig.error().prefix(what + ": ");
        if (auto r = check_verity_sig_partition_uuids(*sig, verity->uuid, data.uuid); !r)
            return r.error().prefix(what + ": ");
        if (sidecar_hash)
            if (auto r = check_verity_sig_root_hash(*sig, sidecar_hash->hash); !r)
                return r.error().prefix(what + " and " + sidecar_hash->source + ": ");
        plan.p.root_hash = sig->root_hash;
        plan.p.root_hash_source = what;
        plan.signature = sig->signature;
        plan.p.signature_source = what;
    } else if (sidecar_hash) {
        plan.p.root_hash = sidecar_hash->hash;
        plan.p.root_hash_source = sidecar_hash->source;
        if (sidecar_sig) {
            plan.signature = sidecar_sig->der;
            plan.p.signature_source = sidecar_sig->source;
        }
    } else {
        // As merge: nothing to check the hash tree against, the partition
        // is used unprotected.
        plan.p.hash_tree_detail = "no root hash (no verity-sig partition or sidecar)";
    }
    return plan;
}

// Checks what the plan names: the hash tree in full, the signature against
// the trust anchors. Failures are findings, recorded in the Protection.
Protection check(Plan plan, const TrustStore& trust) {
    Protection& p = plan.p;
    if (!p.root_hash) return std::move(p);
    if (auto r = verify_hash_tree(plan.data, plan.hash, *p.root_hash); r) {
        p.hash_tree = HashTreeCheck::Verified;
    } else {
        p.hash_tree = HashTreeCheck::Failed;
        p.hash_tree_detail = r.error().what();
    }
    if (plan.signature) {
        auto signer = verify_root_hash_signature(p.root_hash->hex, *plan.signature, trust);
        if (signer) {
            p.signature = SignatureCheck::Valid;
            p.signer = std::move(*signer);
        } else {
            p.signature = SignatureCheck::Invalid;
            p.signature_error = signer.error().what();
        }
    }
    return std::move(p);
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

Result<void> verify_hash_tree(const FileRegion& data, const FileRegion& hash, const RootHash& root_hash) {
    std::optional<LoopDevice> data_loop, hash_loop;
    auto data_path = region_path(data, data_loop);
    if (!data_path) return data_path.error().prefix("data: ");
    auto hash_path = region_path(hash, hash_loop);
    if (!hash_path) return hash_path.error().prefix("hash tree: ");
    crypt_device* raw = nullptr;
    int r = crypt_init_data_device(&raw, hash_path->c_str(), data_path->c_str());
    if (r < 0) return crypt_failure(r, "open the hash tree", "");
    CryptDevice cd(raw);
    std::string logged;
    crypt_set_log_callback(cd.get(), keep_error, &logged);
    // CHECK_HASH belongs to the loaded parameters (as veritysetup verify
    // sets it): libcryptsetup then reads and checks every block.
    crypt_params_verity params = {};
    params.flags = CRYPT_VERITY_CHECK_HASH;
    r = crypt_load(cd.get(), CRYPT_VERITY, &params);
    if (r < 0) return crypt_failure(r, "read the verity superblock", logged);
    const auto& key = root_hash.bytes;
    // No name: libcryptsetup checks, it does not activate (no device-mapper
    // needed).
    r = crypt_activate_by_volume_key(cd.get(), nullptr, reinterpret_cast<const char*>(key.data()), key.size(), 0);
    if (r == -EPERM) {
        Error e(EBADMSG);
        e << "the hash tree does not match the data and root hash " << root_hash.hex;
        if (!logged.empty()) e << " (" << logged << ")";
        return e;
    }
    if (r < 0) return crypt_failure(r, "verify the hash tree", logged);
    return {};
}

Result<std::vector<Protection>> assess_protection(int file_fd, const ImageLayout& layout,
                                                  const VeritySidecars& sc, const TrustStore& trust) {
    std::vector<Plan> plans;
    if (layout.kind == ImageLayoutKind::FileSystem) {
        auto p = bare_plan(file_fd, *layout.root, sc);
        if (!p) return p.error();
        plans.push_back(std::move(*p));
    } else {
        if (sc.hash_tree) return Error(EINVAL) << sc.hash_tree->name << " next to a GPT disk image";
        if (layout.root) {
            auto p = gpt_plan(file_fd, Designator::Root, *layout.root, layout.root_verity, layout.root_verity_sig,
                              sc.root_hash, sc.root_hash_sig);
            if (!p) return p.error();
            plans.push_back(std::move(*p));
        }
        if (layout.usr) {
            auto p = gpt_plan(file_fd, Designator::Usr, *layout.usr, layout.usr_verity, layout.usr_verity_sig,
                              sc.usr_hash, sc.usr_hash_sig);
            if (!p) return p.error();
            plans.push_back(std::move(*p));
        }
    }
    std::vector<Protection> out;
    for (auto& plan : plans) out.push_back(check(std::move(plan), trust));
    return out;
}

}  // namespace rdext
