// probe_image() on real images built with the usual tools (mkfs.erofs,
// mksquashfs, mkfs.ext4, sfdisk, dd) in a temporary directory. No root
// needed: blkid reads plain files. The loop device cases at the end run
// only as root.
#include "image/probe.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/fd.h"
#include "image/loop.h"
#include "prerequisite.h"

using namespace rdext;

namespace {

constexpr const char* kToolPath = "PATH=\"$PATH:/usr/sbin:/sbin\" ";
constexpr uint64_t MiB = 1024 * 1024;

int sh(const std::string& cmd) { return std::system((kToolPath + cmd).c_str()); }

bool have_tool(const char* name) {
    return sh(std::string("command -v ") + name + " >/dev/null 2>&1") == 0;
}

bool have_tools() {
    for (const char* t : {"mkfs.erofs", "mksquashfs", "mke2fs", "mkswap", "sfdisk", "fdisk", "dd",
                          "truncate"})
        if (!have_tool(t)) return test::can_run(false, std::string(t) + " is not installed");
    return true;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/rdext-probe-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

void write_file(const std::string& path, const std::string& content) {
    std::ofstream f(path, std::ios::binary);
    f << content;
}

// A minimal sysext tree.
std::string make_tree(const TempDir& d) {
    std::string tree = d / "tree";
    std::filesystem::create_directories(tree + "/usr/lib/extension-release.d");
    std::filesystem::create_directories(tree + "/usr/bin");
    write_file(tree + "/usr/lib/extension-release.d/extension-release.test", "ID=_any\n");
    write_file(tree + "/usr/bin/hello", "#!/bin/sh\necho hello\n");
    return tree;
}

void run(const std::string& cmd) {
    INFO(cmd);
    REQUIRE(sh(cmd + " >/dev/null 2>&1") == 0);
}

std::string make_erofs(const TempDir& d, const std::string& name) {
    std::string img = d / name;
    run("mkfs.erofs '" + img + "' '" + make_tree(d) + "'");
    return img;
}

std::string make_squashfs(const TempDir& d, const std::string& name) {
    std::string img = d / name;
    run("mksquashfs '" + make_tree(d) + "' '" + img + "' -noappend -quiet");
    return img;
}

std::string make_ext(const TempDir& d, const std::string& name, const char* type) {
    std::string img = d / name;
    run(std::string("mke2fs -q -F -t ") + type + " -d '" + make_tree(d) + "' '" + img + "' 4M");
    return img;
}

uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

struct Part {
    uint64_t start;  // in sectors
    uint64_t size;   // in sectors
    std::string type;
    std::string name;
    std::string attrs;
    std::string contents;  // file copied into the partition, may be empty
};

std::string make_gpt(const TempDir& d, const std::string& name, uint64_t bytes,
                     const std::vector<Part>& parts) {
    std::string img = d / name;
    run("truncate -s " + std::to_string(bytes) + " '" + img + "'");
    std::string script = "label: gpt\n";
    for (const Part& p : parts) {
        script += "start=" + std::to_string(p.start) + ", size=" + std::to_string(p.size) +
                  ", type=" + p.type;
        if (!p.name.empty()) script += ", name=\"" + p.name + "\"";
        if (!p.attrs.empty()) script += ", attrs=\"" + p.attrs + "\"";
        script += "\n";
    }
    write_file(d / "layout", script);
    run("sfdisk -q '" + img + "' < '" + (d / "layout") + "'");
    for (const Part& p : parts)
        if (!p.contents.empty())
            run("dd if='" + p.contents + "' of='" + img + "' bs=512 seek=" +
                std::to_string(p.start) + " conv=notrunc status=none");
    return img;
}

// One partition in a GPT for 4096-byte sectors (this sfdisk has no
// --sector-size; fdisk -b does it).
std::string make_gpt_4k(const TempDir& d, const std::string& name, uint64_t bytes, const Part& p) {
    std::string img = d / name;
    run("truncate -s " + std::to_string(bytes) + " '" + img + "'");
    write_file(d / "fdisk-script", "g\nn\n1\n" + std::to_string(p.start) + "\n+" +
                                       std::to_string(p.size - 1) + "\nt\n" + p.type + "\nw\n");
    run("fdisk -b 4096 '" + img + "' < '" + (d / "fdisk-script") + "'");
    run("dd if='" + p.contents + "' of='" + img + "' bs=4096 seek=" + std::to_string(p.start) +
        " conv=notrunc status=none");
    return img;
}

Result<ImageLayout> probe_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    UniqueFd guard(fd);
    return probe_image(fd);
}

std::string error_of(const Result<ImageLayout>& r) {
    REQUIRE_FALSE(r.has_value());
    return r.error().what();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

const GptTypeSet& T = native_gpt_types();
constexpr const char* kLinuxGeneric = "0fc63daf-8483-4772-8e79-3d69d8477de4";
constexpr const char* kEsp = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
// A root partition type of an architecture that is not ours.
#if defined(__x86_64__)
constexpr const char* kForeignRoot = "b921b045-1df0-41c3-af44-4c6f280d3fae";  // arm64
#else
constexpr const char* kForeignRoot = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";  // x86-64
#endif

// Rewrites one entry's first/last LBA in the primary GPT (512-byte sectors)
// and fixes both CRCs: sfdisk refuses to write overlapping partitions.
uint32_t crc32(const unsigned char* p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

void patch_gpt_entry(const std::string& img, unsigned index, uint64_t first, uint64_t last) {
    std::fstream f(img, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    std::vector<unsigned char> hdr(512);
    f.seekg(512);
    f.read(reinterpret_cast<char*>(hdr.data()), 512);
    uint64_t entries_lba;
    uint32_t n_entries, entry_size, header_size;
    std::memcpy(&header_size, &hdr[12], 4);
    std::memcpy(&entries_lba, &hdr[72], 8);
    std::memcpy(&n_entries, &hdr[80], 4);
    std::memcpy(&entry_size, &hdr[84], 4);
    std::vector<unsigned char> ents(size_t{n_entries} * entry_size);
    f.seekg(static_cast<std::streamoff>(entries_lba * 512));
    f.read(reinterpret_cast<char*>(ents.data()), static_cast<std::streamsize>(ents.size()));
    std::memcpy(&ents[index * entry_size + 32], &first, 8);
    std::memcpy(&ents[index * entry_size + 40], &last, 8);
    uint32_t ecrc = crc32(ents.data(), ents.size());
    std::memcpy(&hdr[88], &ecrc, 4);
    std::memset(&hdr[16], 0, 4);
    uint32_t hcrc = crc32(hdr.data(), header_size);
    std::memcpy(&hdr[16], &hcrc, 4);
    f.seekp(static_cast<std::streamoff>(entries_lba * 512));
    f.write(reinterpret_cast<const char*>(ents.data()), static_cast<std::streamsize>(ents.size()));
    f.seekp(512);
    f.write(reinterpret_cast<const char*>(hdr.data()), 512);
    REQUIRE(f);
}

}  // namespace

TEST_CASE("probe: allowed file system types") {
    for (const char* t : {"erofs", "squashfs", "ext4", "btrfs", "xfs", "f2fs", "vfat"}) {
        CAPTURE(t);
        CHECK(fstype_allowed(t));
    }
    for (const char* t : {"", "ext2", "ext3", "swap", "crypto_LUKS", "ntfs", "iso9660", "EROFS"}) {
        CAPTURE(t);
        CHECK_FALSE(fstype_allowed(t));
    }
}

#if defined(__x86_64__)
TEST_CASE("probe: x86-64 partition types from the Discoverable Partitions Specification") {
    CHECK(std::string(T.arch) == "x86-64");
    CHECK(std::string(T.root) == "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    CHECK(std::string(T.usr) == "8484680c-9521-48c6-9c11-b0720656f69e");
    CHECK(std::string(T.root_verity) == "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5");
    CHECK(std::string(T.usr_verity) == "77ff5f63-e7b6-4633-acf4-1565b864c0e6");
    CHECK(std::string(T.root_verity_sig) == "41092b05-9fc8-4523-994f-2def0408b176");
    CHECK(std::string(T.usr_verity_sig) == "e7bb33fb-06cf-4e81-8273-e543b413e2e2");
}
#endif

TEST_CASE("probe: partition extents") {
    CHECK(check_partition_extents({}, 0).has_value());
    CHECK(check_partition_extents({{1, 1 * MiB, 1 * MiB}, {2, 2 * MiB, 1 * MiB}}, 4 * MiB)
              .has_value());
    // Unsorted input, touching ends.
    CHECK(check_partition_extents({{2, 2 * MiB, 2 * MiB}, {1, 0, 2 * MiB}}, 4 * MiB).has_value());

    auto beyond = check_partition_extents({{3, 3 * MiB, 2 * MiB}}, 4 * MiB);
    REQUIRE_FALSE(beyond.has_value());
    CHECK(contains(beyond.error().what(), "partition 3"));
    CHECK(contains(beyond.error().what(), "beyond the end"));

    auto wrap = check_partition_extents({{1, UINT64_MAX - 10, 100}}, 4 * MiB);
    CHECK_FALSE(wrap.has_value());

    auto overlap = check_partition_extents({{1, 1 * MiB, 2 * MiB}, {2, 2 * MiB, 1 * MiB}}, 4 * MiB);
    REQUIRE_FALSE(overlap.has_value());
    CHECK(contains(overlap.error().what(), "partitions 1 and 2 overlap"));
}

TEST_CASE("probe: bare file systems") {
    if (!have_tools()) return;
    TempDir d;

    SUBCASE("erofs") {
        std::string img = make_erofs(d, "a.raw");
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->kind == ImageLayoutKind::FileSystem);
        REQUIRE(r->root.has_value());
        CHECK(r->root->fstype == "erofs");
        CHECK(r->root->offset == 0);
        CHECK(r->root->size == file_size(img));
        CHECK(r->size == file_size(img));
        CHECK_FALSE(r->usr.has_value());
        CHECK_FALSE(r->root_verity.has_value());
    }
    SUBCASE("squashfs") {
        auto r = probe_path(make_squashfs(d, "a.raw"));
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->kind == ImageLayoutKind::FileSystem);
        CHECK(r->root->fstype == "squashfs");
    }
    SUBCASE("ext4") {
        auto r = probe_path(make_ext(d, "a.raw", "ext4"));
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->root->fstype == "ext4");
        CHECK(r->root->size == 4 * MiB);
    }
    SUBCASE("the name does not matter") {
        std::string img = make_erofs(d, "not-an-image.txt");
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->root->fstype == "erofs");
    }
}

TEST_CASE("probe: refused content") {
    if (!have_tools()) return;
    TempDir d;

    SUBCASE("empty file") {
        write_file(d / "empty.raw", "");
        CHECK(contains(error_of(probe_path(d / "empty.raw")), "image is empty"));
    }
    SUBCASE("zeros") {
        run("truncate -s 4M '" + (d / "zero.raw") + "'");
        CHECK(contains(error_of(probe_path(d / "zero.raw")),
                       "no file system or partition table recognised"));
    }
    SUBCASE("text") {
        std::string text;
        for (int i = 0; i < 2000; i++) text += "this is not a file system image\n";
        write_file(d / "text.raw", text);
        CHECK(contains(error_of(probe_path(d / "text.raw")),
                       "no file system or partition table recognised"));
    }
    SUBCASE("pseudo-random bytes") {
        std::string junk(1 * MiB, '\0');
        uint32_t x = 0x12345678;
        for (char& c : junk) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            c = static_cast<char>(x);
        }
        write_file(d / "junk.raw", junk);
        CHECK(contains(error_of(probe_path(d / "junk.raw")),
                       "no file system or partition table recognised"));
    }
    SUBCASE("truncated file system") {
        std::string img = make_erofs(d, "a.raw");
        std::filesystem::resize_file(img, 512);  // the erofs superblock is at 1024
        CHECK(contains(error_of(probe_path(img)), "no file system or partition table recognised"));
    }
    SUBCASE("file system type not in the allow list") {
        std::string e = error_of(probe_path(make_ext(d, "a.raw", "ext2")));
        CHECK(contains(e, "file system type 'ext2' is not allowed"));
    }
    SUBCASE("swap") {
        run("truncate -s 4M '" + (d / "swap.raw") + "' && mkswap '" + (d / "swap.raw") + "'");
        CHECK(contains(error_of(probe_path(d / "swap.raw")), "'swap' is not allowed"));
    }
    SUBCASE("a directory") {
        int fd = ::open(d.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        UniqueFd guard(fd);
        auto r = probe_image(fd);
        CHECK_FALSE(r.has_value());
    }
}

TEST_CASE("probe: GPT disk images") {
    if (!have_tools()) return;
    TempDir d;
    std::string erofs = make_erofs(d, "fs.erofs");
    std::string squash = make_squashfs(d, "fs.squashfs");

    SUBCASE("usr partition only") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 4096, T.usr, "test_1", "", erofs}});
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->kind == ImageLayoutKind::Gpt);
        CHECK(r->size == 8 * MiB);
        CHECK(r->sector_size == 512);
        CHECK(r->table_uuid.size() == 36);
        CHECK_FALSE(r->root.has_value());
        REQUIRE(r->usr.has_value());
        CHECK(r->usr->role == PartitionRole::Usr);
        CHECK(r->usr->fstype == "erofs");
        CHECK(r->usr->offset == 2048 * 512);
        CHECK(r->usr->size == 4096 * 512);
        CHECK(r->usr->partno == 1);
        CHECK(r->usr->label == "test_1");
        CHECK(r->usr->uuid.size() == 36);
        CHECK(r->usr->uuid.find_first_of("ABCDEF") == std::string::npos);
    }
    SUBCASE("root, usr, verity and unrelated partitions") {
        std::string img = make_gpt(d, "ddi.raw", 16 * MiB,
                                   {{2048, 2048, kEsp, "esp", "", ""},
                                    {4096, 4096, T.root, "root", "", squash},
                                    {8192, 2048, T.root_verity, "root-verity", "", ""},
                                    {10240, 2048, T.usr, "usr", "", erofs},
                                    {12288, 1024, T.usr_verity, "", "", ""},
                                    {13312, 256, T.root_verity_sig, "", "", ""},
                                    {13568, 256, T.usr_verity_sig, "", "", ""},
                                    {13824, 2048, kLinuxGeneric, "data", "", ""}});
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        REQUIRE(r->root.has_value());
        REQUIRE(r->usr.has_value());
        CHECK(r->root->fstype == "squashfs");
        CHECK(r->root->offset == 4096 * 512);
        CHECK(r->root->partno == 2);
        CHECK(r->usr->fstype == "erofs");
        CHECK(r->usr->partno == 4);
        REQUIRE(r->root_verity.has_value());
        CHECK(r->root_verity->offset == 8192 * 512);
        CHECK(r->root_verity->size == 2048 * 512);
        CHECK(r->root_verity->role == PartitionRole::RootVerity);
        CHECK(r->root_verity->fstype.empty());
        REQUIRE(r->usr_verity.has_value());
        CHECK(r->usr_verity->partno == 5);
        REQUIRE(r->root_verity_sig.has_value());
        CHECK(r->root_verity_sig->offset == 13312 * 512);
        REQUIRE(r->usr_verity_sig.has_value());
        CHECK(r->usr_verity_sig->size == 256 * 512);
    }
    SUBCASE("4096-byte sectors") {
        std::string img = make_gpt_4k(d, "ddi.raw", 16 * MiB, {256, 1024, T.usr, "", "", erofs});
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK(r->sector_size == 4096);
        REQUIRE(r->usr.has_value());
        CHECK(r->usr->offset == 256 * 4096);
        CHECK(r->usr->size == 1024 * 4096);
        CHECK(r->usr->fstype == "erofs");
    }
    SUBCASE("the newest label wins among several root partitions") {
        std::string img = make_gpt(d, "ddi.raw", 16 * MiB,
                                   {{2048, 2048, T.root, "foo_1", "", erofs},
                                    {4096, 2048, T.root, "foo_10", "", squash},
                                    {6144, 2048, T.root, "foo_2", "", erofs}});
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        REQUIRE(r->root.has_value());
        CHECK(r->root->label == "foo_10");
        CHECK(r->root->partno == 2);
        CHECK(r->root->fstype == "squashfs");
    }
    SUBCASE("partitions marked no-auto are skipped") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 2048, T.root, "", "GUID:63", erofs},
                                    {4096, 2048, T.usr, "", "", erofs}});
        auto r = probe_path(img);
        REQUIRE_MESSAGE(r.has_value(), r.error().what());
        CHECK_FALSE(r->root.has_value());
        REQUIRE(r->usr.has_value());
        CHECK(r->usr->partno == 2);
    }
}

TEST_CASE("probe: refused GPT images") {
    if (!have_tools()) return;
    TempDir d;
    std::string erofs = make_erofs(d, "fs.erofs");
    std::string no_part = std::string("GPT image has no root or usr partition for ") + T.arch;

    SUBCASE("only unrelated partitions") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 4096, kLinuxGeneric, "", "", erofs}});
        CHECK(contains(error_of(probe_path(img)), no_part));
    }
    SUBCASE("root partition of another architecture") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 4096, kForeignRoot, "", "", erofs}});
        CHECK(contains(error_of(probe_path(img)), no_part));
    }
    SUBCASE("only verity partitions") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 2048, T.root_verity, "", "", ""},
                                    {4096, 256, T.root_verity_sig, "", "", ""}});
        CHECK(contains(error_of(probe_path(img)), no_part));
    }
    SUBCASE("every root/usr partition is no-auto") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 4096, T.usr, "", "GUID:63", erofs}});
        CHECK(contains(error_of(probe_path(img)), no_part));
    }
    SUBCASE("partition without a file system") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB, {{2048, 4096, T.usr, "", "", ""}});
        CHECK(contains(error_of(probe_path(img)), "partition 1 (usr): no file system recognised"));
    }
    SUBCASE("partition with a file system not in the allow list") {
        std::string ext2 = make_ext(d, "fs.ext2", "ext2");
        std::string img = make_gpt(d, "ddi.raw", 16 * MiB, {{2048, 8192, T.root, "", "", ext2}});
        CHECK(contains(error_of(probe_path(img)),
                       "partition 1 (root): file system type 'ext2' is not allowed"));
    }
    SUBCASE("one good partition does not excuse a bad one") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 2048, T.root, "", "", erofs},
                                    {4096, 2048, T.usr, "", "", ""}});
        CHECK(contains(error_of(probe_path(img)), "partition 2 (usr)"));
    }
    SUBCASE("truncated image: only the protective MBR is left") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB, {{2048, 4096, T.usr, "", "", erofs}});
        std::filesystem::resize_file(img, 4 * MiB);
        std::string e = error_of(probe_path(img));
        CHECK(contains(e, "protective MBR"));
        CHECK(contains(e, "truncated"));
    }
    SUBCASE("overlapping partitions") {
        std::string img = make_gpt(d, "ddi.raw", 8 * MiB,
                                   {{2048, 2048, T.usr, "", "", erofs},
                                    {8192, 2048, kLinuxGeneric, "", "", ""}});
        patch_gpt_entry(img, 1, 3072, 5119);  // into the usr partition
        CHECK(contains(error_of(probe_path(img)), "partitions 1 and 2 overlap"));
    }
    SUBCASE("MBR partition table") {
        run("truncate -s 8M '" + (d / "mbr.raw") + "'");
        write_file(d / "layout", "label: dos\nstart=2048, size=4096, type=83\n");
        run("sfdisk -q '" + (d / "mbr.raw") + "' < '" + (d / "layout") + "'");
        CHECK(contains(error_of(probe_path(d / "mbr.raw")), "only GPT"));
    }
}

// --- Loop devices (root only) -------------------------------------------

namespace {

bool can_use_loop() {
    return test::can_run(::geteuid() == 0 && ::access("/dev/loop-control", R_OK | W_OK) == 0,
                         "loop devices need root and /dev/loop-control");
}

uint64_t blockdev_size(int fd) {
    uint64_t size = 0;
    REQUIRE(::ioctl(fd, BLKGETSIZE64, &size) == 0);
    return size;
}

bool loop_bound(const std::string& path) {
    // /sys/block/loopN/loop exists only while a backing file is attached.
    std::string name = path.substr(path.rfind('/') + 1);
    return std::filesystem::exists("/sys/block/" + name + "/loop");
}

}  // namespace

TEST_CASE("loop: attach a GPT partition and probe through the device") {
    if (!have_tools() || !can_use_loop()) return;
    TempDir d;
    std::string erofs = make_erofs(d, "fs.erofs");
    std::string img = make_gpt(d, "ddi.raw", 8 * MiB, {{2048, 4096, T.usr, "", "", erofs}});
    int fd = ::open(img.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    UniqueFd backing(fd);

    SUBCASE("whole image, then the partition") {
        auto whole = LoopDevice::attach(backing.get(), 0, 0, true);
        REQUIRE_MESSAGE(whole.has_value(), whole.error().what());
        CHECK(blockdev_size(whole->fd()) == 8 * MiB);
        auto layout = probe_image(whole->fd());
        REQUIRE_MESSAGE(layout.has_value(), layout.error().what());
        REQUIRE(layout->usr.has_value());
        CHECK(layout->usr->offset == 2048 * 512);

        auto part = LoopDevice::attach(backing.get(), layout->usr->offset, layout->usr->size, true);
        REQUIRE_MESSAGE(part.has_value(), part.error().what());
        CHECK(part->path() != whole->path());
        CHECK(part->path() == "/dev/loop" + std::to_string(part->number()));
        CHECK(major(part->devnum()) == 7);
        CHECK(blockdev_size(part->fd()) == layout->usr->size);
        auto inner = probe_image(part->fd());
        REQUIRE_MESSAGE(inner.has_value(), inner.error().what());
        CHECK(inner->kind == ImageLayoutKind::FileSystem);
        CHECK(inner->root->fstype == "erofs");
        // Read-only.
        int ro = 0;
        CHECK(::ioctl(part->fd(), BLKROGET, &ro) == 0);
        CHECK(ro == 1);
    }
    SUBCASE("destructor detaches") {
        std::string path;
        {
            auto loop = LoopDevice::attach(backing.get(), 0, 0, false);
            REQUIRE_MESSAGE(loop.has_value(), loop.error().what());
            path = loop->path();
            CHECK(loop_bound(path));
        }
        CHECK_FALSE(loop_bound(path));
    }
    SUBCASE("move keeps one owner") {
        auto loop = LoopDevice::attach(backing.get(), 0, 0, false);
        REQUIRE_MESSAGE(loop.has_value(), loop.error().what());
        std::string path = loop->path();
        LoopDevice a = std::move(*loop);
        CHECK_FALSE(loop->valid());
        CHECK(a.valid());
        LoopDevice b;
        b = std::move(a);
        CHECK(b.path() == path);
        CHECK(loop_bound(path));
        b.detach();
        CHECK_FALSE(b.valid());
        CHECK_FALSE(loop_bound(path));
    }
    SUBCASE("relinquish leaves it to autoclear") {
        auto loop = LoopDevice::attach(backing.get(), 0, 0, false);
        REQUIRE_MESSAGE(loop.has_value(), loop.error().what());
        std::string path = loop->path();
        // A second opener stands in for a mount holding the device.
        int holder = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(holder >= 0);
        loop->relinquish();
        CHECK_FALSE(loop->valid());
        CHECK(loop_bound(path));
        ::close(holder);
        // Autoclear runs on the last close (asynchronously on newer kernels).
        for (int i = 0; i < 200 && loop_bound(path); i++) ::usleep(5000);
        CHECK_FALSE(loop_bound(path));
    }
    SUBCASE("a bad backing fd is an error") {
        auto loop = LoopDevice::attach(-1, 0, 0, false);
        CHECK_FALSE(loop.has_value());
    }
}
