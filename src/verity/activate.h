// dm-verity activation through libcryptsetup: a data region and a hash tree
// region (of the same or of two files), loop-attached read-only, opened as
// a read-only dm-verity device named after the root hash. Also the
// user-space check of a whole hash tree, without device-mapper.
//
// Signatures are checked first by the kernel (crypt_activate_by_signed_key,
// the kernel keyring decides), then in user space against the INITRD's
// verity.d certificates (verify_root_hash_signature) followed by an
// activation with the bare root hash. A signature neither accepts is a
// refusal (EKEYREJECTED, `signature_failed` set), never a downgrade.
//
// Covered by the VM scenarios tests/vm/scenarios/verity.sh and
// fault_verity.sh (the host tests have no device mapper).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "image/loop.h"
#include "verity/pkcs7.h"
#include "verity/root_hash.h"

namespace rdext {

// Owns an active dm-verity device. The destructor removes a device this
// object created (if something still holds it, e.g. a lazily detached
// mount, the removal is deferred to its last close); release() hands the
// device to its users (deferred removal, systemd's "relinquish"). A device
// that was found already active with the same root hash is reused and
// never removed by us.
class VerityDevice {
public:
    VerityDevice() = default;
    VerityDevice(std::string name, bool owned) : name_(std::move(name)), owned_(owned) {}
    VerityDevice(VerityDevice&& o) noexcept;
    VerityDevice& operator=(VerityDevice&& o) noexcept;
    VerityDevice(const VerityDevice&) = delete;
    VerityDevice& operator=(const VerityDevice&) = delete;
    ~VerityDevice();

    bool valid() const { return !name_.empty(); }
    const std::string& name() const { return name_; }         // "rdext-0123456789abcdef"
    std::string path() const { return "/dev/mapper/" + name_; }
    bool reused() const { return !owned_; }

    // Deferred removal: the device goes when its last user (the mount
    // under the overlay) closes it.
    void release() noexcept;
    // Removes the device now, or deferred if it is still open.
    void deactivate() noexcept;

private:
    std::string name_;
    bool owned_ = false;
};

// "rdext-" + the first 16 hex digits of the root hash.
std::string verity_device_name(const RootHash& root_hash);

// One region of a file: the whole file when size is 0.
struct FileRegion {
    int fd = -1;
    uint64_t offset = 0;
    uint64_t size = 0;
};

struct VerityRequest {
    FileRegion data;
    FileRegion hash;  // the hash tree (a .verity sidecar or a verity partition)
    RootHash root_hash;
    const std::vector<uint8_t>* signature = nullptr;  // DER PKCS#7; nullptr: unsigned
    const TrustStore* trust = nullptr;                // the initrd's verity.d; needed for a signature
    LoopReuse* loop_reuse = nullptr;                  // a refresh: loop devices of the current merge
};

struct ActiveVerity {
    VerityDevice device;
    std::vector<LoopDevice> loops;  // data and hash; to relinquish with the mount
    bool is_signed = false;
    std::string signed_by;  // "kernel keyring" or the certificate's subject and source
};

// Activates (or reuses) the device. Errors name the step; a signature that
// fails is EKEYREJECTED with the reasons of both checks.
Result<ActiveVerity> activate_verity(const VerityRequest& req);

// Opens /dev/mapper/NAME read-only and checks it is a block device.
Result<UniqueFd> open_verity_device(const VerityDevice& dev);

// The whole hash tree against the data and the root hash, in user space
// (libcryptsetup, no dm device: what `veritysetup verify` does), for a
// host without device-mapper (rdext inspect). A region of a file is read
// through a read-only loop device, detached afterwards; a hash tree that
// does not match is EBADMSG.
Result<void> verify_hash_tree(const FileRegion& data, const FileRegion& hash, const RootHash& root_hash);

}  // namespace rdext
