#include "merge/commit.h"

#include <fcntl.h>
#include <sys/mount.h>

#include <functional>
#include <memory>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
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

Result<void> put_on_new(const Target& target, PreparedOverlay& p, UndoLog& undo) {
    if (!p.overlay_fd) return {};
    auto h = target.open_hierarchy(p.hierarchy);
    if (!h) return h.error().prefix("hierarchy " + p.hierarchy + ": ");
    RDEXT_TRY(fault_point("commit"));
    RDEXT_TRY(attach_mount(p.overlay_fd.get(), h->get()));
    int fd = p.overlay_fd.get();
    undo.add([fd] { (void)detach_mount_of(fd); });
    return {};
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

Result<void> unmerge_hierarchy(const Target& target, ImageClass cls, const std::string& hierarchy) {
    for (;;) {
        auto h = target.open_hierarchy(hierarchy);
        if (!h) return {};
        auto m = read_merged(h->get(), cls);
        if (!m) return m.error().prefix(hierarchy + ": ");
        if (!m->merged) return {};
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
