#include "merge/refresh.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "base/log.h"
#include "merge/mutable.h"
#include "mount/beneath.h"
#include "mount/mount_api.h"
#include "policy/policy_file.h"
#include "release/os_release.h"
#include "state/metadata.h"

namespace rdext {
namespace {

// The inputs of a merge, a line each. Kept as text, not hashed: a few
// hundred bytes per image cost nothing to write and compare, while
// OpenSSL's first digest of a run costs ~0.2 ms (setting up its provider),
// which the boot path has no other reason to pay.
class Inputs {
public:
    Inputs& operator<<(const std::string& s) {
        text_ += s;
        text_ += '\n';
        return *this;
    }
    std::string text() && { return std::move(text_); }

private:
    std::string text_;
};

// Neither st_dev nor st_ino: an image under /etc/extensions is seen
// through the confext overlay once /etc is merged, and an overlay gives
// each mount a device and its directories inode numbers of its own. The
// change time covers what they would: a replaced file is a new inode with
// a new ctime, and every write or rename updates it.
std::string stat_identity(const struct stat& st) {
    return std::to_string(st.st_mode) + ":" +
           std::to_string(st.st_rdev) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
           "." + std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ctim.tv_sec) + "." +
           std::to_string(st.st_ctim.tv_nsec);
}

// A directory image's own entries that a change a user makes touches: the
// top of each hierarchy the class merges (an entry added, removed or
// renamed right in usr/ changes its times), the extension-release
// directory and the image's own release file (edited in place or
// replaced). A fixed few fstatat calls per image, whatever the tree's
// size, so a merge records it too and the refresh right after it can tell
// that nothing changed. What it does not see: a change deeper in the tree
// that leaves these alone (a file added to usr/bin/, one edited in place
// in usr/share/...); --always-refresh=yes rebuilds anyway (README).
void add_directory_tops(Inputs& d, int dir_fd, ImageClass cls, const std::string& name) {
    std::vector<std::string> rels;
    for (const auto& h : class_info(cls).hierarchies) rels.push_back(h.substr(1));
    const std::string release_dir = cls == ImageClass::Confext ? "etc/extension-release.d" : "usr/lib/extension-release.d";
    rels.push_back(release_dir);
    rels.push_back(release_dir + "/extension-release." + name);
    for (const auto& rel : rels) {
        struct stat st;
        const bool there = ::fstatat(dir_fd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        d << "top " + rel + " " + (there ? stat_identity(st) : std::string("absent"));
    }
}

void add_image(Inputs& d, const std::string& path, ImageKind kind, const std::shared_ptr<UniqueFd>& fd,
               ImageClass cls, const std::string& name) {
    d << "image " + path + " " + kind_name(kind);
    if (!fd || !*fd) return;
    auto st = stat_fd(fd->get());
    if (st) d << stat_identity(*st);
    if (kind == ImageKind::Directory) add_directory_tops(d, fd->get(), cls, name);
}

void add_file(Inputs& d, int root_fd, const std::string& path) {
    auto fd = open_regular_in_root(root_fd, path);
    auto text = fd ? read_regular_file(fd->get(), 1 << 16) : Result<std::string>(fd.error());
    d << path + ":" + (text ? *text : std::string("<none>"));
}

void add_mutable_dir(Inputs& d, int root_fd, const std::string& hierarchy) {
    const std::string rel = "/var/lib/extensions.mutable/" + hierarchy_dir_name(hierarchy);
    auto fd = open_in_root_nofollow(root_fd, rel, O_PATH);
    auto st = fd ? stat_fd(fd->get()) : Result<struct stat>(fd.error());
    d << rel + " " + (st ? std::to_string(st->st_ino) + ":" + std::to_string(st->st_mode) : "absent");
}

std::string dirname_of(const std::string& p) {
    auto slash = p.rfind('/');
    return slash == 0 ? "/" : p.substr(0, slash);
}

}  // namespace

std::string inputs_fingerprint(const Target& target, const Settings& settings, ImageClass cls,
                               const std::vector<Candidate>& candidates) {
    Inputs d;
    d << "rdext inputs 3" << class_name(cls) << target.root_path;
    add_file(d, target.root_fd.get(), "/etc/os-release");
    add_file(d, target.root_fd.get(), "/usr/lib/os-release");
    for (const auto& n : settings.excluded(cls)) d << "exclude " + n;
    for (const auto& [n, v] : settings.of(cls).pin) d << "pin " + n + "=" + v;
    // A refresh with other required names is checked again, never "unchanged".
    for (const auto& n : settings.required(cls)) d << "require " + n;
    d << std::string("mutable ") + mutable_mode_name(settings.mutable_mode(cls));
    if (settings.force) d << "force";
    if (settings.noexec) d << std::string("noexec ") + (*settings.noexec ? "yes" : "no");
    for (const auto& h : class_info(cls).hierarchies) add_mutable_dir(d, target.root_fd.get(), h);
    for (const auto& c : candidates) {
        d << "entry " + c.name + " " + entry_state_name(c.state) + " " + c.reason;
        d << "policy " + resolve_policy(settings.policy, cls, c.name).policy.to_string();
        if (!c.versioned) {
            add_image(d, c.path, c.kind, c.fd, cls, c.name);
            continue;
        }
        // Every entry of a versioned directory: which one fits may change.
        for (const auto& v : c.versioned->ranked) add_image(d, v.path, v.kind, v.fd, cls, c.name);
        for (const auto& i : c.versioned->ignored) d << "ignored " + i.path;
    }
    return std::move(d).text();
}

Result<bool> class_unchanged(const Target& target, const Settings& settings, ImageClass cls) {
    auto found = discover(target.root_fd.get(), cls);
    if (!found) return found.error();
    const std::string fp = inputs_fingerprint(target, settings, cls, *found);
    std::vector<std::string> merged, recorded;
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        auto m = read_merged(fd->get(), cls);
        if (!m) return m.error();
        if (!m->merged) continue;
        auto o = read_origin(fd->get(), cls);
        if (!o) return o.error();
        if (o->inputs != fp) return false;
        recorded = o->hierarchies;
        merged.push_back(h);
    }
    if (!merged.empty()) return merged == recorded;
    // Nothing merged: unchanged only if there is nothing to merge.
    if (settings.mutable_mode(cls) != MutableMode::No) return false;
    for (const auto& c : *found)
        if (c.state == EntryState::Available && !settings.excluded(cls).count(c.name)) return false;
    return true;
}

namespace {

struct MergedHierarchyRef {
    std::string path;  // "/etc"
    ImageClass cls;
};

std::vector<MergedHierarchyRef> merged_hierarchies(const Target& target) {
    std::vector<MergedHierarchyRef> out;
    for (ImageClass cls : all_classes())
        for (const auto& h : class_info(cls).hierarchies) {
            auto fd = target.open_hierarchy(h);
            if (!fd) continue;
            auto m = read_merged(fd->get(), cls);
            if (m && m->merged) out.push_back({h, cls});
        }
    return out;
}

// The same file or directory beneath the merge on `h`: ENOENT when it is
// not the root's own; null when the hierarchy cannot be reached beneath its
// merge (a file system of its own: the refresh then unmerges first and
// discovers again, see merge.cc).
Result<std::shared_ptr<UniqueFd>> beneath(const Target& target, Staging& staging, const MergedHierarchyRef& h,
                                          const std::string& rest, const struct stat& seen) {
    auto base = stage_base(target, staging, h.cls, h.path);
    if (!base) {
        log_debug() << h.path << " beneath its merge: " << base.error().what();
        return std::shared_ptr<UniqueFd>();
    }
    auto fd = open_in_root(base->get(), rest, O_PATH);
    if (!fd) return Error(ENOENT) << "only a merged extension provides it";
    auto st = stat_fd(fd->get());
    if (!st) return st.error();
    if ((st->st_mode & S_IFMT) != (seen.st_mode & S_IFMT) || (S_ISREG(seen.st_mode) && st->st_size != seen.st_size))
        return Error(ENOENT) << "the root's own " << h.path << " holds something else there";
    return std::make_shared<UniqueFd>(std::move(*fd));
}

// Reopens one resolved entry if it lies under a merged hierarchy.
Result<void> reopen_one(const Target& target, Staging& staging, const std::vector<MergedHierarchyRef>& merged,
                        std::shared_ptr<UniqueFd>& fd) {
    if (!fd || !*fd) return {};
    auto path = fd_path(fd->get());
    auto st = stat_fd(fd->get());
    if (!path || !st) return {};
    std::string rel = *path;
    if (target.root_path != "/") {
        if (!starts_with(rel, target.root_path + "/")) return {};
        rel = rel.substr(target.root_path.size());
    }
    for (const auto& h : merged) {
        if (!starts_with(rel, h.path + "/")) continue;
        auto r = beneath(target, staging, h, rel.substr(h.path.size() + 1), *st);
        if (!r) return r.error();
        if (*r) fd = std::move(*r);
        return {};
    }
    return {};
}

}  // namespace

void reopen_beneath_merges(const Target& target, Staging& staging, std::vector<Candidate>& candidates) {
    const auto merged = merged_hierarchies(target);
    if (merged.empty()) return;
    for (auto& c : candidates) {
        if (c.state != EntryState::Available) continue;
        if (c.versioned)
            for (auto& v : c.versioned->ranked)
                if (auto r = reopen_one(target, staging, merged, v.fd); !r)
                    log_debug() << v.path << ": " << r.error().what();
        if (auto r = reopen_one(target, staging, merged, c.fd); !r) {
            c.state = EntryState::Broken;
            c.reason = "reached through the current merge: " + r.error().what();
            c.fd.reset();
        }
    }
}

Result<UniqueFd> stage_base(const Target& target, Staging& staging, ImageClass cls, const std::string& hierarchy) {
    const std::string slot = std::string("base-") + class_name(cls) + "-" + hierarchy.substr(1);
    const std::string name = hierarchy.substr(hierarchy.rfind('/') + 1);
    // The hierarchy in the copy, never through a symlink (the root may
    // have swapped one in since it was checked).
    auto open_base = [&](int copy_fd) -> Result<UniqueFd> {
        auto fd = open_in_root_nofollow(copy_fd, name, O_PATH | O_DIRECTORY);
        if (!fd) return fd.error().prefix("the root's own " + hierarchy + ": ");
        return fd;
    };
    // Already there (the module index of /usr asked first).
    if (auto done = open_in_root_nofollow(staging.fd(), slot, O_PATH | O_DIRECTORY); done) return open_base(done->get());
    auto self = open_in_root_nofollow(target.root_fd.get(), hierarchy, O_PATH | O_DIRECTORY);
    if (!self) return Error(ENOTSUP) << hierarchy << " is not a plain directory of the root";
    auto top = target.open_hierarchy(hierarchy);
    if (!top) return top.error();
    auto parent = open_in_root(target.root_fd.get(), dirname_of(hierarchy), O_PATH | O_DIRECTORY);
    if (!parent) return parent.error();
    auto top_id = mount_id_of(top->get());
    auto parent_id = mount_id_of(parent->get());
    if (!top_id || !parent_id) return Error(ENOTSUP) << "no mount ids";
    auto below = parent_mount_id(*top_id);
    if (!below) return below.error();
    if (*below != *parent_id)
        return Error(ENOTSUP) << "the merge on " << hierarchy << " covers a mount of its own, not a directory";
    // Non-recursive: the copy shows the directory itself, not what is
    // mounted on it. Private, so nothing done to it propagates.
    auto copy = clone_tree(parent->get());
    if (!copy) return copy.error();
    struct mount_attr a = {};
    a.propagation = MS_PRIVATE;
    if (::mount_setattr(copy->get(), "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return ErrnoError() << "making the copy of " << hierarchy << "'s parent private";
    auto slot_fd = staging.make_slot(slot);
    if (!slot_fd) return slot_fd.error();
    RDEXT_TRY(attach_mount(copy->get(), slot_fd->get()));
    // The attached copy's root, through the fd that made it.
    return open_base(copy->get());
}

namespace {

// The root as it is beneath the merges on /etc and /usr, for the OS's own
// release files: a private, non-recursive copy of the root's mount
// (showing no mount at all), with a non-recursive copy of /etc or /usr put
// back where one is an unmerged file system of its own. EXDEV when a merge
// covers a file system of its own: its tree is out of reach this way.
Result<UniqueFd> stage_own_root(const Target& target, Staging& staging) {
    auto root_id = mount_id_of(target.root_fd.get());
    if (!root_id) return root_id.error();
    std::vector<std::pair<std::string, UniqueFd>> own_mounts;
    for (const auto& [cls, h] : {std::pair{ImageClass::Confext, "/etc"}, std::pair{ImageClass::Sysext, "/usr"}}) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        auto m = read_merged(fd->get(), cls);
        if (!m) return m.error();
        auto id = mount_id_of(fd->get());
        if (!id) return id.error();
        if (m->merged) {
            auto below = parent_mount_id(*id);
            if (!below) return below.error();
            if (*below != *root_id)
                return Error(EXDEV) << "the merge on " << h << " covers a mount of its own, not a directory";
        } else if (*id != *root_id) {
            auto copy = clone_tree(fd->get());
            if (!copy) return copy.error();
            own_mounts.emplace_back(h, std::move(*copy));
        }
    }
    auto copy = clone_tree(target.root_fd.get());
    if (!copy) return copy.error();
    struct mount_attr a = {};
    a.propagation = MS_PRIVATE;
    if (::mount_setattr(copy->get(), "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return ErrnoError() << "making the copy of the root private";
    auto slot = staging.make_slot("own-root");
    if (!slot) return slot.error();
    RDEXT_TRY(attach_mount(copy->get(), slot->get()));
    auto own = open_in_root_nofollow(staging.fd(), "own-root", O_PATH | O_DIRECTORY);
    if (!own) return own.error();
    for (auto& [h, mnt] : own_mounts) {
        auto at = open_in_root_nofollow(own->get(), h, O_PATH | O_DIRECTORY);
        if (!at) return at.error().prefix("the root's own " + h + ": ");
        RDEXT_TRY(attach_mount(mnt.get(), at->get()));
    }
    return own;
}

}  // namespace

Result<ReleaseFields> read_own_os_release(const Target& target, Staging& staging) {
    bool merged = false;
    for (const auto& [cls, h] : {std::pair{ImageClass::Confext, "/etc"}, std::pair{ImageClass::Sysext, "/usr"}})
        if (auto fd = target.open_hierarchy(h); fd)
            if (auto m = read_merged(fd->get(), cls); !m || m->merged) merged = true;
    if (!merged) return read_host_os_release(target.root_fd.get());
    auto own = stage_own_root(target, staging);
    if (!own) return own.error();
    return read_host_os_release(own->get());
}

}  // namespace rdext
