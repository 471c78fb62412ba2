#include "base/parallel.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

#include "base/fault.h"

namespace rdext {
namespace {

// The CPUs this process may run on (an initrd or a container may be given
// fewer than the machine has).
size_t usable_cpus() {
    cpu_set_t set;
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

size_t parallel_threads(size_t count, size_t max_threads) {
    if (count < 2 || fault_injection_active()) return 1;
    return std::max<size_t>(1, std::min({count, max_threads, usable_cpus()}));
}

void raise_fd_limit() {
    struct rlimit lim = {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

void reserve_fds(size_t more) {
    int probe = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);  // the lowest free descriptor
    if (probe < 0) probe = ::open("/", O_PATH | O_CLOEXEC);
    if (probe < 0) return;
    struct rlimit lim = {};
    size_t want = static_cast<size_t>(probe) + more;
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && want >= lim.rlim_cur)
        want = lim.rlim_cur - 1;
    // A descriptor that high makes the kernel size the table for it now.
    int high = ::fcntl(probe, F_DUPFD_CLOEXEC, static_cast<int>(want));
    if (high >= 0) ::close(high);
    ::close(probe);
}

void for_each_parallel(size_t count, const std::function<void(size_t)>& work, size_t max_threads) {
    const size_t threads = parallel_threads(count, max_threads);
    if (threads == 1) {
        for (size_t i = 0; i < count; i++) work(i);
        return;
    }
    // Items are handed out one at a time: their costs differ (a squashfs
    // mount costs four erofs mounts), so fixed shares would leave a thread
    // idle while the other works through the expensive ones.
    std::atomic<size_t> next{0};
    auto drain = [&] {
        for (size_t i; (i = next.fetch_add(1)) < count;) work(i);
    };
    std::vector<std::thread> helpers;
    for (size_t t = 1; t < threads; t++) {
        try {
            helpers.emplace_back(drain);
        } catch (const std::system_error&) {
            break;  // no thread to be had: fewer helpers, same result
        }
    }
    drain();
    for (auto& h : helpers) h.join();
}

}  // namespace rdext
