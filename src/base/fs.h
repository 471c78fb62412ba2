// File system helpers. Everything on the target root is untrusted, so paths
// inside it are resolved with openat2(RESOLVE_IN_ROOT): an absolute symlink
// or ".." never leaves the root, it is resolved as if the root were "/".
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

// openat2() with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS relative to root_fd.
// `path` may be absolute ("/etc/extensions") or relative; both mean "inside
// the root". O_CLOEXEC is always added.
Result<UniqueFd> open_in_root(int root_fd, const std::string& path, int flags, mode_t mode = 0);

// Like open_in_root but refuses to follow a symlink in the last component.
Result<UniqueFd> open_in_root_nofollow(int root_fd, const std::string& path, int flags);

// Like open_in_root but follows no symlink at all (RESOLVE_NO_SYMLINKS): a
// link anywhere on the path, even one that stays inside the root, fails with
// ELOOP. For the tree's own directories: mount points (a link would move the
// mount elsewhere) and what a tool outside rdext then walks by name.
Result<UniqueFd> open_in_root_no_symlinks(int root_fd, const std::string& path, int flags);

// Opens `path` inside the root for reading if, and only if, it is a regular
// file. What the name leads to is first opened O_PATH (which opens nothing:
// a FIFO cannot block, a device's driver is never called) and checked, then
// that very inode is reopened O_RDONLY|O_NONBLOCK|O_NOCTTY through /proc.
// Anything else is EBADFD, "PATH: not a regular file (a FIFO)". With
// `nofollow`, a symlink in the last component is refused too.
Result<UniqueFd> open_regular_in_root(int root_fd, const std::string& path, bool nofollow = false);

// Where the file `path` leads to inside the root: its directory (O_PATH)
// and its name there. Symlinks in the last component are followed inside
// the root, one hop at a time; the file found must be the inode `fd`
// refers to (what discovery opened), or the result is an error.
struct DirEntryRef {
    UniqueFd dir;
    std::string name;
};
Result<DirEntryRef> locate_in_root(int root_fd, std::string path, int fd);

// Plain open of a trusted path (the root itself, /proc, /dev).
Result<UniqueFd> open_path(const std::string& path, int flags, mode_t mode = 0);

Result<struct stat> stat_fd(int fd);

// True when fd is the root of a mount (its mount differs from its parent's).
Result<bool> is_mount_root(int fd);

// The kernel's name for what an fd refers to (readlink /proc/self/fd/N).
Result<std::string> fd_path(int fd);

// "/proc/self/fd/N": lets a path-taking API reach exactly the inode we hold.
std::string proc_fd_path(int fd);

// Reads at most `max` bytes of a regular file; larger files are an error
// (E2BIG) so hostile input cannot make us allocate without bound.
Result<std::string> read_regular_file(int fd, size_t max);

// Exactly `size` bytes at `offset` of a file or device (pread; the file
// offset is not used). Errors name `what`: "read WHAT: <errno text>", or
// "WHAT is truncated" (EIO) when the data ends before.
Result<std::string> read_exact_at(int fd, uint64_t offset, size_t size, const std::string& what);

// Entry names of a directory, "." and ".." left out, sorted bytewise so
// results do not depend on on-disk order. With `max_entries`, reading stops
// after that many (in directory order) and *truncated says whether more
// were there.
Result<std::vector<std::string>> list_directory(int dir_fd, size_t max_entries = SIZE_MAX,
                                                bool* truncated = nullptr);

// Creates or truncates `name` in dir_fd and writes `content`: for files
// nobody else can see yet (a private staging area), where the temporary
// name and the rename of write_file_atomic would buy nothing.
Result<void> write_file(int dir_fd, const std::string& name, const std::string& content, mode_t mode = 0644);

// Creates or replaces `name` in dir_fd with `content` (written to a new
// file at a temporary name first, then renamed, so readers see old or new;
// an entry already at the temporary name is removed, never opened).
Result<void> write_file_atomic(int dir_fd, const std::string& name, const std::string& content,
                               mode_t mode = 0644);

// mkdirat that accepts an existing directory.
Result<void> make_dir(int dir_fd, const std::string& name, mode_t mode);

// Creates every missing component of a relative path below dir_fd and
// returns an O_PATH|O_DIRECTORY fd of the last one. Components are opened
// without following symlinks.
Result<UniqueFd> make_dirs(int dir_fd, const std::string& rel, mode_t mode);

bool path_is_absolute(const std::string& p);
std::vector<std::string> split(const std::string& s, char sep);
std::string join(const std::vector<std::string>& parts, const std::string& sep);
bool starts_with(const std::string& s, const std::string& prefix);
bool ends_with(const std::string& s, const std::string& suffix);

}  // namespace rdext
