#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

namespace rdext {
namespace {

Result<UniqueFd> openat2_fd(int dir_fd, const std::string& path, int flags, mode_t mode,
                            uint64_t resolve) {
    struct open_how how = {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    for (;;) {
        long fd = ::syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof(how));
        if (fd >= 0) return UniqueFd(static_cast<int>(fd));
        // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
        if (errno != EAGAIN && errno != EINTR) return ErrnoError() << path;
    }
}

const char* file_type_name(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a file";
}

}  // namespace

Result<UniqueFd> open_regular_in_root(int root_fd, const std::string& path, bool nofollow) {
    auto where = open_in_root(root_fd, path, O_PATH | (nofollow ? O_NOFOLLOW : 0));
    if (!where) return where.error();
    auto st = stat_fd(where->get());
    if (!st) return st.error();
    if (!S_ISREG(st->st_mode))
        return Error(EBADFD) << path << ": not a regular file (" << file_type_name(st->st_mode) << ")";
    auto fd = open_path(proc_fd_path(where->get()), O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd) return fd.error().prefix(path + ": ");
    return fd;
}

Result<UniqueFd> open_in_root(int root_fd, const std::string& path, int flags, mode_t mode) {
    std::string rel = path.empty() ? "." : path;
    return openat2_fd(root_fd, rel, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

Result<UniqueFd> open_in_root_nofollow(int root_fd, const std::string& path, int flags) {
    return open_in_root(root_fd, path, flags | O_NOFOLLOW);
}

Result<UniqueFd> open_in_root_no_symlinks(int root_fd, const std::string& path, int flags) {
    return openat2_fd(root_fd, path.empty() ? "." : path, flags, 0,
                      RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS);
}

Result<DirEntryRef> locate_in_root(int root_fd, std::string path, int fd) {
    auto want = stat_fd(fd);
    if (!want) return want.error();
    for (int hops = 0; hops < 40; hops++) {
        const auto slash = path.rfind('/');
        DirEntryRef ref;
        ref.name = slash == std::string::npos ? path : path.substr(slash + 1);
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        auto dfd = open_in_root(root_fd, dir, O_PATH | O_DIRECTORY);
        if (!dfd) return dfd.error();
        struct stat st;
        if (::fstatat(dfd->get(), ref.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return ErrnoError() << ref.name;
        if (!S_ISLNK(st.st_mode)) {
            if (st.st_dev != want->st_dev || st.st_ino != want->st_ino)
                return Error(ESTALE) << ref.name << " is no longer the file that was opened";
            ref.dir = std::move(*dfd);
            return ref;
        }
        char target[4096];
        ssize_t n = ::readlinkat(dfd->get(), ref.name.c_str(), target, sizeof(target) - 1);
        if (n < 0) return ErrnoError() << "readlink " << ref.name;
        std::string t(target, static_cast<size_t>(n));
        path = t.front() == '/' ? t : dir + "/" + t;
    }
    return Error(ELOOP) << path;
}

Result<UniqueFd> open_path(const std::string& path, int flags, mode_t mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return ErrnoError() << path;
    return UniqueFd(fd);
}

Result<struct stat> stat_fd(int fd) {
    struct stat st;
    if (::fstat(fd, &st) < 0) return ErrnoError() << "fstat";
    return st;
}

Result<bool> is_mount_root(int fd) {
    struct statx self = {}, parent = {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &self) < 0)
        return ErrnoError() << "statx";
    if (::statx(fd, "..", AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &parent) < 0)
        return ErrnoError() << "statx ..";
    if (!(self.stx_mask & STATX_MNT_ID)) return Error(ENOTSUP) << "statx gives no mount id";
    // The root of the whole namespace is its own parent.
    if (self.stx_ino == parent.stx_ino && self.stx_dev_major == parent.stx_dev_major &&
        self.stx_dev_minor == parent.stx_dev_minor)
        return true;
    return self.stx_mnt_id != parent.stx_mnt_id;
}

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Result<std::string> fd_path(int fd) {
    char buf[4096];
    std::string link = proc_fd_path(fd);
    ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
    if (n < 0) return ErrnoError() << "readlink " << link;
    return std::string(buf, static_cast<size_t>(n));
}

Result<std::string> read_regular_file(int fd, size_t max) {
    auto st = stat_fd(fd);
    if (!st) return st.error();
    if (!S_ISREG(st->st_mode)) return Error(EBADFD) << "not a regular file";
    if (static_cast<size_t>(st->st_size) > max)
        return Error(E2BIG) << "file is " << st->st_size << " bytes, limit is " << max;
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            return ErrnoError() << "read";
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        // The size can grow after fstat (a file being written, /proc files).
        if (out.size() > max) return Error(E2BIG) << "file exceeds " << max << " bytes";
    }
    return out;
}

Result<std::string> read_exact_at(int fd, uint64_t offset, size_t size, const std::string& what) {
    std::string buf(size, '\0');
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, buf.data() + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError() << "read " << what;
        if (n == 0) return Error(EIO) << what << " is truncated";
        done += static_cast<size_t>(n);
    }
    return buf;
}

Result<std::vector<std::string>> list_directory(int dir_fd, size_t max_entries, bool* truncated) {
    // fdopendir takes ownership, so hand it a fresh fd of the same directory.
    int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError() << "open directory";
    DIR* d = ::fdopendir(fd);
    if (!d) {
        int e = errno;
        ::close(fd);
        return Error::sys(e) << "fdopendir";
    }
    std::vector<std::string> names;
    if (truncated) *truncated = false;
    for (;;) {
        errno = 0;
        struct dirent* de = ::readdir(d);
        if (!de) break;
        std::string n = de->d_name;
        if (n == "." || n == "..") continue;
        if (names.size() == max_entries) {
            if (truncated) *truncated = true;
            break;
        }
        names.push_back(std::move(n));
    }
    int e = errno;
    ::closedir(d);
    if (e != 0) return Error::sys(e) << "readdir";
    std::sort(names.begin(), names.end());
    return names;
}

namespace {

Result<void> write_all(int fd, const std::string& content, const std::string& what) {
    size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd, content.data() + off, content.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ErrnoError() << "write " << what;
        }
        off += static_cast<size_t>(n);
    }
    return {};
}

}  // namespace

Result<void> write_file(int dir_fd, const std::string& name, const std::string& content, mode_t mode) {
    int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return ErrnoError() << "create " << name;
    UniqueFd guard(fd);
    return write_all(fd, content, name);
}

Result<void> write_file_atomic(int dir_fd, const std::string& name, const std::string& content,
                               mode_t mode) {
    std::string tmp = "." + name + ".tmp";
    // Whatever is left at the temporary name (a crashed run's file, or a
    // FIFO or device planted there, whose open for writing would block or
    // reach a device) goes first; O_EXCL then only ever opens a new file.
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    int fd = ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return ErrnoError() << "create " << tmp;
    UniqueFd guard(fd);
    if (auto w = write_all(fd, content, tmp); !w) {
        ::unlinkat(dir_fd, tmp.c_str(), 0);
        return w.error();
    }
    guard.reset();
    if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) < 0) {
        int e = errno;
        ::unlinkat(dir_fd, tmp.c_str(), 0);
        return Error::sys(e) << "rename " << tmp << " to " << name;
    }
    return {};
}

Result<void> make_dir(int dir_fd, const std::string& name, mode_t mode) {
    if (::mkdirat(dir_fd, name.c_str(), mode) < 0 && errno != EEXIST)
        return ErrnoError() << "mkdir " << name;
    return {};
}

Result<UniqueFd> make_dirs(int dir_fd, const std::string& rel, mode_t mode) {
    int cur = ::openat(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return ErrnoError() << "open directory";
    UniqueFd fd(cur);
    for (const auto& part : split(rel, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") return Error(EINVAL) << "'..' in " << rel;
        auto r = make_dir(fd.get(), part, mode);
        if (!r) return r.error();
        int next = ::openat(fd.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) return ErrnoError() << "open " << part;
        fd.reset(next);
    }
    return fd;
}

bool path_is_absolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t pos = s.find(sep, start);
        if (pos == std::string::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); i++) {
        if (i) out += sep;
        out += parts[i];
    }
    return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace rdext
