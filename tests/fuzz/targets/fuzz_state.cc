// state.json (state_from_json): lives in /run, written by rdext itself, but
// read back by `status`, refresh and unmerge, so a truncated or tampered file
// must not crash them. A state that parses must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "state/state_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 256 * 1024) return 0;
    std::string text(reinterpret_cast<const char*>(data), size);
    auto state = rdext::state_from_json(text);
    if (!state) return 0;
    for (bool pretty : {false, true}) {
        std::string json = rdext::state_to_json(*state, pretty);
        auto again = rdext::state_from_json(json);
        FUZZ_CHECK(again.has_value());
        FUZZ_CHECK(rdext::state_to_json(*again, pretty) == json);
    }
    return 0;
}
