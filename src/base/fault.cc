#include "base/fault.h"

#ifdef RDEXT_FAULT_INJECTION

#include <cstdlib>
#include <map>
#include <string>

#include "base/log.h"

namespace rdext {

Result<void> fault_point(const char* name) {
    static std::map<std::string, int> hits;
    int n = ++hits[name];
    // RDEXT_FAULT_TRACE=1 lists every point passed, so a test can enumerate them.
    if (const char* trace = std::getenv("RDEXT_FAULT_TRACE"); trace && *trace == '1')
        log_notice() << "fault point " << name << ":" << n;
    const char* spec = std::getenv("RDEXT_FAULT");
    if (!spec) return {};
    std::string s = spec;
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.substr(0, colon) != name) return {};
    if (std::atoi(s.c_str() + colon + 1) != n) return {};
    return Error(EIO) << "injected fault at " << name << ":" << n;
}

}  // namespace rdext

#endif
