#include "merge/mutable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {
namespace {

constexpr const char* kMutableDir = "/var/lib/extensions.mutable";

struct PersistentDir {
    bool exists = false;
    bool links_to_hierarchy = false;
    UniqueFd fd;          // O_PATH of the directory (when it exists and is not the link)
    UniqueFd parent_fd;   // where the work directory goes (beside the upper)
    UniqueFd link_target; // a link's target directory elsewhere in the root (import only)
    std::string refused;  // non-empty: exists but is not used as the upper layer, and why
};

bool same_inode(int a, int b) {
    auto sa = stat_fd(a);
    auto sb = stat_fd(b);
    return sa && sb && sa->st_dev == sb->st_dev && sa->st_ino == sb->st_ino;
}

// extensions.mutable/<h>: absent, a directory, or a link to the hierarchy
// itself (then the hierarchy is its own upper layer). Everything is
// resolved inside the root; a link anywhere else (even inside the root) is
// refused as the upper layer, since its target would take the writes and
// its parent the work directory. The import modes read its target as
// systemd-sysext does: a read-only layer of the root's own files.
Result<PersistentDir> find_persistent(int root_fd, int current_fd, const std::string& hname) {
    PersistentDir d;
    auto parent = open_in_root(root_fd, kMutableDir, O_PATH | O_DIRECTORY);
    if (!parent) return parent.error().code() == ENOENT ? Result<PersistentDir>(std::move(d)) : parent.error();
    int e = ::openat(parent->get(), hname.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (e < 0) {
        if (errno == ENOENT) return d;
        return ErrnoError() << kMutableDir << "/" << hname;
    }
    UniqueFd entry(e);
    d.exists = true;
    auto est = stat_fd(entry.get());
    if (!est) return est.error();
    if (S_ISDIR(est->st_mode)) {
        d.fd = std::move(entry);
        d.parent_fd = std::move(*parent);
    } else if (!S_ISLNK(est->st_mode)) {
        d.refused = "is not a directory";
    } else if (auto target = open_in_root(root_fd, std::string(kMutableDir) + "/" + hname, O_PATH | O_DIRECTORY);
               target && same_inode(target->get(), current_fd)) {
        d.links_to_hierarchy = true;
    } else {
        d.refused = "is a symlink that does not lead to /" + hname;
        if (target) d.link_target = std::move(*target);
    }
    return d;
}

Result<void> take_owner_and_mode(int dir_fd, const struct stat& from) {
    std::string p = proc_fd_path(dir_fd);
    if (::chown(p.c_str(), from.st_uid, from.st_gid) < 0) return ErrnoError() << "chown upper layer";
    if (::chmod(p.c_str(), from.st_mode & 07777) < 0) return ErrnoError() << "chmod upper layer";
    return {};
}

// `.systemd-<h>-workdir` in parent_fd (beside the upper), as systemd-sysext
// names it; created and opened through the fd, so no name is re-walked.
Result<UniqueFd> make_work_dir(int parent_fd, const std::string& hname) {
    const std::string name = ".systemd-" + hname + "-workdir";
    RDEXT_TRY(make_dir(parent_fd, name, 0700));
    return open_in_root_nofollow(parent_fd, name, O_PATH | O_DIRECTORY);
}

// "yes" creates extensions.mutable/<h> (and the directories above it,
// none of them through a symlink).
Result<void> create_persistent(int root_fd, const std::string& hname, const struct stat& base_st,
                               PersistentDir& d) {
    auto parent = make_dirs(root_fd, std::string(kMutableDir).substr(1), 0755);
    if (!parent) return parent.error().prefix(std::string(kMutableDir) + ": ");
    RDEXT_TRY(make_dir(parent->get(), hname, 0755));
    auto dir = open_in_root_nofollow(parent->get(), hname, O_PATH | O_DIRECTORY);
    if (!dir) return dir.error().prefix(std::string(kMutableDir) + "/");
    d.fd = std::move(*dir);
    d.parent_fd = std::move(*parent);
    return take_owner_and_mode(d.fd.get(), base_st);
}

// As systemd-sysext, "yes" and "auto" take an existing directory only with
// the hierarchy's permission bits: the merged tree shows the upper
// directory's, and they must not change under the user.
Result<void> check_mode(int dir_fd, const struct stat& base_st, const std::string& hname) {
    auto st = stat_fd(dir_fd);
    if (!st) return st.error();
    const mode_t have = st->st_mode & 0777, want = base_st.st_mode & 0777;
    if (have == want) return {};
    char buf[64];
    std::snprintf(buf, sizeof buf, " has mode %04o, the hierarchy %04o", unsigned(have), unsigned(want));
    return Error(EINVAL) << kMutableDir << "/" << hname << buf;
}

// Another fd of the same directory, the caller keeping its own.
Result<UniqueFd> same_dir(int fd) { return open_path(proc_fd_path(fd), O_PATH | O_DIRECTORY); }

}  // namespace

Result<MutableLayers> mutable_layers(int root_fd, int current_fd, Staging& staging, ImageClass cls,
                                     const std::string& hierarchy, int base_fd, MutableMode mode) {
    MutableLayers out;
    if (mode == MutableMode::No) return out;
    const std::string hname = hierarchy_dir_name(hierarchy);
    auto dir = find_persistent(root_fd, current_fd, hname);
    if (!dir) return dir.error();
    auto base_st = stat_fd(base_fd);
    if (!base_st) return base_st.error();

    const bool imports = mode == MutableMode::Import || mode == MutableMode::EphemeralImport;
    const bool ephemeral = mode == MutableMode::Ephemeral || mode == MutableMode::EphemeralImport;
    // The hierarchy as a layer below itself: systemd-sysext refuses the merge.
    if (imports && dir->links_to_hierarchy)
        return Error(ELOOP) << kMutableDir << "/" << hname << " points to the hierarchy itself, which cannot be imported";
    if ((mode == MutableMode::Yes || mode == MutableMode::Auto) && dir->fd)
        RDEXT_TRY(check_mode(dir->fd.get(), *base_st, hname));
    const int import_fd = dir->fd ? dir->fd.get() : dir->link_target.get();
    if (!dir->refused.empty() && (imports ? import_fd < 0 : !ephemeral))
        log_warning() << kMutableDir << "/" << hname << " " << dir->refused << ": not used, " << hierarchy
                      << (imports ? " gets no import layer" : " is merged read-only");
    if (imports && import_fd >= 0) {
        auto d = same_dir(import_fd);
        if (!d) return d.error();
        out.import_dir = std::move(*d);
    }
    if (ephemeral) {
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
    if (mode == MutableMode::Import || !dir->refused.empty()) return out;
    if (mode == MutableMode::Auto && !dir->exists) return out;
    if (dir->links_to_hierarchy) {
        out.upper_is_base = true;
        auto d = same_dir(base_fd);
        if (!d) return d.error();
        out.upper = std::move(*d);
        // The work directory goes beside the hierarchy, in its parent (the
        // root, for /usr, /opt and /etc).
        auto parent = open_in_root(root_fd, hierarchy.substr(0, hierarchy.rfind('/')), O_PATH | O_DIRECTORY);
        if (!parent) return parent.error();
        dir->parent_fd = std::move(*parent);
    } else {
        if (!dir->fd) RDEXT_TRY(create_persistent(root_fd, hname, *base_st, *dir));
        out.upper = std::move(dir->fd);
    }
    auto work = make_work_dir(dir->parent_fd.get(), hname);
    if (!work) return work.error().prefix("work directory for " + hierarchy + ": ");
    out.work = std::move(*work);
    out.work_for_meta = out.upper_is_base ? "/.systemd-" + hname + "-workdir"
                                          : std::string(kMutableDir) + "/.systemd-" + hname + "-workdir";
    return out;
}

}  // namespace rdext
