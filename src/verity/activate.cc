#include "verity/activate.h"

#include <fcntl.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "kmod/modules.h"

namespace rdext {
namespace {

// libcryptsetup reports details through a log callback, not its return
// codes: keep the last error line for our message.
thread_local std::string g_crypt_error;

void crypt_log(int level, const char* msg, void*) {
    if (level != CRYPT_LOG_ERROR || !msg) return;
    g_crypt_error = msg;
    while (!g_crypt_error.empty() && (g_crypt_error.back() == '\n' || g_crypt_error.back() == ' '))
        g_crypt_error.pop_back();
}

// A libcryptsetup failure (negative errno) with what it logged (by
// default its last error line, which this consumes).
Error crypt_error(int r, const std::string& what, std::string& logged = g_crypt_error) {
    Error e = Error::sys(-r);
    e << what;
    if (!logged.empty()) e << " (" << logged << ")";
    logged.clear();
    return e;
}

// Why the kernel refused a signed activation: libcryptsetup's message says
// it (its return code is a generic one).
std::string kernel_refusal(int r) {
    std::string why = g_crypt_error.empty() ? std::strerror(-r) : g_crypt_error;
    g_crypt_error.clear();
    return why;
}

struct CryptFree {
    void operator()(crypt_device* cd) const { crypt_free(cd); }
};
using CryptDevice = std::unique_ptr<crypt_device, CryptFree>;

void install_log_callback() {
    static bool done = false;
    if (done) return;
    crypt_set_log_callback(nullptr, crypt_log, nullptr);
    done = true;
}

// The root hash an active verity device was set up with.
Result<RootHash> active_root_hash(const std::string& name) {
    crypt_device* raw = nullptr;
    int r = crypt_init_by_name(&raw, name.c_str());
    if (r < 0) return crypt_error(r, "inspect active device " + name);
    CryptDevice cd(raw);
    if (!crypt_get_type(cd.get()) || std::strcmp(crypt_get_type(cd.get()), CRYPT_VERITY) != 0)
        return Error(EEXIST) << name << " exists and is not a dm-verity device";
    char buf[kRootHashMaxBytes];
    size_t size = sizeof(buf);
    r = crypt_volume_key_get(cd.get(), CRYPT_ANY_SLOT, buf, &size, nullptr, 0);
    if (r < 0) return crypt_error(r, "read the root hash of " + name);
    RootHash h;
    h.bytes.assign(reinterpret_cast<uint8_t*>(buf), reinterpret_cast<uint8_t*>(buf) + size);
    h.hex = hex_encode(h.bytes);
    return h;
}

bool device_active(const std::string& name) {
    crypt_status_info s = crypt_status(nullptr, name.c_str());
    return s == CRYPT_ACTIVE || s == CRYPT_BUSY;
}

// An existing device of our name is reused only if it verifies the same
// root hash; its signature (if the image has one) is checked again in user
// space, as the kernel cannot be asked without a new activation.
Result<ActiveVerity> reuse_device(const VerityRequest& req, const std::string& name) {
    auto existing = active_root_hash(name);
    if (!existing) return existing.error();
    if (!(*existing == req.root_hash))
        return Error(EEXIST) << name << " is active with another root hash (" << existing->hex << ")";
    ActiveVerity out;
    if (req.signature) {
        if (!req.trust) return Error(EKEYREJECTED) << "no verity.d certificates to check the signature with";
        auto signer = verify_root_hash_signature(req.root_hash.hex, *req.signature, *req.trust);
        if (!signer) return Error(EKEYREJECTED) << "signature rejected: " << signer.error().what();
        out.is_signed = true;
        out.signed_by = signer->subject + " (" + signer->source + ")";
    }
    out.device = VerityDevice(name, false);
    return out;
}

// Signed activation: the kernel keyring first; on any failure the
// verity.d certificates in user space, then the plain root hash.
Result<std::string> activate_signed(crypt_device* cd, const VerityRequest& req, const std::string& name) {
    const auto& key = req.root_hash.bytes;
    const auto& sig = *req.signature;
    int r = crypt_activate_by_signed_key(cd, name.c_str(), reinterpret_cast<const char*>(key.data()), key.size(),
                                         reinterpret_cast<const char*>(sig.data()), sig.size(),
                                         CRYPT_ACTIVATE_READONLY);
    if (r >= 0) return std::string("kernel keyring");
    if (r == -EEXIST) return crypt_error(r, "activate " + name);
    std::string kernel_reason = "kernel keyring: " + kernel_refusal(r);
    if (!req.trust)
        return Error(EKEYREJECTED) << "signature rejected: " << kernel_reason << "; no verity.d certificates";
    auto signer = verify_root_hash_signature(req.root_hash.hex, sig, *req.trust);
    if (!signer)
        return Error(EKEYREJECTED) << "signature rejected: " << kernel_reason << "; user space: "
                                   << signer.error().what();
    r = crypt_activate_by_volume_key(cd, name.c_str(), reinterpret_cast<const char*>(key.data()), key.size(),
                                     CRYPT_ACTIVATE_READONLY);
    if (r < 0) return crypt_error(r, "activate " + name);
    return signer->subject + " (" + signer->source + ")";
}

// The root hash must be the digest of the hash tree's top block (dm-verity
// checks this only when a block is read; checking here refuses a wrong root
// hash, or a hash tree changed after signing, before anything is
// activated). Data blocks are still checked by the kernel on every read.
Result<void> check_top_hash_block(crypt_device* cd, const FileRegion& data, const FileRegion& hash,
                                  const RootHash& root_hash) {
    crypt_params_verity p = {};
    int r = crypt_get_verity_info(cd, &p);
    if (r < 0) return crypt_error(r, "read the verity parameters");
    if (p.hash_block_size < 512 || p.hash_block_size > 65536 || p.data_block_size < 512 ||
        p.data_block_size > 65536 || p.data_size == 0 || !p.hash_name)
        return Error(EBADMSG) << "unusable verity parameters";
    // The top level comes first, right after the superblock (libcryptsetup's
    // VERITY_hash_offset_block()). A single data block has no hash level:
    // the root hash is that block's digest.
    uint64_t top = p.hash_area_offset;
    if (!(p.flags & CRYPT_VERITY_NO_HEADER)) top += (512 + p.hash_block_size - 1) / p.hash_block_size * p.hash_block_size;
    auto block = p.data_size == 1 ? read_exact_at(data.fd, data.offset, p.data_block_size, "the data")
                                  : read_exact_at(hash.fd, hash.offset + top, p.hash_block_size, "the hash tree");
    if (!block) return block.error();
    // Fetched from the default provider (no legacy name table needed).
    std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, p.hash_name, nullptr), EVP_MD_free);
    if (!md) return Error(ENOTSUP) << "unknown verity hash " << p.hash_name;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const auto* salt = reinterpret_cast<const unsigned char*>(p.salt);
    bool ok = ctx && EVP_DigestInit_ex(ctx.get(), md.get(), nullptr) == 1;
    // Hash type 1 (veritysetup's default) puts the salt first, type 0 last.
    if (ok && p.hash_type == 1 && p.salt_size) ok = EVP_DigestUpdate(ctx.get(), salt, p.salt_size) == 1;
    ok = ok && EVP_DigestUpdate(ctx.get(), block->data(), block->size()) == 1;
    if (ok && p.hash_type == 0 && p.salt_size) ok = EVP_DigestUpdate(ctx.get(), salt, p.salt_size) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx.get(), digest, &len) == 1;
    if (!ok) return Error(EIO) << "cannot compute the " << p.hash_name << " digest";
    if (std::vector<uint8_t>(digest, digest + len) != root_hash.bytes)
        return Error(EBADMSG) << "root hash " << root_hash.hex
                              << " does not match the hash tree (wrong root hash, or the hash tree was changed)";
    return {};
}

Result<LoopDevice> attach_region(const FileRegion& region, const char* what, LoopReuse* reuse) {
    auto loop = LoopDevice::attach(region.fd, region.offset, region.size, true, reuse);
    if (!loop) return loop.error().prefix(std::string("loop device for the ") + what + ": ");
    return loop;
}

}  // namespace

// libcryptsetup and libdevmapper keep process-wide state (the log callback,
// the last error, udev cookies) and are not thread-safe, while images are
// staged on several threads (base/parallel.h): every entry point here takes
// this lock. Recursive: assigning a VerityDevice deactivates the old one.
namespace {
std::recursive_mutex& dm_lock() {
    static std::recursive_mutex lock;
    return lock;
}
}  // namespace

std::string verity_device_name(const RootHash& root_hash) { return "rdext-" + root_hash.hex.substr(0, 16); }

VerityDevice::VerityDevice(VerityDevice&& o) noexcept
    : name_(std::exchange(o.name_, {})), owned_(std::exchange(o.owned_, false)) {}

VerityDevice& VerityDevice::operator=(VerityDevice&& o) noexcept {
    if (this != &o) {
        deactivate();
        name_ = std::exchange(o.name_, {});
        owned_ = std::exchange(o.owned_, false);
    }
    return *this;
}

VerityDevice::~VerityDevice() { deactivate(); }

void VerityDevice::release() noexcept {
    std::lock_guard<std::recursive_mutex> hold(dm_lock());
    if (owned_ && !name_.empty()) (void)crypt_deactivate_by_name(nullptr, name_.c_str(), CRYPT_DEACTIVATE_DEFERRED);
    name_.clear();
    owned_ = false;
}

void VerityDevice::deactivate() noexcept {
    std::lock_guard<std::recursive_mutex> hold(dm_lock());
    if (owned_ && !name_.empty()) {
        int r = crypt_deactivate_by_name(nullptr, name_.c_str(), 0);
        // Still open (a lazily detached mount): remove on its last close.
        if (r == -EBUSY) r = crypt_deactivate_by_name(nullptr, name_.c_str(), CRYPT_DEACTIVATE_DEFERRED);
        if (r < 0) log_warning() << "cannot remove dm device " << name_ << ": " << std::strerror(-r);
        g_crypt_error.clear();
    }
    name_.clear();
    owned_ = false;
}

namespace {

Result<ActiveVerity> activate(const VerityRequest& req) {
    std::lock_guard<std::recursive_mutex> hold(dm_lock());
    install_log_callback();
    g_crypt_error.clear();
    // dm-verity pulls in dm-mod (the control device) and its helpers.
    RDEXT_TRY(ensure_module("dm_verity"));
    std::string name = verity_device_name(req.root_hash);
    if (device_active(name)) return reuse_device(req, name);

    ActiveVerity out;
    auto data = attach_region(req.data, "data", req.loop_reuse);
    if (!data) return data.error();
    auto hash = attach_region(req.hash, "hash tree", req.loop_reuse);
    if (!hash) return hash.error();
    // Here rather than first: a failed activation must also give back the
    // two loop devices attached for it.
    RDEXT_TRY(fault_point("verity-activate"));

    crypt_device* raw = nullptr;
    int r = crypt_init_data_device(&raw, hash->path().c_str(), data->path().c_str());
    if (r < 0) return crypt_error(r, "open hash device " + hash->path());
    CryptDevice cd(raw);
    crypt_params_verity params = {};
    r = crypt_load(cd.get(), CRYPT_VERITY, &params);
    if (r < 0) return crypt_error(r, "read the verity superblock");
    RDEXT_TRY(check_top_hash_block(cd.get(), req.data, req.hash, req.root_hash));

    std::string signed_by;
    if (req.signature) {
        auto s = activate_signed(cd.get(), req, name);
        if (!s) {
            if (s.error().code() == EEXIST && device_active(name)) return reuse_device(req, name);
            return s.error();
        }
        signed_by = *s;
    } else {
        const auto& key = req.root_hash.bytes;
        r = crypt_activate_by_volume_key(cd.get(), name.c_str(), reinterpret_cast<const char*>(key.data()),
                                         key.size(), CRYPT_ACTIVATE_READONLY);
        if (r == -EEXIST && device_active(name)) return reuse_device(req, name);
        if (r < 0) return crypt_error(r, "activate " + name);
    }
    out.device = VerityDevice(name, true);
    out.is_signed = req.signature != nullptr;
    out.signed_by = signed_by;
    out.loops.push_back(std::move(*data));
    out.loops.push_back(std::move(*hash));
    return out;
}

}  // namespace

// A kernel without dm-verity makes libcryptsetup say "name is invalid"
// and "Operation not supported": the missing module is the cause to name.
Result<ActiveVerity> activate_verity(const VerityRequest& req) {
    auto active = activate(req);
    if (!active)
        if (std::string why = system_modules().why_missing("dm_verity"); !why.empty())
            active.error().prefix("the kernel has no dm-verity: " + why + ": ");
    return active;
}

namespace {

// libcryptsetup says what failed (e.g. "Verification failed at position
// 8192.") through its log, not its return code: keep all its error lines.
void keep_errors(int level, const char* msg, void* logged) {
    if (level != CRYPT_LOG_ERROR || !msg) return;
    std::string line = msg;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    auto* s = static_cast<std::string*>(logged);
    if (!s->empty()) *s += " ";
    *s += line;
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

}  // namespace

Result<void> verify_hash_tree(const FileRegion& data, const FileRegion& hash, const RootHash& root_hash) {
    std::lock_guard<std::recursive_mutex> hold(dm_lock());
    std::optional<LoopDevice> data_loop, hash_loop;
    auto data_path = region_path(data, data_loop);
    if (!data_path) return data_path.error().prefix("data: ");
    auto hash_path = region_path(hash, hash_loop);
    if (!hash_path) return hash_path.error().prefix("hash tree: ");
    std::string logged;
    crypt_device* raw = nullptr;
    int r = crypt_init_data_device(&raw, hash_path->c_str(), data_path->c_str());
    if (r < 0) return crypt_error(r, "open the hash tree", logged);
    CryptDevice cd(raw);
    crypt_set_log_callback(cd.get(), keep_errors, &logged);
    // CHECK_HASH belongs to the loaded parameters (as veritysetup verify
    // sets it): libcryptsetup then reads and checks every block.
    crypt_params_verity params = {};
    params.flags = CRYPT_VERITY_CHECK_HASH;
    r = crypt_load(cd.get(), CRYPT_VERITY, &params);
    if (r < 0) return crypt_error(r, "read the verity superblock", logged);
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
    if (r < 0) return crypt_error(r, "verify the hash tree", logged);
    return {};
}

namespace {

// The first line of a small sysfs file, or "".
std::string sysfs_line(const std::string& path) {
    auto fd = open_path(path, O_RDONLY);
    if (!fd) return "";
    auto text = read_regular_file(fd->get(), 4096);  // sysfs says 4096 bytes
    if (!text) return "";
    return text->substr(0, text->find('\n'));
}

// /dev/dm-N of the dm device called `name`, found through sysfs, and its
// "MAJ:MIN". /dev/mapper/NAME is not reliable: the static libdevmapper
// (built without udev sync) makes that node itself, and a udev running
// beside rdext removes it when it handles the removal of an earlier device
// of the same name; devtmpfs' /dev/dm-N belongs to the kernel.
std::pair<std::string, std::string> dm_kernel_node(const std::string& name) {
    auto dir = open_path("/sys/block", O_RDONLY | O_DIRECTORY);
    if (!dir) return {};
    auto entries = list_directory(dir->get());
    if (!entries) return {};
    for (const auto& e : *entries) {
        if (e.rfind("dm-", 0) != 0 || sysfs_line("/sys/block/" + e + "/dm/name") != name) continue;
        return {"/dev/" + e, sysfs_line("/sys/block/" + e + "/dev")};
    }
    return {};
}

}  // namespace

Result<UniqueFd> open_verity_device(const VerityDevice& dev) {
    std::lock_guard<std::recursive_mutex> hold(dm_lock());
    auto [node, devno] = dm_kernel_node(dev.name());
    std::string path = node.empty() ? dev.path() : node;
    auto fd = open_path(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd && !node.empty() && fd.error().code() == ENOENT) {
        path = dev.path();  // no devtmpfs
        fd = open_path(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    }
    if (!fd) return fd.error();
    auto st = stat_fd(fd->get());
    if (!st) return st.error();
    if (!S_ISBLK(st->st_mode)) return Error(ENOTBLK) << path << " is not a block device";
    // The node must be that device (a stale node could name another).
    if (!devno.empty() && devno != std::to_string(major(st->st_rdev)) + ":" + std::to_string(minor(st->st_rdev)))
        return Error(ENODEV) << path << " is not " << dev.name() << " (" << devno << ")";
    return fd;
}

}  // namespace rdext
