#include "mount/mount_api.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace rdext {
namespace {

// The kernel queues human-readable messages ("e overlay: ...") on the fs
// context; they say far more than the errno alone.
std::string drain_fs_log(int fs_fd) {
    std::string out;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(fs_fd, buf, sizeof(buf) - 1);
        if (n <= 0) break;
        std::string line(buf, static_cast<size_t>(n));
        if (line.size() > 2 && line[1] == ' ') line = line.substr(2);
        // Some drivers (squashfs) end their message with a newline.
        while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
        if (!out.empty()) out += "; ";
        out += line;
    }
    return out;
}

Error fs_error(int err, int fs_fd, const std::string& what) {
    std::string log = drain_fs_log(fs_fd);
    Error e = Error::sys(err);
    e << what;
    if (!log.empty()) e << " (" << log << ")";
    return e;
}

}  // namespace

Result<UniqueFd> mount_detached(const std::string& fstype, const std::vector<FsParam>& params,
                                uint64_t mount_attrs) {
    int fs = ::fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
    if (fs < 0) return ErrnoError() << "fsopen " << fstype;
    UniqueFd fs_fd(fs);
    for (const auto& p : params) {
        int r = p.is_flag ? ::fsconfig(fs, FSCONFIG_SET_FLAG, p.key.c_str(), nullptr, 0)
                          : ::fsconfig(fs, FSCONFIG_SET_STRING, p.key.c_str(), p.value.c_str(), 0);
        if (r < 0) return fs_error(errno, fs, fstype + " option " + p.key + (p.is_flag ? "" : "=" + p.value));
    }
    if (::fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0)
        return fs_error(errno, fs, "creating " + fstype + " file system");
    int mnt = ::fsmount(fs, FSMOUNT_CLOEXEC, static_cast<unsigned>(mount_attrs));
    if (mnt < 0) return fs_error(errno, fs, "fsmount " + fstype);
    return UniqueFd(mnt);
}

Result<UniqueFd> clone_tree(int fd) {
    int m = ::open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (m < 0) return ErrnoError() << "open_tree";
    return UniqueFd(m);
}

Result<void> set_mount_attrs(int mount_fd, uint64_t attrs) {
    struct mount_attr a = {};
    a.attr_set = attrs;
    if (::mount_setattr(mount_fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return ErrnoError() << "mount_setattr";
    return {};
}

Result<void> attach_mount(int mount_fd, int target_fd) {
    if (::move_mount(mount_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return ErrnoError() << "move_mount";
    return {};
}

uint64_t mount_attrs_from_flags(unsigned long ms_flags) {
    uint64_t a = 0;
    if (ms_flags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
    if (ms_flags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
    if (ms_flags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
    if (ms_flags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
    return a;
}

Result<void> detach_mount_of(int fd) {
    std::string p = proc_fd_path(fd);
    if (::umount2(p.c_str(), MNT_DETACH) < 0) return ErrnoError() << "umount";
    return {};
}

}  // namespace rdext
