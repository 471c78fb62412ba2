// What to mount from a raw image: a bare file system, or the root and/or
// /usr partition of a GPT disk image laid out by the UAPI Discoverable
// Partitions Specification. The decision is made from the content (libblkid),
// never from the file name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace rdext {

enum class PartitionRole { Root, Usr, RootVerity, UsrVerity, RootVeritySig, UsrVeritySig };

// "root", "usr", "root-verity", ... (systemd's designator names).
const char* partition_role_name(PartitionRole role);

struct ImagePartition {
    PartitionRole role = PartitionRole::Root;
    // Probed for root and usr (always in the allow list). Verity and
    // verity-sig partitions are not probed yet: empty.
    std::string fstype;
    uint64_t offset = 0;  // bytes from the start of the image
    uint64_t size = 0;    // bytes
    // GPT partition UUID, lower case; empty for a bare file system.
    std::string uuid;
    std::string label;      // GPT partition name, may be empty
    int partno = 0;         // GPT entry number (1-based); 0 for a bare file system
    uint64_t gpt_flags = 0; // GPT attribute bits as stored
};

// (Not ImageKind: that is discover's directory/raw/block distinction.)
enum class ImageLayoutKind { FileSystem, Gpt };

struct ImageLayout {
    ImageLayoutKind kind = ImageLayoutKind::FileSystem;
    uint64_t size = 0;           // bytes in the whole image
    uint32_t sector_size = 512;  // GPT logical sector size (512 or 4096)
    std::string table_uuid;      // GPT disk GUID, lower case

    // A bare file system is reported as `root` with offset 0 and the whole
    // image size, the way systemd's dissection treats it (image policies
    // name it "root"). A GPT image has at least one of root and usr.
    std::optional<ImagePartition> root;
    std::optional<ImagePartition> usr;
    // Noted for dm-verity support; offsets and sizes are checked, nothing else.
    std::optional<ImagePartition> root_verity;
    std::optional<ImagePartition> usr_verity;
    std::optional<ImagePartition> root_verity_sig;
    std::optional<ImagePartition> usr_verity_sig;
};

// erofs, squashfs, ext4, btrfs, xfs, f2fs, vfat: file systems whose drivers
// are trusted with untrusted images (blkid's names).
bool fstype_allowed(const std::string& fstype);

// The file system type blkid finds on the whole of fd ("" if none): for a
// device that is mounted as it is, not dissected (the fstab's /var).
Result<std::string> probe_filesystem_type(int fd);

// Probes a regular file or block device (read with pread; the file offset
// is not used). Refuses empty images, unrecognised content, file systems
// outside the allow list, GPT images without a root or usr partition for
// this architecture, and partition tables whose entries overlap or run past
// the end of the image.
Result<ImageLayout> probe_image(int fd);

// Partition type UUIDs of the build architecture (lower case).
struct GptTypeSet {
    const char* arch;  // systemd's spelling: "x86-64", "arm64"
    const char* root;
    const char* usr;
    const char* root_verity;
    const char* usr_verity;
    const char* root_verity_sig;
    const char* usr_verity_sig;
};
const GptTypeSet& native_gpt_types();

// Exposed for tests: every extent lies inside [0, image_size) and no two
// overlap. `partno` only names the entry in the message.
struct PartitionExtent {
    int partno = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
};
Result<void> check_partition_extents(std::vector<PartitionExtent> extents, uint64_t image_size);

}  // namespace rdext
