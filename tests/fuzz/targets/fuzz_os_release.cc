// os-release / extension-release text (parse_os_release): comes from inside
// extension images, i.e. from whoever built the image.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "release/os_release.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // read_release_fd() never hands the parser more than this.
    if (size > rdext::kMaxReleaseFileSize) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto fields = rdext::parse_os_release(text);
    if (!fields) return 0;
    for (const auto& [key, value] : *fields) {
        FUZZ_CHECK(!key.empty());
        FUZZ_CHECK(key.find('=') == std::string::npos);
        FUZZ_CHECK(key.find('\0') == std::string::npos && value.find('\0') == std::string::npos);
        FUZZ_CHECK(rdext::release_value(*fields, key) == value);
    }
    return 0;
}
