#include "merge/sysext_origin.h"

#include <endian.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "base/fs.h"

// Newer than the build's headers (Linux 6.5 and 6.12).
#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200
#endif
#ifndef AT_HANDLE_MNT_ID_UNIQUE
#define AT_HANDLE_MNT_ID_UNIQUE 0x001
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x1000U
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U
#endif

namespace rdext {
namespace {

constexpr uint64_t kUsecPerSec = 1000000;

// The path of what fd refers to, inside the root whose own path is `root`.
std::string inside_root(const std::string& path, const std::string& root) {
    if (root == "/") return path;
    if (path == root) return "/";
    if (starts_with(path, root + "/")) return path.substr(root.size());
    return path;  // elsewhere: systemd keeps such a path whole too
}

std::string root_self(int root_fd) {
    auto p = fd_path(root_fd);
    return p ? *p : std::string("/");
}

struct Handle {
    int type = 0;
    std::string hex;
};

std::string to_hex(const unsigned char* b, size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; i++) {
        out += digits[b[i] >> 4];
        out += digits[b[i] & 15];
    }
    return out;
}

// name_to_handle_at as systemd asks it: an identifying handle (FID) and the
// unique mount id where the kernel has them, older forms where not.
std::optional<Handle> file_handle(int fd, uint64_t* mount_id) {
    struct {
        struct file_handle fh;
        unsigned char bytes[MAX_HANDLE_SZ];
    } buf;
    const int tries[] = {AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE, AT_HANDLE_FID, 0};
    for (int extra : tries) {
        buf.fh.handle_bytes = MAX_HANDLE_SZ;
        uint64_t id = 0;  // an int's worth unless AT_HANDLE_MNT_ID_UNIQUE
        if (::name_to_handle_at(fd, "", &buf.fh, reinterpret_cast<int*>(&id), AT_EMPTY_PATH | extra) == 0) {
            if (!(extra & AT_HANDLE_MNT_ID_UNIQUE)) id = static_cast<uint32_t>(id);
            *mount_id = id;
            return Handle{buf.fh.handle_type, to_hex(buf.fh.f_handle, buf.fh.handle_bytes)};
        }
        if (errno != EINVAL) break;  // the file system has no handles: not a flag this kernel lacks
    }
    return std::nullopt;
}

uint64_t statx_mount_id(const struct statx& sx) {
    return (sx.stx_mask & (STATX_MNT_ID_UNIQUE | STATX_MNT_ID)) ? sx.stx_mnt_id : 0;
}

// systemd's crtime: the birth time, or the user.crtime_usec xattr it
// writes where there is none, the earlier of the two; 0 when neither.
uint64_t crtime_usec(int fd, const struct statx& sx) {
    std::optional<uint64_t> best;
    if ((sx.stx_mask & STATX_BTIME) && sx.stx_btime.tv_sec != 0)
        best = uint64_t(sx.stx_btime.tv_sec) * kUsecPerSec + sx.stx_btime.tv_nsec / 1000;
    uint64_t le = 0;
    if (::getxattr(proc_fd_path(fd).c_str(), "user.crtime_usec", &le, sizeof(le)) == sizeof(le)) {
        uint64_t x = le64toh(le);
        best = best ? std::min(*best, x) : x;
    }
    return best.value_or(0);
}

// {"path", "onMountId", "fileHandle"|"inode", "crtime", "mtime"}: what
// systemd's image discovery records of an image without a root hash.
json_object* weak_identity(json_object* e, int fd) {
    struct statx sx = {};
    const unsigned mask = STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID_UNIQUE;
    if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, mask, &sx) < 0) return e;
    uint64_t mount_id = statx_mount_id(sx);
    auto handle = file_handle(fd, &mount_id);
    json_object_object_add(e, "onMountId", json_object_new_uint64(mount_id));
    if (handle) {
        json_object* h = json_object_new_object();
        json_object_object_add(h, "type", json_object_new_int(handle->type));
        json_object_object_add(h, "handle", json_object_new_string(handle->hex.c_str()));
        json_object_object_add(e, "fileHandle", h);
    } else {
        json_object_object_add(e, "inode", json_object_new_uint64(sx.stx_ino));
    }
    // A block device has neither time; a directory's mtime says nothing
    // about its tree, so systemd leaves it 0 too.
    const bool block = S_ISBLK(sx.stx_mode);
    const uint64_t mtime = S_ISREG(sx.stx_mode) ? uint64_t(sx.stx_mtime.tv_sec) * kUsecPerSec + sx.stx_mtime.tv_nsec / 1000 : 0;
    json_object_object_add(e, "crtime", json_object_new_uint64(block ? 0 : crtime_usec(fd, sx)));
    json_object_object_add(e, "mtime", json_object_new_uint64(mtime));
    return e;
}

json_object* image_entry(int root_fd, const OriginImage& img) {
    json_object* e = json_object_new_object();
    json_object_object_add(e, "path", json_object_new_string(img.path.c_str()));
    if (!img.verity_hash.empty()) {
        json_object_object_add(e, "verityHash", json_object_new_string(img.verity_hash.c_str()));
        return e;
    }
    auto fd = open_in_root(root_fd, img.path, O_PATH);
    if (!fd) return e;  // gone since: systemd cannot match it either, a refresh rebuilds
    return weak_identity(e, fd->get());
}

// "/usr" -> "usr", "/var/lib/foo" -> "var.lib.foo", as systemd names the
// hierarchy's mutable directory.
std::string single_component(const std::string& hierarchy) {
    std::string s = hierarchy.substr(hierarchy.find_first_not_of('/'));
    while (!s.empty() && s.back() == '/') s.pop_back();
    std::replace(s.begin(), s.end(), '/', '.');
    return s;
}

json_object* mutable_object(int root_fd, const std::string& root, ImageClass cls, MutableMode mode) {
    json_object* m = json_object_new_object();
    json_object_object_add(m, "mode", json_object_new_string(mutable_mode_name(mode)));
    if (mode == MutableMode::No) return m;
    json_object* dirs = json_object_new_object();
    for (const auto& h : class_info(cls).hierarchies) {
        const std::string comp = single_component(h);
        // systemd's ephemeral directories live in its private workspace.
        if (mode == MutableMode::Ephemeral || mode == MutableMode::EphemeralImport) {
            json_object_object_add(dirs, h.c_str(), json_object_new_string(("/run/systemd/sysext/" + comp).c_str()));
            continue;
        }
        auto fd = open_in_root(root_fd, "/var/lib/extensions.mutable/" + comp, O_PATH);
        auto path = fd ? fd_path(fd->get()) : Result<std::string>(fd.error());
        if (path) json_object_object_add(dirs, h.c_str(), json_object_new_string(inside_root(*path, root).c_str()));
    }
    if (json_object_object_length(dirs) > 0)
        json_object_object_add(m, "mutableDirs", dirs);
    else
        json_object_put(dirs);
    return m;
}

}  // namespace

std::string systemd_image_path(int root_fd, const std::string& path, const std::string& versioned_dir) {
    const std::string& top = versioned_dir.empty() ? path : versioned_dir;
    const auto slash = top.rfind('/');
    if (slash == std::string::npos) return path;
    auto dir = open_in_root(root_fd, slash == 0 ? "/" : top.substr(0, slash), O_PATH | O_DIRECTORY);
    auto resolved = dir ? fd_path(dir->get()) : Result<std::string>(dir.error());
    if (!resolved) return path;
    std::string out = inside_root(*resolved, root_self(root_fd));
    if (out.back() != '/') out += '/';
    out += top.substr(slash + 1);
    if (!versioned_dir.empty()) out += path.substr(path.rfind('/'));
    return out;
}

std::string systemd_origin_json(int root_fd, ImageClass cls, MutableMode mode, const std::vector<OriginImage>& images) {
    const std::string root = root_self(root_fd);
    json_object* o = json_object_new_object();
    json_object_object_add(o, "mutable", mutable_object(root_fd, root, cls, mode));
    // No "mountOptions": rdext does not take systemd's
    // SYSTEMD_*_OVERLAYFS_MOUNT_OPTIONS, so the object systemd computes
    // has none either unless that is set for it (then it rebuilds).
    if (!images.empty()) {
        json_object* exts = json_object_new_object();
        for (const auto& img : images) json_object_object_add(exts, img.name.c_str(), image_entry(root_fd, img));
        json_object_object_add(o, "extensions", exts);
    }
    std::string out = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB | JSON_C_TO_STRING_NOSLASHESCAPE);
    json_object_put(o);
    return out + "\n";
}

}  // namespace rdext
