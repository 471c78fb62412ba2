// Shared by the fuzz targets: a failed property check aborts, so libFuzzer
// records the input as a crash (with the message on stderr).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                   \
        }                                                                                   \
    } while (0)

namespace rdext_fuzz {

// The input split at '\n' into at most `max` parts (the last keeps the rest).
inline std::vector<std::string> split_lines(std::string_view in, size_t max) {
    std::vector<std::string> parts;
    while (parts.size() + 1 < max) {
        size_t nl = in.find('\n');
        if (nl == std::string_view::npos) break;
        parts.emplace_back(in.substr(0, nl));
        in.remove_prefix(nl + 1);
    }
    parts.emplace_back(in);
    return parts;
}

}  // namespace rdext_fuzz
