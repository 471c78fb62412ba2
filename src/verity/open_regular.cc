#include "verity/open_regular.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fs.h"

namespace rdext {

Result<UniqueFd> open_regular_beneath(int dir_fd, const std::string& name) {
    // O_PATH first: it opens nothing, so a device node's driver is never
    // called; only a regular file is then reopened for reading.
    struct open_how how = {};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    UniqueFd fd;
    for (;;) {
        long r = ::syscall(SYS_openat2, dir_fd, name.c_str(), &how, sizeof(how));
        if (r >= 0) {
            fd.reset(static_cast<int>(r));
            break;
        }
        if (errno == EXDEV) return Error(EXDEV) << "symlink points outside the directory";
        if (errno != EAGAIN && errno != EINTR) return ErrnoError() << "open";
    }
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return ErrnoError() << "fstat";
    if (!S_ISREG(st.st_mode)) return Error(EBADFD) << "not a regular file";
    return open_path(proc_fd_path(fd.get()), O_RDONLY | O_NONBLOCK | O_NOCTTY);
}

}  // namespace rdext
