#include "release/extension_release.h"

#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "release/release_utf8.h"

namespace rdext {
namespace {

constexpr std::string_view kReleasePrefix = "extension-release.";
constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY;  // a FIFO must not block us

bool has_control_char(const std::string& s) {
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if ((u > 0 && u < ' ') || u == 127) return true;
    }
    return false;
}

// systemd's parse_boolean(), false side: only a definite "false" relaxes the
// name check; anything else (absent, "1", garbage) keeps it strict.
bool is_false_boolean(const std::string& v) {
    if (v == "0") return true;
    for (const char* word : {"no", "n", "false", "f", "off"})
        if (strcasecmp(v.c_str(), word) == 0) return true;
    return false;
}

// Whether the author marked this release file as usable under another image
// name (xattr user.extension-release.strict=false).
bool strict_name_check_disabled(int fd) {
    char buf[64];
    ssize_t n = ::fgetxattr(fd, "user.extension-release.strict", buf, sizeof(buf));
    if (n < 0) return false;  // absent, unsupported, or too long to be a boolean
    std::string value(buf, static_cast<size_t>(n));
    // One trailing NUL is tolerated (tools often store C strings); an
    // embedded one makes the value unparsable, as in systemd.
    if (!value.empty() && value.back() == '\0') value.pop_back();
    if (value.find('\0') != std::string::npos) return false;
    return is_false_boolean(value);
}

// Opens what `path_fd` (O_PATH) refers to for reading if it is a regular
// file; nullopt if not. A device node is never opened: opening one can act
// (start a watchdog, rewind a tape), and a tree read where it lies (a
// versioned directory's entry) is not on a nodev mount that would refuse it.
Result<std::optional<UniqueFd>> reopen_if_regular(const UniqueFd& path_fd) {
    auto st = stat_fd(path_fd.get());
    if (!st) return st.error();
    if (!S_ISREG(st->st_mode)) return std::optional<UniqueFd>();
    auto fd = open_path(proc_fd_path(path_fd.get()), kReadFlags);
    if (!fd) return fd.error();
    return std::optional<UniqueFd>(std::move(*fd));
}

// Opens a fallback candidate: regular files only, never through a symlink
// (systemd skips those in the fallback; only the exact name may be a link).
Result<std::optional<UniqueFd>> open_candidate(int dir_fd, const std::string& entry) {
    int fd = ::openat(dir_fd, entry.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoError() << "open " << entry;
    return reopen_if_regular(UniqueFd(fd));
}

struct Fallback {
    UniqueFd fd;
    std::string entry;
};

// The image file name may have been changed on deployment (a version or
// boot counter appended), so without the exact file one other release file
// is accepted: one named after the image's base name, or one whose author
// allowed any name. Two such files make the choice ambiguous: refuse.
Result<Fallback> find_fallback(int image_root_fd, const std::string& dir, const std::string& name) {
    auto missing = [&] { return Error(ENOENT) << "no extension-release." << name << " in /" << dir; };
    auto dir_fd = open_in_root(image_root_fd, dir, O_PATH | O_DIRECTORY);
    if (!dir_fd) return dir_fd.error().code() == ENOENT ? missing() : dir_fd.error();
    auto entries = list_directory(dir_fd->get());
    if (!entries) return entries.error().prefix("listing /" + dir + ": ");

    std::string base = image_base_name(name);
    std::optional<Fallback> found;
    for (const auto& entry : *entries) {
        if (!starts_with(entry, std::string(kReleasePrefix))) continue;
        std::string suffix = entry.substr(kReleasePrefix.size());
        if (!image_name_is_valid(suffix)) continue;
        auto fd = open_candidate(dir_fd->get(), entry);
        if (!fd) return fd.error().prefix("/" + dir + ": ");
        if (!*fd) continue;
        // An invalid base name matches nothing, even a non-strict file.
        if (base.empty()) continue;
        if (suffix != base && !strict_name_check_disabled((*fd)->get())) continue;
        if (found)
            return Error(ENOTUNIQ) << "ambiguous release files for image " << name << ": both /" << dir
                                   << "/" << found->entry << " and " << entry << " could belong to it";
        found = Fallback{std::move(**fd), entry};
    }
    if (!found) return missing();
    return std::move(*found);
}

}  // namespace

bool image_name_is_valid(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.size() > NAME_MAX) return false;
    if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) return false;
    if (has_control_char(name) || !utf8_is_valid(name)) return false;
    return !starts_with(name, ".#");  // temporary files of atomic writers
}

std::string image_base_name(const std::string& name) {
    std::string base = name;
    for (const char* suffix : {".sysext.raw", ".confext.raw", ".raw"}) {
        if (ends_with(base, suffix)) {
            base.resize(base.size() - std::string_view(suffix).size());
            break;
        }
    }
    base.resize(std::min(base.size(), base.find_first_of("_+")));
    return image_name_is_valid(base) ? base : std::string();
}

Result<ReleaseFields> read_extension_release(int image_root_fd, ImageClass cls, const std::string& name) {
    if (!image_name_is_valid(name)) return Error(EINVAL) << "invalid extension name '" << name << "'";
    const std::string dir = class_info(cls).release_dir;
    const std::string exact = dir + "/" + std::string(kReleasePrefix) + name;

    auto fd = open_in_root(image_root_fd, exact, O_PATH);
    if (fd) {
        auto rd = reopen_if_regular(*fd);
        if (!rd) return rd.error().prefix("cannot open release file /" + exact + ": ");
        if (!*rd) return Error(EBADFD) << "/" << exact << " is not a regular file";
        return read_release_fd((*rd)->get(), "/" + exact);
    }
    if (fd.error().code() != ENOENT) return fd.error().prefix("cannot open release file: /");

    auto fallback = find_fallback(image_root_fd, dir, name);
    if (!fallback) return fallback.error();
    return read_release_fd(fallback->fd.get(), "/" + dir + "/" + fallback->entry);
}

namespace {

std::string entry_kind(const struct stat& st) {
    switch (st.st_mode & S_IFMT) {
        case S_IFLNK: return "a symbolic link";
        case S_IFIFO: return "a FIFO";
        case S_IFDIR: return "a directory";
        case S_IFSOCK: return "a socket";
        case S_IFBLK: return "a device node";
        case S_IFCHR: return st.st_rdev == 0 ? "a whiteout" : "a device node";
        default: return "a file";
    }
}

// The overlayfs xattr on a directory that makes the layer hide or replace
// what the layers below have there, in either namespace overlayfs reads
// (trusted., or user. with userxattr); "" when it has none.
std::string hiding_xattr(int dir_fd) {
    for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque", "trusted.overlay.redirect",
                             "user.overlay.redirect"}) {
        char value[1];
        if (::fgetxattr(dir_fd, name, value, sizeof(value)) >= 0 || (errno != ENODATA && errno != ENOTSUP))
            return name;
    }
    return "";
}

// Walks `path` (components below the image root) without following
// anything: see os_release_conflict.
std::string conflict_on_path(int image_root_fd, const std::vector<std::string>& path) {
    const std::string full = join(path, "/");
    UniqueFd dir;
    int parent = image_root_fd;
    std::string rel;
    for (size_t i = 0; i < path.size(); i++) {
        rel += (i ? "/" : "") + path[i];
        struct stat st;
        if (::fstatat(parent, path[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
            return errno == ENOENT ? "" : rel + " cannot be inspected (" + std::strerror(errno) + ")";
        if (i + 1 == path.size())
            return "ships " + rel + " (" + entry_kind(st) + "), which would replace the OS's identity";
        if (!S_ISDIR(st.st_mode))
            return rel + " is " + entry_kind(st) + ", which would hide the OS's " + full;
        int fd = ::openat(parent, path[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return rel + " cannot be inspected (" + std::strerror(errno) + ")";
        dir.reset(fd);
        parent = fd;
        if (auto x = hiding_xattr(fd); !x.empty()) return rel + " carries " + x + ", which would hide the OS's " + full;
    }
    return "";
}

}  // namespace

std::string os_release_conflict(int image_root_fd, ImageClass cls) {
    if (cls == ImageClass::Sysext) return conflict_on_path(image_root_fd, {"usr", "lib", "os-release"});
    if (auto why = conflict_on_path(image_root_fd, {"etc", "os-release"}); !why.empty()) return why;
    // systemd refuses usr/lib/os-release in a confext too, though /usr is not its to merge.
    auto fd = open_in_root_nofollow(image_root_fd, "/usr/lib/os-release", O_PATH);
    if (fd || fd.error().code() != ENOENT) return "ships usr/lib/os-release, which would replace the OS's identity";
    return "";
}

}  // namespace rdext
