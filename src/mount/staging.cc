#include "mount/staging.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>

#include "base/fault.h"
#include "base/fs.h"
#include "base/scope_guard.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

// Not std::random_device: on x86 it probes the CPU (cpuid) and uses
// rdrand, each a trap to the hypervisor in a virtual machine.
std::string random_suffix() {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char bytes[8] = {};
    if (::getrandom(bytes, sizeof(bytes), GRND_NONBLOCK) != sizeof(bytes)) {
        // Early boot before the pool is ready: unique is all a name needs
        // (mkdirat refuses an existing one and the caller tries again).
        uint64_t v = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                     static_cast<uint64_t>(::getpid()) << 40;
        for (auto& b : bytes) {
            b = static_cast<unsigned char>(v);
            v = v * 0x9e3779b97f4a7c15ull + 1;
        }
    }
    std::string s;
    for (unsigned char b : bytes) s += chars[b % (sizeof(chars) - 1)];
    return s;
}

}  // namespace

Result<Staging> Staging::create(int runtime_dir_fd) {
    RDEXT_TRY(fault_point("staging"));
    std::string name;
    for (int attempt = 0;; attempt++) {
        name = ".staging-" + random_suffix();
        if (::mkdirat(runtime_dir_fd, name.c_str(), 0700) == 0) break;
        if (errno != EEXIST || attempt > 16) return ErrnoError() << "creating staging directory";
    }
    // Undone in reverse on any failure below; both disabled once the area is ours.
    ScopeGuard remove_dir([&] { ::unlinkat(runtime_dir_fd, name.c_str(), AT_REMOVEDIR); });

    auto dir = open_in_root_nofollow(runtime_dir_fd, name, O_PATH | O_DIRECTORY);
    if (!dir) return dir.error();
    // A private tmpfs: nothing mounted in it propagates anywhere, and
    // detaching it releases everything at once.
    auto tmpfs = mount_detached("tmpfs", {{"source", "rdext-staging"}, {"mode", "0700"}},
                                MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
    if (!tmpfs) return tmpfs.error().prefix("staging tmpfs: ");
    if (auto r = attach_mount(tmpfs->get(), dir->get()); !r) return r.error().prefix("staging tmpfs: ");
    ScopeGuard detach_tmpfs([&] { ::umount2(proc_fd_path(tmpfs->get()).c_str(), MNT_DETACH); });
    RDEXT_TRY(fault_point("staging-tmpfs"));  // a failure with the tmpfs attached

    auto root = open_in_root_nofollow(runtime_dir_fd, name, O_PATH | O_DIRECTORY);
    auto path = root ? fd_path(root->get()) : Result<std::string>(root.error());
    if (!path) return path.error().prefix("staging tmpfs: ");
    int parent = ::fcntl(runtime_dir_fd, F_DUPFD_CLOEXEC, 3);
    if (parent < 0) return ErrnoError() << "dup";
    detach_tmpfs.disable();
    remove_dir.disable();
    return Staging(UniqueFd(parent), name, *path, std::move(*root));
}

Staging::Staging(Staging&& o) noexcept
    : parent_(std::move(o.parent_)), name_(std::move(o.name_)), path_(std::move(o.path_)), fd_(std::move(o.fd_)) {
    o.name_.clear();
}

Staging::~Staging() {
    if (name_.empty() || !parent_) return;
    // Detach recursively: image mounts inside go with the tmpfs. Mounts
    // still used by attached overlays live on as the overlays' clones.
    if (fd_) {
        ::umount2(proc_fd_path(fd_.get()).c_str(), MNT_DETACH);
        fd_.reset();
    }
    ::unlinkat(parent_.get(), name_.c_str(), AT_REMOVEDIR);
}

Result<UniqueFd> Staging::make_slot(const std::string& name) {
    if (::mkdirat(fd_.get(), name.c_str(), 0700) < 0) return ErrnoError() << "mkdir " << slot_path(name);
    return open_in_root_nofollow(fd_.get(), name, O_PATH | O_DIRECTORY);
}

}  // namespace rdext
