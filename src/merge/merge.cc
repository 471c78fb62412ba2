#include "merge/merge.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "base/fs.h"
#include "base/log.h"
#include "boot_count/boot_count.h"
#include "discover/discover.h"
#include "merge/commit.h"
#include "merge/trust.h"
#include "merge/var_mount.h"
#include "mount/overlay.h"
#include "mount/stage_image.h"
#include "release/compat.h"
#include "release/extension_release.h"
#include "state/metadata.h"
#include "vpick/versioned_record.h"

namespace rdext {
namespace {

struct Admitted {
    const Candidate* candidate;
    StagedImage image;
    size_t record;  // index into MergeState::extensions
};

ExtensionRecord record_for(const Candidate& c) {
    ExtensionRecord r;
    r.name = c.name;
    r.cls = class_name(c.cls);
    r.path = c.path;
    r.kind = kind_name(c.kind);
    return r;
}

std::string identity_of(const Candidate& c) {
    auto st = stat_fd(c.fd->get());
    if (!st) return "";
    return format_devnum(st->st_dev) + ":" + std::to_string(st->st_ino) + "@" +
           std::to_string(st->st_mtim.tv_sec) + "." + std::to_string(st->st_mtim.tv_nsec);
}

std::string now_iso8601() {
    char buf[32];
    std::time_t t = std::time(nullptr);
    std::tm tm;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Stages one image and checks that the policy allows what it offers and
// that it fits the OS. The error says why not.
Result<StagedImage> admit(const Candidate& c, const Settings& settings, Staging& staging, const CompatContext& compat,
                          const std::string& slot) {
    auto policy = [&](const std::vector<OfferedPartition>& offered) {
        return check_image_policy(settings.policy, c.cls, c.name, offered);
    };
    auto img = stage_image(c, staging, slot, policy);
    if (!img) return img.error();
    // Again with what the image turned out to offer (a signature may fail).
    RDEXT_TRY(policy(img->offered));
    if (image_ships_os_release(img->tree_fd.get()))
        return Error() << "ships an os-release file of its own, which would replace the OS's identity";
    auto release = read_extension_release(img->tree_fd.get(), c.cls, c.name);
    if (!release) return release.error();
    RDEXT_TRY(check_compatible(c.cls, c.name, *release, compat));
    return img;
}

// OS-bound selection, beyond systemd-sysext (which takes the best ranked
// entry of a versioned directory, fitting or not): the entries are staged
// and checked best first, a pinned version before the others, and the first
// that fits the OS is merged, so an OS rolled back to its previous release
// finds the extension built for it. The candidate becomes that entry.
Result<StagedImage> admit_versioned(Candidate& c, const Settings& settings, Staging& staging,
                                    const CompatContext& compat, size_t index, ExtensionRecord& rec) {
    std::vector<VersionedEntry> ranked;
    for (const auto& img : c.versioned->ranked) ranked.push_back(img.entry);
    std::optional<StagedImage> staged;
    auto try_entry = [&](size_t k) -> Result<void> {
        std::string slot = std::string(class_name(c.cls)) + "-" + std::to_string(index) + "." + std::to_string(k);
        auto img = admit(versioned_entry_candidate(c, k), settings, staging, compat, slot);
        if (!img) return img.error();
        staged = std::move(*img);
        return {};
    };
    const std::string pin = settings.pinned(c.cls, c.name);
    Selection sel = select_entry(ranked, pin, try_entry);
    record_selection(c, sel, pin, rec);
    if (!sel.chosen) return Error() << no_entry_fits(c, sel);
    rec.trial = trial_for(c.versioned->path, c.versioned->ranked[*sel.chosen]);
    c = versioned_entry_candidate(c, *sel.chosen);
    rec.path = c.path;
    rec.kind = kind_name(c.kind);
    return std::move(*staged);
}

// Decides about every candidate of a class; admitted images stay mounted
// in the staging area.
std::vector<Admitted> admit_all(std::vector<Candidate>& candidates, const Settings& settings,
                                Staging& staging, const CompatContext& compat, MergeState& state) {
    std::vector<Admitted> admitted;
    for (size_t i = 0; i < candidates.size(); i++) {
        Candidate& c = candidates[i];
        ExtensionRecord rec = record_for(c);
        if (c.versioned) start_versioned_record(c, rec);
        if (c.state != EntryState::Available) {
            rec.result = c.state == EntryState::Broken ? "skipped" : entry_state_name(c.state);
            rec.reason = c.reason;
            if (c.state == EntryState::Broken) log_warning() << "skipping " << c.path << ": " << c.reason;
        } else if (settings.excluded(c.cls).count(c.name)) {
            rec.result = "excluded";
            rec.reason = std::string("excluded by rd.") + class_name(c.cls) + ".exclude=";
            log_info() << "not merging " << c.path << ": " << rec.reason;
        } else {
            const std::string slot = std::string(class_name(c.cls)) + "-" + std::to_string(i);
            if (!c.versioned && !settings.pinned(c.cls, c.name).empty())
                log_warning() << "rd." << class_name(c.cls) << ".pin=" << c.name << "=... does not apply: " << c.path
                              << " is not a versioned directory";
            auto img = c.versioned ? admit_versioned(c, settings, staging, compat, i, rec)
                                   : admit(c, settings, staging, compat, slot);
            if (!img) {
                rec.result = "skipped";
                rec.reason = img.error().what();
                log_warning() << "skipping " << class_name(c.cls) << " " << c.path << ": " << rec.reason;
            } else {
                rec.result = "merged";
                rec.fstype = img->fstype;
                rec.identity = identity_of(c);
                state.extensions.push_back(std::move(rec));
                admitted.push_back({&c, std::move(*img), state.extensions.size() - 1});
                continue;
            }
        }
        state.extensions.push_back(std::move(rec));
    }
    return admitted;
}

Result<void> copy_owner_and_mode(const struct stat& from, int dir_fd) {
    std::string p = proc_fd_path(dir_fd);
    if (::chown(p.c_str(), from.st_uid, from.st_gid) < 0) return ErrnoError() << "chown meta layer";
    if (::chmod(p.c_str(), from.st_mode & 07777) < 0) return ErrnoError() << "chmod meta layer";
    return {};
}

// Builds the overlay for one hierarchy: metadata layer on top, the images
// from the last-sorting (top) down, the root's own hierarchy at the bottom.
// Returns an empty overlay when no image has anything there.
Result<PreparedOverlay> prepare_hierarchy(const Target& target, Staging& staging, ImageClass cls,
                                          const std::string& hierarchy, std::vector<Admitted>& admitted,
                                          MergeState& state) {
    PreparedOverlay p;
    p.cls = cls;
    p.hierarchy = hierarchy;
    std::vector<std::string> layers;
    for (auto it = admitted.rbegin(); it != admitted.rend(); ++it) {
        auto layer = it->image.layer_for(hierarchy);
        if (!layer) return layer.error().prefix(it->candidate->path + ": ");
        if (layer->empty()) continue;
        layers.push_back(*layer);
        p.merged_names.insert(p.merged_names.begin(), it->candidate->name);
        state.extensions[it->record].hierarchies.push_back(hierarchy);
    }
    if (layers.empty()) return p;

    auto base = target.open_hierarchy(hierarchy);
    if (!base) {
        log_info() << "hierarchy " << hierarchy << " does not exist in " << target.root_path << ", not merging it";
        for (auto& a : admitted) std::erase(state.extensions[a.record].hierarchies, hierarchy);
        return p;
    }
    auto base_path = fd_path(base->get());
    auto base_st = stat_fd(base->get());
    if (!base_path || !base_st) return Error(EIO) << "cannot inspect " << hierarchy;

    std::string meta_name = std::string("meta-") + class_name(cls) + hierarchy;
    std::replace(meta_name.begin(), meta_name.end(), '/', '-');
    auto meta = staging.make_slot(meta_name);
    if (!meta) return meta.error();
    // The topmost layer's root gives the merged hierarchy its owner and
    // mode: make it look like the root's own hierarchy, not a 0700 slot.
    RDEXT_TRY(copy_owner_and_mode(*base_st, meta->get()));
    std::vector<ExtensionRecord> merged;
    for (const auto& a : admitted) merged.push_back(state.extensions[a.record]);
    RDEXT_TRY(write_meta_layer(meta->get(), cls, merged, base_st->st_dev));

    OverlaySpec spec;
    spec.source = class_name(cls);
    spec.flags = class_info(cls).overlay_flags;
    spec.lowers.push_back(staging.slot_path(meta_name));
    spec.lowers.insert(spec.lowers.end(), layers.begin(), layers.end());
    spec.lowers.push_back(*base_path);
    auto overlay = create_overlay(spec);
    if (!overlay) return overlay.error().prefix("overlay for " + hierarchy + ": ");
    auto st = stat_fd(overlay->get());
    if (!st) return st.error();
    // Written after the mount exists (its st_dev is only known now) and
    // before anything looked into it, as systemd-sysext does.
    RDEXT_TRY(write_meta_dev(meta->get(), cls, st->st_dev));
    p.overlay_fd = std::move(*overlay);
    return p;
}

Result<void> refuse_if_merged(const Target& target, ImageClass cls) {
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        auto m = read_merged(fd->get(), cls);
        if (m && m->merged)
            return Error(EBUSY) << h << " is already merged (" << join(m->extensions, ", ")
                                << "); use 'rdext refresh' or 'rdext unmerge'";
    }
    return {};
}

// The OS the extensions must fit: the root's os-release, the scope the
// merged tree is for, and the architecture the kernel runs.
Result<CompatContext> compat_for(const Target& target) {
    CompatContext compat;
    auto host = read_host_os_release(target.root_fd.get());
    if (!host) return host.error().prefix("cannot read the OS's os-release in " + target.root_path + ": ");
    RDEXT_TRY(check_host_release(*host));
    compat.host = std::move(*host);
    compat.scope = target_scope(target.root_fd.get());
    // As systemd compares it: a 32-bit build on a 64-bit kernel still
    // serves x86-64 extensions.
    compat.architecture = uname_architecture();
    return compat;
}

// One class's share of a merge. Candidates and admitted images stay alive
// until the commit: the overlays reference their staged mounts.
struct ClassWork {
    std::vector<Candidate> candidates;
    std::vector<Admitted> admitted;
};

Result<void> prepare_class(const Target& target, const Settings& settings, Staging& staging,
                           const CompatContext& compat, ImageClass cls, ClassWork& work, MergeState& state,
                           std::vector<PreparedOverlay>& overlays) {
    RDEXT_TRY(refuse_if_merged(target, cls));
    auto found = discover(target.root_fd.get(), cls);
    if (!found) return found.error();
    work.candidates = std::move(*found);
    work.admitted = admit_all(work.candidates, settings, staging, compat, state);
    for (const auto& h : class_info(cls).hierarchies) {
        auto p = prepare_hierarchy(target, staging, cls, h, work.admitted, state);
        if (!p) return p.error();
        overlays.push_back(std::move(*p));
    }
    return {};
}

Result<MergeState> merge_fresh(const Target& target, const Settings& settings) {
    MergeState state;
    state.root = target.root_path;
    state.time = now_iso8601();
    auto compat = compat_for(target);
    if (!compat) return compat.error();
    auto runtime = target.runtime_dir(true);
    if (!runtime) return runtime.error();
    // Before discovery: /var/lib/extensions may live on it.
    auto var = mount_var_from_fstab(target);
    if (!var) return var.error();
    auto staging = Staging::create(runtime->get());
    if (!staging) return staging.error();
    // Boot counting: renames the last merge could not do on a read-only root.
    std::optional<MergeState> previous;
    if (auto p = read_state(runtime->get()); p) previous = std::move(*p);
    if (previous) retry_pending_trials(target.root_fd.get(), *previous);
    state.boot_id = current_boot_id();

    std::vector<ClassWork> work(all_classes().size());
    std::vector<PreparedOverlay> overlays;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) {
            log_info() << class_name(cls) << " merging is disabled on the kernel command line";
            continue;
        }
        RDEXT_TRY(prepare_class(target, settings, *staging, *compat, cls, work[static_cast<size_t>(cls)], state,
                                overlays));
    }
    // A required extension that is missing fails the run before anything
    // becomes visible; the record still says why, for `rdext status`.
    if (auto missing = missing_required(state, settings); !missing.empty()) {
        if (auto w = write_state(runtime->get(), state); !w)
            log_warning() << "cannot record the merge in state.json: " << w.error().what();
        return Error(ENOENT) << "required extension not merged: " << join(missing, "; ");
    }
    RDEXT_TRY(commit_overlays(target, overlays));
    var->keep();
    // Merged: the overlays hold the loop and dm devices now; autoclear and
    // deferred removal free each when its last user goes.
    for (auto& w : work)
        for (auto& a : w.admitted) a.image.relinquish();
    // Each merged trial entry has used up one try of this boot.
    count_trials(target.root_fd.get(), previous ? &*previous : nullptr, state);
    if (auto w = write_state(runtime->get(), state); !w)
        log_warning() << "cannot record the merge in state.json: " << w.error().what();
    return state;
}

}  // namespace

// A refresh takes the current merge off and merges again. The new overlays
// need the root's own hierarchy as their bottom layer, and it is only
// reachable by path once the old overlay is gone; a copy of the old merge
// is kept so a failed merge can put it back. (Swapping without a gap needs
// mount-beneath; see the refresh work.)
Result<MergeState> merge(const Target& target, const Settings& settings, MergeMode mode) {
    if (mode == MergeMode::Merge) return merge_fresh(target, settings);
    std::vector<SavedMerge> saved;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        auto s = save_merges(target, cls);
        if (!s) return s.error();
        for (auto& m : *s) saved.push_back(std::move(m));
    }
    for (size_t i = 0; i < saved.size(); i++) {
        if (auto r = unmerge_hierarchy(target, saved[i].cls, saved[i].hierarchy); !r) {
            saved.resize(i);  // only what was taken off goes back
            restore_merges(target, saved);
            return r.error();
        }
    }
    auto r = merge_fresh(target, settings);
    if (!r) restore_merges(target, saved);
    return r;
}

std::vector<std::string> missing_required(const MergeState& state, const Settings& settings) {
    std::vector<std::string> missing;
    for (ImageClass cls : all_classes())
        for (const auto& name : settings.required(cls)) {
            std::string why = "not found";
            bool merged = false;
            for (const auto& r : state.extensions)
                if (r.name == name && r.cls == class_name(cls)) {
                    merged = r.result == "merged";
                    why = r.result + (r.reason.empty() ? "" : ": " + r.reason);
                }
            if (!settings.class_enabled(cls)) why = std::string(class_name(cls)) + " merging is disabled";
            if (!merged) missing.push_back(std::string(class_name(cls)) + " " + name + " (" + why + ")");
        }
    return missing;
}

Result<void> unmerge(const Target& target, const Settings& settings) {
    Result<void> result;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        for (const auto& h : class_info(cls).hierarchies) {
            auto r = unmerge_hierarchy(target, cls, h);
            if (!r && result) result = r.error();
        }
    }
    if (auto runtime = target.runtime_dir(false); runtime) (void)remove_state(runtime->get());
    return result;
}

}  // namespace rdext
