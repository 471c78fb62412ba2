#include "merge/mutable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fs.h"

namespace rdext {
namespace {

constexpr const char* kMutableDir = "/var/lib/extensions.mutable";

struct PersistentDir {
    bool exists = false;
    bool links_to_hierarchy = false;
    UniqueFd fd;  // O_PATH of the directory (when it exists and is not the link)
};

// extensions.mutable/<h>: absent, a directory, or a link to the hierarchy
// itself (then the hierarchy is its own upper layer).
Result<PersistentDir> find_persistent(int root_fd, int current_fd, const std::string& rel) {
    PersistentDir d;
    auto entry = open_in_root_nofollow(root_fd, rel, O_PATH);
    if (!entry) {
        if (entry.error().code() == ENOENT) return d;
        return entry.error();
    }
    d.exists = true;
    auto dir = open_in_root(root_fd, rel, O_PATH | O_DIRECTORY);
    if (!dir) return dir.error().prefix(rel + ": ");
    auto st = stat_fd(dir->get());
    auto cur = stat_fd(current_fd);
    if (!st || !cur) return Error(EIO) << "cannot inspect " << rel;
    auto est = stat_fd(entry->get());
    if (est && S_ISLNK(est->st_mode) && st->st_dev == cur->st_dev && st->st_ino == cur->st_ino) {
        d.links_to_hierarchy = true;
        return d;
    }
    d.fd = std::move(*dir);
    return d;
}

Result<void> take_owner_and_mode(int dir_fd, const struct stat& from) {
    std::string p = proc_fd_path(dir_fd);
    if (::chown(p.c_str(), from.st_uid, from.st_gid) < 0) return ErrnoError() << "chown upper layer";
    if (::chmod(p.c_str(), from.st_mode & 07777) < 0) return ErrnoError() << "chmod upper layer";
    return {};
}

// `<parent of upper>/.systemd-<h>-workdir`, as systemd-sysext names it.
// The parent is the upper's own, on its mount (overlayfs wants both on
// one), reached from the upper's fd rather than by its name.
Result<UniqueFd> make_work_dir(int upper_fd, const std::string& hname) {
    struct open_how how = {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS;
    long parent = ::syscall(SYS_openat2, upper_fd, "..", &how, sizeof(how));
    if (parent < 0) return ErrnoError() << "parent of the upper directory";
    UniqueFd pfd(static_cast<int>(parent));
    const std::string name = ".systemd-" + hname + "-workdir";
    RDEXT_TRY(make_dir(pfd.get(), name, 0700));
    return open_in_root_nofollow(pfd.get(), name, O_PATH | O_DIRECTORY);
}

// Another fd of the same directory, the caller keeping its own.
Result<UniqueFd> same_dir(int fd) { return open_path(proc_fd_path(fd), O_PATH | O_DIRECTORY); }

}  // namespace

Result<MutableMode> parse_mutable_mode(std::string_view t) {
    if (t == "no" || t == "0" || t == "false" || t == "off") return MutableMode::No;
    if (t == "yes" || t == "1" || t == "true" || t == "on") return MutableMode::Yes;
    if (t == "auto") return MutableMode::Auto;
    if (t == "import") return MutableMode::Import;
    if (t == "ephemeral") return MutableMode::Ephemeral;
    if (t == "ephemeral-import") return MutableMode::EphemeralImport;
    return Error(EINVAL) << "unknown mutable mode '" << std::string(t)
                         << "' (no, auto, yes, import, ephemeral, ephemeral-import)";
}

const char* mutable_mode_name(MutableMode m) {
    switch (m) {
        case MutableMode::No: return "no";
        case MutableMode::Auto: return "auto";
        case MutableMode::Yes: return "yes";
        case MutableMode::Import: return "import";
        case MutableMode::Ephemeral: return "ephemeral";
        case MutableMode::EphemeralImport: return "ephemeral-import";
    }
    return "no";
}

Result<MutableLayers> mutable_layers(int root_fd, int current_fd, Staging& staging, ImageClass cls,
                                     const std::string& hierarchy, int base_fd, MutableMode mode) {
    MutableLayers out;
    if (mode == MutableMode::No) return out;
    const std::string hname = hierarchy.substr(1);
    const std::string rel = std::string(kMutableDir) + "/" + hname;
    auto dir = find_persistent(root_fd, current_fd, rel);
    if (!dir) return dir.error();
    auto base_st = stat_fd(base_fd);
    if (!base_st) return base_st.error();

    const bool imports = mode == MutableMode::Import || mode == MutableMode::EphemeralImport;
    if (imports && dir->fd) {
        auto d = same_dir(dir->fd.get());
        if (!d) return d.error();
        out.import_dir = std::move(*d);
    }
    if (mode == MutableMode::Ephemeral || mode == MutableMode::EphemeralImport) {
        // A tmpfs directory in the staging area: the overlay keeps it alive,
        // and it goes when the merge does.
        auto upper = staging.make_slot(std::string("upper-") + class_name(cls) + "-" + hname);
        if (!upper) return upper.error();
        RDEXT_TRY(take_owner_and_mode(upper->get(), *base_st));
        auto work = staging.make_slot("work-" + std::string(class_name(cls)) + "-" + hname);
        if (!work) return work.error();
        out.upper = std::move(*upper);
        out.work = std::move(*work);
        return out;
    }
    if (mode == MutableMode::Import) return out;
    if (mode == MutableMode::Auto && !dir->exists) return out;
    if (dir->links_to_hierarchy) {
        out.upper_is_base = true;
        auto d = same_dir(base_fd);
        if (!d) return d.error();
        out.upper = std::move(*d);
    } else {
        if (!dir->fd) {  // "yes" creates it
            auto made = make_dirs(root_fd, rel.substr(1), 0755);
            if (!made) return made.error().prefix(rel + ": ");
            RDEXT_TRY(take_owner_and_mode(made->get(), *base_st));
            dir->fd = std::move(*made);
        }
        out.upper = std::move(dir->fd);
    }
    auto work = make_work_dir(out.upper.get(), hname);
    if (!work) return work.error().prefix("work directory for " + hierarchy + ": ");
    out.work = std::move(*work);
    out.work_for_meta = out.upper_is_base ? "/.systemd-" + hname + "-workdir"
                                          : std::string(kMutableDir) + "/.systemd-" + hname + "-workdir";
    return out;
}

}  // namespace rdext
