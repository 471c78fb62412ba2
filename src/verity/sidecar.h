// dm-verity sidecars of a raw image NAME.raw, as systemd looks for them:
//   root hash:  xattr user.verity.roothash on the image, else NAME.roothash
//   /usr hash:  xattr user.verity.usrhash, else NAME.usrhash
//   signatures: NAME.roothash.p7s, NAME.usrhash.p7s (DER PKCS#7)
//   hash tree:  NAME.verity (its presence means the .raw is a bare file system)
// systemd uses the root hash if there is one and the /usr hash only
// otherwise; both are reported here and `designator()` makes that choice.
// Everything is untrusted: files are opened beneath the image's directory,
// must be regular files and are size-capped.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "verity/root_hash.h"

namespace rdext {

inline constexpr size_t kRootHashFileMaxBytes = 4096;
inline constexpr size_t kSignatureFileMaxBytes = 1024 * 1024;

struct SidecarHash {
    RootHash hash;
    std::string source;  // "foo.roothash" or "xattr user.verity.roothash"
};

struct SidecarSignature {
    std::vector<uint8_t> der;
    std::string source;  // "foo.roothash.p7s"
};

struct SidecarHashTree {
    UniqueFd fd;  // O_RDONLY, regular file
    std::string name;
    uint64_t size = 0;
};

enum class VerityDesignator { None, Root, Usr };

struct VeritySidecars {
    std::optional<SidecarHash> root_hash;
    std::optional<SidecarHash> usr_hash;
    std::optional<SidecarSignature> root_hash_sig;
    std::optional<SidecarSignature> usr_hash_sig;
    std::optional<SidecarHashTree> hash_tree;

    // Root if a root hash was found, else usr if a /usr hash was, else None.
    VerityDesignator designator() const;
    // The hash and signature of that designator (nullptr when absent).
    const SidecarHash* hash() const;
    const SidecarSignature* signature() const;
};

// "foo.raw" -> "foo"; a name without ".raw" is used whole (as systemd's
// build_auxiliary_path does for non-.raw images).
std::string sidecar_stem(const std::string& image_file_name);

// Looks for the sidecars of `image_file_name` in `dir_fd` (an O_PATH or
// O_RDONLY fd of the directory holding the image). `image_fd` is the open
// image (O_PATH is fine) for the xattrs. A missing sidecar is simply absent;
// a present but unusable one (bad hex, wrong size, not a regular file, a
// symlink leaving the directory, too large, empty signature) is an error
// naming the file and the reason.
//
// `present`, when given, is the directory's listing (as discovery read it):
// names not in it are known to be absent and are not looked up, which saves
// five failed opens per image on the boot path.
Result<VeritySidecars> find_verity_sidecars(int dir_fd, const std::string& image_file_name, int image_fd,
                                            const std::set<std::string>* present = nullptr);

// The sidecars beside the file `path` leads to inside the root (found with
// locate_in_root(), base/fs.h: it must be the inode `image_fd` refers to),
// never by a path from /, which the root could redirect with a symlink
// swapped in meanwhile. `image_fd` is open for reading (for the xattrs).
Result<VeritySidecars> find_verity_sidecars_in_root(int root_fd, const std::string& path, int image_fd);

}  // namespace rdext
