// Image probing (probe_image): libblkid's superblock and GPT parsing plus
// rdext's own checks of the partition table, over the bytes of an image
// file. Whatever layout it accepts must lie inside the image, with no two
// partitions overlapping.
//
// The input is the start of an image; it is written to a memfd that is
// then made 1 MiB (or the input's size, if larger), so that a GPT's backup
// header and partitions can lie inside or beyond it.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "image/probe.h"

namespace {

void check_inside(const rdext::ImageLayout& l, const std::optional<rdext::ImagePartition>& p) {
    if (!p) return;
    FUZZ_CHECK(p->offset <= l.size && p->size <= l.size - p->offset);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 256 * 1024) return 0;
    static int fd = ::memfd_create("fuzz-image", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(::ftruncate(fd, 0) == 0);
    FUZZ_CHECK(::pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
    FUZZ_CHECK(::ftruncate(fd, static_cast<off_t>(size < (1 << 20) ? (1 << 20) : size)) == 0);
    auto layout = rdext::probe_image(fd);
    if (!layout) return 0;
    FUZZ_CHECK(layout->root || layout->usr);
    std::vector<const rdext::ImagePartition*> parts;
    for (const auto* p : {&layout->root, &layout->usr, &layout->root_verity, &layout->usr_verity,
                          &layout->root_verity_sig, &layout->usr_verity_sig}) {
        check_inside(*layout, *p);
        if (*p) parts.push_back(&**p);
    }
    if (layout->kind == rdext::ImageLayoutKind::Gpt)
        for (size_t i = 0; i < parts.size(); i++)
            for (size_t j = i + 1; j < parts.size(); j++)
                FUZZ_CHECK(parts[i]->offset + parts[i]->size <= parts[j]->offset ||
                           parts[j]->offset + parts[j]->size <= parts[i]->offset);
    if (layout->root) FUZZ_CHECK(rdext::fstype_allowed(layout->root->fstype));
    if (layout->usr) FUZZ_CHECK(rdext::fstype_allowed(layout->usr->fstype));
    return 0;
}
