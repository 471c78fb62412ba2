#include "image/probe.h"

#include <blkid/blkid.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>

#include "base/log.h"
#include "release/version.h"

namespace rdext {
namespace {

// GPT attribute bit 63 (Discoverable Partitions Specification): the
// partition is not to be used by automatic discovery. systemd skips root,
// usr and verity partitions carrying it, so do we.
constexpr uint64_t kGptFlagNoAuto = 1ULL << 63;

const char* const kAllowedFsTypes[] = {"erofs", "squashfs", "ext4", "btrfs", "xfs", "f2fs", "vfat"};

// Type UUIDs from the Discoverable Partitions Specification.
#if defined(__x86_64__)
constexpr GptTypeSet kNativeTypes = {
    "x86-64",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",  // root
    "8484680c-9521-48c6-9c11-b0720656f69e",  // usr
    "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",  // root-verity
    "77ff5f63-e7b6-4633-acf4-1565b864c0e6",  // usr-verity
    "41092b05-9fc8-4523-994f-2def0408b176",  // root-verity-sig
    "e7bb33fb-06cf-4e81-8273-e543b413e2e2",  // usr-verity-sig
};
#elif defined(__aarch64__)
constexpr GptTypeSet kNativeTypes = {
    "arm64",
    "b921b045-1df0-41c3-af44-4c6f280d3fae",  // root
    "b0e01050-ee5f-4390-949a-9101b17104e9",  // usr
    "df3300ce-d69f-4c92-978c-9bfb0f38d820",  // root-verity
    "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e",  // usr-verity
    "6db69de6-29f4-4758-a7a5-962190f00ce3",  // root-verity-sig
    "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",  // usr-verity-sig
};
#else
#error "rdext: add this architecture's Discoverable Partitions type UUIDs to probe.cc"
#endif

struct BlkidProbeFree {
    void operator()(blkid_probe p) const { blkid_free_probe(p); }
};
using BlkidProbe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, BlkidProbeFree>;

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string allowed_list() {
    std::string out;
    for (const char* t : kAllowedFsTypes) {
        if (!out.empty()) out += ", ";
        out += t;
    }
    return out;
}

Error not_allowed(const std::string& what, const std::string& fstype) {
    return Error(EPROTONOSUPPORT) << what << "file system type '" << fstype
                                  << "' is not allowed (allowed: " << allowed_list() << ")";
}

Result<uint64_t> image_size(int fd, const struct stat& st) {
    if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode)) {
        uint64_t size = 0;
        if (::ioctl(fd, BLKGETSIZE64, &size) < 0) return ErrnoError() << "BLKGETSIZE64";
        return size;
    }
    return Error(EBADFD) << "image is neither a regular file nor a block device";
}

// Image files can be built for 512- or 4096-byte sectors; the GPT header
// sits in the second sector, so its position tells which (as systemd does).
// Block devices know their own sector size.
Result<uint32_t> sector_size(int fd, const struct stat& st) {
    if (S_ISBLK(st.st_mode)) {
        int ssz = 0;
        if (::ioctl(fd, BLKSSZGET, &ssz) < 0) return ErrnoError() << "BLKSSZGET";
        return static_cast<uint32_t>(ssz);
    }
    unsigned char buf[2 * 4096];
    ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
    if (n < 0) return ErrnoError() << "reading image header";
    uint32_t found = 0;
    for (uint32_t sz = 512; sz <= 4096; sz <<= 1) {
        if (static_cast<size_t>(n) < sz + 92) break;  // 92: size of a GPT header
        const unsigned char* h = buf + sz;
        uint32_t revision, header_size;
        uint64_t my_lba;
        std::memcpy(&revision, h + 8, 4);
        std::memcpy(&header_size, h + 12, 4);
        std::memcpy(&my_lba, h + 24, 8);
        if (std::memcmp(h, "EFI PART", 8) != 0 || le32toh(revision) != 0x00010000 ||
            le32toh(header_size) < 92 || le32toh(header_size) > sz || le64toh(my_lba) != 1)
            continue;
        if (found != 0)
            return Error(ENOTUNIQ) << "GPT headers found for both " << found << " and " << sz
                                   << " byte sectors";
        found = sz;
    }
    return found ? found : 512;
}

BlkidProbe new_probe(int fd, uint64_t offset, uint64_t size) {
    BlkidProbe pr(blkid_new_probe());
    if (!pr) return pr;
    if (blkid_probe_set_device(pr.get(), fd, static_cast<blkid_loff_t>(offset),
                               static_cast<blkid_loff_t>(size)) != 0)
        pr.reset();
    return pr;
}

std::string lookup(blkid_probe pr, const char* name) {
    const char* v = nullptr;
    if (blkid_probe_lookup_value(pr, name, &v, nullptr) != 0 || !v) return {};
    return v;
}

// File system type inside [offset, offset + size), or "" if none.
Result<std::string> probe_fstype(int fd, uint64_t offset, uint64_t size) {
    errno = 0;
    BlkidProbe pr = new_probe(fd, offset, size);
    if (!pr) return Error(errno ? errno : ENOMEM) << "cannot set up blkid probe";
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE);
    errno = 0;
    int r = blkid_do_safeprobe(pr.get());
    if (r == 1) return std::string();
    if (r == -2) return Error(EUCLEAN) << "more than one file system signature found";
    if (r < 0) return Error(errno ? errno : EIO) << "probing file system failed";
    return lookup(pr.get(), "TYPE");
}

struct RoleMatch {
    const char* type;
    PartitionRole role;
};

std::optional<ImagePartition>* slot_for(ImageLayout& l, PartitionRole role) {
    switch (role) {
    case PartitionRole::Root: return &l.root;
    case PartitionRole::Usr: return &l.usr;
    case PartitionRole::RootVerity: return &l.root_verity;
    case PartitionRole::UsrVerity: return &l.usr_verity;
    case PartitionRole::RootVeritySig: return &l.root_verity_sig;
    case PartitionRole::UsrVeritySig: return &l.usr_verity_sig;
    }
    return nullptr;
}

// A partition whose role is already taken: for root and usr the newest
// label wins (A/B images), for everything else the first one.
bool replaces(const ImagePartition& candidate, const ImagePartition& current) {
    if (candidate.role != PartitionRole::Root && candidate.role != PartitionRole::Usr) return false;
    return compare_versions(candidate.label, current.label) > 0;
}

Result<void> check_file_system(int fd, ImagePartition& p) {
    std::string what =
        "partition " + std::to_string(p.partno) + " (" + partition_role_name(p.role) + "): ";
    auto fstype = probe_fstype(fd, p.offset, p.size);
    if (!fstype) return fstype.error().prefix(what);
    if (fstype->empty()) return Error(ENOMEDIUM) << what << "no file system recognised";
    if (!fstype_allowed(*fstype)) return not_allowed(what, *fstype);
    p.fstype = *fstype;
    return {};
}

Result<void> read_gpt(int fd, blkid_probe pr, ImageLayout& layout) {
    const GptTypeSet& t = native_gpt_types();
    const RoleMatch roles[] = {
        {t.root, PartitionRole::Root},
        {t.usr, PartitionRole::Usr},
        {t.root_verity, PartitionRole::RootVerity},
        {t.usr_verity, PartitionRole::UsrVerity},
        {t.root_verity_sig, PartitionRole::RootVeritySig},
        {t.usr_verity_sig, PartitionRole::UsrVeritySig},
    };

    errno = 0;
    blkid_partlist pl = blkid_probe_get_partitions(pr);
    if (!pl) return Error(errno ? errno : EIO) << "cannot read the GPT partition list";
    if (blkid_parttable tab = blkid_partlist_get_table(pl))
        if (const char* id = blkid_parttable_get_id(tab)) layout.table_uuid = lower(id);

    int n = blkid_partlist_numof_partitions(pl);
    if (n < 0) return Error(EIO) << "cannot read the GPT partition list";

    std::vector<PartitionExtent> extents;
    for (int i = 0; i < n; i++) {
        blkid_partition part = blkid_partlist_get_partition(pl, i);
        if (!part) return Error(EIO) << "cannot read GPT entry " << i;

        // blkid reports start and size in 512-byte units whatever the
        // table's sector size.
        blkid_loff_t start = blkid_partition_get_start(part);
        blkid_loff_t sectors = blkid_partition_get_size(part);
        int partno = blkid_partition_get_partno(part);
        if (start < 0 || sectors < 0 || static_cast<uint64_t>(start) > UINT64_MAX / 512 ||
            static_cast<uint64_t>(sectors) > UINT64_MAX / 512)
            return Error(EBADMSG) << "GPT entry " << partno << " has an invalid extent";
        ImagePartition p;
        p.partno = partno;
        p.offset = static_cast<uint64_t>(start) * 512;
        p.size = static_cast<uint64_t>(sectors) * 512;
        extents.push_back({p.partno, p.offset, p.size});

        const char* type = blkid_partition_get_type_string(part);
        if (!type) continue;
        std::string type_l = lower(type);
        auto match = std::find_if(std::begin(roles), std::end(roles),
                                  [&](const RoleMatch& m) { return type_l == m.type; });
        if (match == std::end(roles)) continue;  // other partitions are none of our business
        p.role = match->role;
        p.gpt_flags = blkid_partition_get_flags(part);
        if (p.gpt_flags & kGptFlagNoAuto) {
            log_debug() << "GPT partition " << p.partno << " (" << partition_role_name(p.role)
                        << ") is marked no-auto, ignoring it";
            continue;
        }
        if (const char* uuid = blkid_partition_get_uuid(part)) p.uuid = lower(uuid);
        if (const char* name = blkid_partition_get_name(part)) p.label = name;

        std::optional<ImagePartition>* slot = slot_for(layout, p.role);
        if (!*slot || replaces(p, **slot)) *slot = std::move(p);
    }

    RDEXT_TRY(check_partition_extents(std::move(extents), layout.size));

    if (!layout.root && !layout.usr)
        return Error(ENXIO) << "GPT image has no root or usr partition for " << t.arch;
    if (layout.root) RDEXT_TRY(check_file_system(fd, *layout.root));
    if (layout.usr) RDEXT_TRY(check_file_system(fd, *layout.usr));
    return {};
}

}  // namespace

const char* partition_role_name(PartitionRole role) {
    switch (role) {
    case PartitionRole::Root: return "root";
    case PartitionRole::Usr: return "usr";
    case PartitionRole::RootVerity: return "root-verity";
    case PartitionRole::UsrVerity: return "usr-verity";
    case PartitionRole::RootVeritySig: return "root-verity-sig";
    case PartitionRole::UsrVeritySig: return "usr-verity-sig";
    }
    return "?";
}

bool fstype_allowed(const std::string& fstype) {
    return std::any_of(std::begin(kAllowedFsTypes), std::end(kAllowedFsTypes),
                       [&](const char* t) { return fstype == t; });
}

const GptTypeSet& native_gpt_types() { return kNativeTypes; }

Result<std::string> probe_filesystem_type(int fd) { return probe_fstype(fd, 0, 0); }

Result<void> check_partition_extents(std::vector<PartitionExtent> extents, uint64_t image_size) {
    for (const PartitionExtent& e : extents)
        if (e.offset > image_size || e.size > image_size - e.offset)
            return Error(EBADMSG) << "GPT partition " << e.partno << " (bytes " << e.offset
                                  << "+" << e.size << ") extends beyond the end of the image ("
                                  << image_size << " bytes)";
    auto by_offset = [](const PartitionExtent& a, const PartitionExtent& b) {
        return a.offset < b.offset;
    };
    std::sort(extents.begin(), extents.end(), by_offset);
    for (size_t i = 1; i < extents.size(); i++) {
        const PartitionExtent& prev = extents[i - 1];
        const PartitionExtent& cur = extents[i];
        if (prev.size != 0 && cur.size != 0 && cur.offset < prev.offset + prev.size)
            return Error(EBADMSG) << "GPT partitions " << prev.partno << " and " << cur.partno
                                  << " overlap";
    }
    return {};
}

Result<ImageLayout> probe_image(int fd) {
    struct stat sb;
    if (::fstat(fd, &sb) < 0) return ErrnoError() << "fstat image";

    ImageLayout layout;
    auto size = image_size(fd, sb);
    if (!size) return size.error();
    layout.size = *size;
    if (layout.size == 0) return Error(ENOMEDIUM) << "image is empty";

    auto ssz = sector_size(fd, sb);
    if (!ssz) return ssz.error();
    layout.sector_size = *ssz;

    errno = 0;
    BlkidProbe pr = new_probe(fd, 0, 0);
    if (!pr) return Error(errno ? errno : ENOMEM) << "cannot set up blkid probe";
    if (blkid_probe_set_sectorsize(pr.get(), layout.sector_size) != 0)
        return Error(EIO) << "cannot set blkid sector size";
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
    blkid_probe_enable_partitions(pr.get(), 1);
    blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_ENTRY_DETAILS);

    errno = 0;
    int r = blkid_do_safeprobe(pr.get());
    if (r == 1) return Error(ENOMEDIUM) << "no file system or partition table recognised";
    if (r == -2)
        return Error(EUCLEAN) << "ambiguous content: more than one file system or partition "
                                 "table signature found";
    if (r < 0) return Error(errno ? errno : EIO) << "probing image failed";

    std::string fstype = lookup(pr.get(), "TYPE");
    std::string usage = lookup(pr.get(), "USAGE");
    std::string pttype = lookup(pr.get(), "PTTYPE");

    // A file system signature wins over a partition table, as in systemd:
    // some file systems (vfat) look like an MBR too.
    if (usage == "filesystem" || (!fstype.empty() && pttype.empty())) {
        if (!fstype_allowed(fstype)) return not_allowed("", fstype);
        layout.kind = ImageLayoutKind::FileSystem;
        ImagePartition p;
        p.role = PartitionRole::Root;
        p.fstype = fstype;
        p.offset = 0;
        p.size = layout.size;
        layout.root = std::move(p);
        return layout;
    }

    if (pttype == "gpt") {
        layout.kind = ImageLayoutKind::Gpt;
        RDEXT_TRY(read_gpt(fd, pr.get(), layout));
        return layout;
    }
    // blkid falls back to the protective MBR when neither the primary nor
    // the backup GPT header is valid (typically a truncated image).
    if (pttype == "PMBR")
        return Error(EBADMSG) << "protective MBR found but no valid GPT: the partition table is "
                                 "damaged or the image is truncated";
    if (pttype == "dos")
        return Error(EPROTONOSUPPORT) << "MBR partition tables are not supported, only GPT";
    if (!pttype.empty())
        return Error(EPROTONOSUPPORT) << "partition table type '" << pttype
                                      << "' is not supported, only GPT";
    return Error(ENOMEDIUM) << "no file system or partition table recognised";
}

}  // namespace rdext
