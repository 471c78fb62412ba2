// The kernel command line (parse_cmdline, split_cmdline): set by the boot
// loader, editable by anyone at the boot menu.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cmdline/cmdline.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const auto& word : rdext::split_cmdline(text)) {
        FUZZ_CHECK(word.size() <= size);
        rdext::parse_boolean(word);
    }
    rdext::CmdlineSettings s = rdext::parse_cmdline(text);
    for (const auto& w : s.warnings) FUZZ_CHECK(!w.empty());
    return 0;
}
