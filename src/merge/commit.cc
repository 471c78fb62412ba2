#include "merge/commit.h"

#include <fcntl.h>
#include <sys/mount.h>

#include <functional>
#include <memory>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "mount/beneath.h"
#include "mount/mount_api.h"
#include "state/metadata.h"

namespace rdext {
namespace {

// Undo steps recorded while committing, run newest first on failure.
class UndoLog {
public:
    void add(std::function<void()> f) { steps_.push_back(std::move(f)); }
    void run() noexcept {
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
        steps_.clear();
    }
    void clear() { steps_.clear(); }

private:
    std::vector<std::function<void()>> steps_;
};

// A mutable merge's metadata directory gets a read-only bind of itself, as
// systemd-sysext does: a write there would land in the upper directory and
// outlive the merge it describes.
Result<void> protect_metadata(const PreparedOverlay& p) {
    if (!p.writable) return {};
    auto dot = open_in_root_nofollow(p.overlay_fd.get(), class_info(p.cls).dot_dir, O_PATH | O_DIRECTORY);
    if (!dot) return dot.error().prefix("metadata of " + p.hierarchy + ": ");
    auto copy = clone_tree(dot->get());
    if (!copy) return copy.error();
    RDEXT_TRY(set_mount_attrs(copy->get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID |
                                               MOUNT_ATTR_NOEXEC));
    return attach_mount(copy->get(), dot->get());
}

// The hierarchy to mount on; one the root lacks is created when the
// overlay asks for it, and removed again if the commit fails.
Result<UniqueFd> mount_point(const Target& target, const PreparedOverlay& p, UndoLog& undo) {
    auto h = target.open_hierarchy(p.hierarchy);
    if (h || h.error().code() != ENOENT || !p.create_mount_point) return h;
    auto created = target.create_hierarchy(p.hierarchy);
    if (!created) return created.error();
    auto shared = std::make_shared<Target::CreatedDir>(std::move(*created));
    undo.add([shared] { shared->remove(); });
    log_info() << "created " << p.hierarchy << ", missing from the root, to merge into it";
    return open_path(proc_fd_path(shared->dir.get()), O_PATH | O_DIRECTORY);
}

Result<void> put_on_new(const Target& target, PreparedOverlay& p, UndoLog& undo) {
    if (!p.overlay_fd) return {};
    auto h = mount_point(target, p, undo);
    if (!h) return h.error().prefix("hierarchy " + p.hierarchy + ": ");
    RDEXT_TRY(fault_point("commit"));
    RDEXT_TRY(attach_mount(p.overlay_fd.get(), h->get()));
    int fd = p.overlay_fd.get();
    undo.add([fd] { (void)detach_mount_of(fd); });
    return protect_metadata(p);
}

using SharedFd = std::shared_ptr<UniqueFd>;

// A recursive detached copy of what is mounted on a hierarchy now, to put
// back if a later step fails.
Result<SharedFd> keep_copy(int top_fd, const std::string& hierarchy) {
    int copy = ::open_tree(top_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (copy < 0) return ErrnoError() << "copying the current merge of " << hierarchy;
    return std::make_shared<UniqueFd>(copy);
}

// Said once per run, at its first hierarchy swapped without mount beneath.
void say_fallback(Run& run, const std::string& hierarchy, const Error& why) {
    if (run.fell_back) return;
    run.fell_back = true;
    if (!kernel_has_mount_beneath())
        log_warning() << "mount beneath not supported, refreshing with unmount and mount (a short gap)";
    else
        log_warning() << "mount beneath refused on " << hierarchy << " (" << why.what()
                      << "), refreshing with unmount and mount (a short gap)";
}

// Without mount beneath: everything is looked up first, so the gap is two
// system calls, the old merge's detach and the new one's attach (through
// the parent directory, which the detach uncovers nothing of).
Result<void> unmount_then_mount(const Target& target, const PreparedOverlay& p, int top_fd, int saved_fd) {
    const std::string& h = p.hierarchy;
    auto parent = open_in_root(target.root_fd.get(), h.substr(0, h.rfind('/')) + "/", O_PATH | O_DIRECTORY);
    if (!parent) return parent.error();
    const std::string name = h.substr(h.rfind('/') + 1);
    RDEXT_TRY(detach_mount_of(top_fd));
    if (::move_mount(p.overlay_fd.get(), "", parent->get(), name.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        Error e = ErrnoError() << "move_mount onto " << h;
        (void)::move_mount(saved_fd, "", parent->get(), name.c_str(), MOVE_MOUNT_F_EMPTY_PATH);
        return e;
    }
    return {};
}

// Old and new merge on one hierarchy: the new overlay beneath the old, the
// old one's submounts copied over, then the old one detached.
Result<void> swap_one(const Target& target, PreparedOverlay& p, int top_fd, UndoLog& undo, Run& run) {
    auto children = copy_child_mounts(top_fd, class_info(p.cls).dot_dir);
    if (!children) return children.error();
    auto saved = keep_copy(top_fd, p.hierarchy);
    if (!saved) return saved.error();
    RDEXT_TRY(fault_point("swap"));
    int fd = p.overlay_fd.get();
    if (auto r = mount_beneath(fd, top_fd); !r) {
        if (r.error().code() != EINVAL) return r.error();
        say_fallback(run, p.hierarchy, r.error());
        RDEXT_TRY(unmount_then_mount(target, p, top_fd, (*saved)->get()));
    } else {
        RDEXT_TRY(detach_mount_of(top_fd));  // the old merge, its submounts with it
    }
    SharedFd back = *saved;
    std::string hierarchy = p.hierarchy;
    undo.add([&target, fd, back, hierarchy] {
        // Gapless where possible: the old merge beneath the new, then the new off.
        bool beneath = static_cast<bool>(mount_beneath(back->get(), fd));
        (void)detach_mount_of(fd);
        if (beneath) return;
        auto h = target.open_hierarchy(hierarchy);
        if (!h || !attach_mount(back->get(), h->get()))
            log_error() << "could not put back the previous merge of " << hierarchy;
    });
    RDEXT_TRY(protect_metadata(p));
    attach_child_mounts(fd, *children);
    return {};
}

// Merged before, nothing to merge now.
Result<void> take_off(const Target& target, const PreparedOverlay& p, int top_fd, UndoLog& undo) {
    auto saved = keep_copy(top_fd, p.hierarchy);
    if (!saved) return saved.error();
    RDEXT_TRY(fault_point("swap"));
    RDEXT_TRY(unmerge_hierarchy(target, p.cls, p.hierarchy));
    SharedFd back = *saved;
    std::string hierarchy = p.hierarchy;
    undo.add([&target, back, hierarchy] {
        auto h = target.open_hierarchy(hierarchy);
        if (!h || !attach_mount(back->get(), h->get()))
            log_error() << "could not put back the previous merge of " << hierarchy;
    });
    log_info() << "unmerged " << class_name(p.cls) << " from " << p.hierarchy << ": nothing to merge there now";
    return {};
}

Result<void> swap_hierarchy(const Target& target, PreparedOverlay& p, UndoLog& undo, Run& run) {
    auto h = target.open_hierarchy(p.hierarchy);
    if (!h) {
        if (!p.overlay_fd) return {};
        if (p.create_mount_point) return put_on_new(target, p, undo);
        return h.error().prefix("hierarchy " + p.hierarchy + ": ");
    }
    auto m = read_merged(h->get(), p.cls);
    if (!m) return m.error().prefix(p.hierarchy + ": ");
    if (!m->merged) return put_on_new(target, p, undo);
    if (!p.overlay_fd) return take_off(target, p, h->get(), undo);
    // The metadata bind of a mutable merge is a submount: the top proper is
    // the overlay, which open_hierarchy reaches.
    return swap_one(target, p, h->get(), undo, run);
}

}  // namespace

Result<void> commit_overlays(const Target& target, std::vector<PreparedOverlay>& overlays) {
    UndoLog undo;
    for (auto& p : overlays) {
        auto r = put_on_new(target, p, undo);
        if (!r) {
            undo.run();
            return r.error().prefix("committing " + p.hierarchy + " failed, nothing was changed: ");
        }
        if (p.overlay_fd)
            log_info() << "merged " << class_name(p.cls) << " into " << p.hierarchy << ": "
                       << join(p.merged_names, " ");
    }
    undo.clear();
    return {};
}

Result<void> swap_overlays(const Target& target, std::vector<PreparedOverlay>& overlays, Run& run) {
    UndoLog undo;
    for (auto& p : overlays) {
        auto r = swap_hierarchy(target, p, undo, run);
        if (!r) {
            undo.run();
            return r.error().prefix("refreshing " + p.hierarchy + " failed, the previous merge stays: ");
        }
        if (p.overlay_fd)
            log_info() << "refreshed " << class_name(p.cls) << " in " << p.hierarchy << ": " << join(p.merged_names, " ");
    }
    undo.clear();
    return {};
}

Result<std::vector<SavedMerge>> save_merges(const Target& target, ImageClass cls) {
    std::vector<SavedMerge> saved;
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        auto m = read_merged(fd->get(), cls);
        if (!m || !m->merged) continue;
        int copy = ::open_tree(fd->get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (copy < 0) return ErrnoError() << "saving the current merge of " << h;
        saved.push_back({cls, h, UniqueFd(copy)});
    }
    return saved;
}

void restore_merges(const Target& target, std::vector<SavedMerge>& saved) noexcept {
    for (auto& s : saved) {
        auto h = target.open_hierarchy(s.hierarchy);
        if (!h || !attach_mount(s.copy.get(), h->get()))
            log_error() << "could not put back the previous merge of " << s.hierarchy;
    }
    saved.clear();
}

Result<void> refuse_if_covered(const Target& target, ImageClass cls, const std::string& hierarchy) {
    auto h = target.open_hierarchy(hierarchy);
    if (!h) return {};
    auto m = read_merged(h->get(), cls);
    if (!m) return m.error().prefix(hierarchy + ": ");
    if (m->merged) return {};
    auto cover = mount_covering_overlay(h->get(), class_name(cls));
    if (!cover) return cover.error().prefix(hierarchy + ": ");
    if (cover->empty()) return {};
    return Error(EBUSY) << hierarchy << " is merged, but a " << *cover
                        << " is mounted over the merge; it is not rdext's to take off: unmount it first";
}

Result<void> unmerge_hierarchy(const Target& target, ImageClass cls, const std::string& hierarchy) {
    for (;;) {
        auto h = target.open_hierarchy(hierarchy);
        if (!h) return {};
        auto m = read_merged(h->get(), cls);
        if (!m) return m.error().prefix(hierarchy + ": ");
        if (!m->merged) return {};
        if (auto f = fault_point("unmount"); !f) return f.error().prefix(hierarchy + ": ");
        // systemd-sysext's mutable merges bind-mount the metadata directory
        // read-only on top; it goes first.
        auto dot = open_in_root_nofollow(h->get(), class_info(cls).dot_dir, O_PATH | O_DIRECTORY);
        if (dot) {
            auto root = is_mount_root(dot->get());
            if (root && *root) (void)detach_mount_of(dot->get());
        }
        RDEXT_TRY(detach_mount_of(h->get()));
        log_info() << "unmerged " << class_name(cls) << " from " << hierarchy;
    }
}

}  // namespace rdext
