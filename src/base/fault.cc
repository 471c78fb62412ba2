#include "base/fault.h"

#ifdef RDEXT_FAULT_INJECTION

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "base/log.h"

namespace rdext {
namespace {

// Whether `spec` ("NAME:N", followed by nothing or by `,` and more) names
// this pass.
bool spec_matches(const std::string& spec, const char* name, int n) {
    std::string s = spec.substr(0, spec.find(','));
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.substr(0, colon) != name) return false;
    return std::atoi(s.c_str() + colon + 1) == n;
}

// RDEXT_FAULT_PAUSE=NAME:N,FILE: announce the pause by creating FILE, then
// wait for the test to remove it (bounded, so a broken test cannot hang a
// boot-like run forever).
void pause_here(const std::string& spec, const char* name, int n) {
    auto comma = spec.find(',');
    if (comma == std::string::npos) return;
    std::string file = spec.substr(comma + 1);
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ::close(fd);
    log_notice() << "paused at fault point " << name << ":" << n << " until " << file << " is removed";
    for (int i = 0; i < 6000 && ::access(file.c_str(), F_OK) == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        ::nanosleep(&ts, nullptr);
    }
}

}  // namespace

bool fault_injection_active() {
    for (const char* v : {"RDEXT_FAULT", "RDEXT_FAULT_TRACE", "RDEXT_FAULT_PAUSE"})
        if (const char* s = std::getenv(v); s && *s) return true;
    return false;
}

Result<void> fault_point(const char* name) {
    static std::mutex lock;
    static std::map<std::string, int> hits;
    int n;
    {
        std::lock_guard<std::mutex> hold(lock);
        n = ++hits[name];
    }
    // RDEXT_FAULT_TRACE=1 lists every point passed, so a test can enumerate them.
    if (const char* trace = std::getenv("RDEXT_FAULT_TRACE"); trace && *trace == '1')
        log_notice() << "fault point " << name << ":" << n;
    if (const char* pause = std::getenv("RDEXT_FAULT_PAUSE"); pause && spec_matches(pause, name, n))
        pause_here(pause, name, n);
    const char* spec = std::getenv("RDEXT_FAULT");
    if (!spec || !spec_matches(spec, name, n)) return {};
    return Error(EIO) << "injected fault at " << name << ":" << n;
}

}  // namespace rdext

#endif
