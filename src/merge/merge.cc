#include "merge/merge.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>

#include "base/fs.h"
#include "base/parallel.h"
#include "base/log.h"
#include "boot_count/boot_count.h"
#include "discover/discover.h"
#include "record/candidate_record.h"
#include "merge/commit.h"
#include "merge/module_index.h"
#include "merge/mutable.h"
#include "merge/refresh.h"
#include "merge/trust.h"
#include "merge/var_mount.h"
#include "record/versioned_record.h"
#include "mount/mount_api.h"
#include "mount/overlay.h"
#include "mount/stage_image.h"
#include "release/compat.h"
#include "release/extension_release.h"
#include "state/metadata.h"
#include "merge/sysext_origin.h"

namespace rdext {
namespace {

struct Admitted {
    const Candidate* candidate;
    StagedImage image;
    size_t record;  // index into MergeState::extensions
};

std::string identity_of(const Candidate& c) {
    auto st = stat_fd(c.fd->get());
    if (!st) return "";
    return format_devnum(st->st_dev) + ":" + std::to_string(st->st_ino) + "@" +
           std::to_string(st->st_mtim.tv_sec) + "." + std::to_string(st->st_mtim.tv_nsec);
}

// What every step of a run works with, passed down as one.
struct RunContext {
    const Target& target;
    const Settings& settings;
    Staging& staging;
    const CompatContext& compat;
    MergeState& state;
    Run& run;  // a refresh: the current merge stays until the swap
};

// Stages one image and checks that the policy allows what it offers and
// that it fits the OS. The error says why not. Runs on a worker thread
// (admit_all): it only touches the image, its slot and locked libraries.
Result<StagedImage> admit(const RunContext& rc, const Candidate& c, const std::string& slot) {
    const Settings& settings = rc.settings;
    auto policy = [&](const std::vector<OfferedPartition>& offered) {
        return check_image_policy(settings.policy, c.cls, c.name, offered);
    };
    RDEXT_TRY(check_block_device_allowed(c, settings));
    auto img = stage_image(c, rc.staging, slot, policy, rc.run.loop_reuse.get());
    if (!img) return img.error();
    // Again with what the image turned out to offer (a signature may fail).
    RDEXT_TRY(policy(img->offered));
    if (auto why = os_release_conflict(img->tree_fd.get(), c.cls); !why.empty()) return Error() << why;
    // --force, as systemd-sysext's: whether the release fits the OS (or
    // there is one) is not asked. An image shipping os-release stays
    // refused: systemd 257 cannot read its metadata and merges nothing.
    if (!settings.force) {
        auto release = read_extension_release(img->tree_fd.get(), c.cls, c.name);
        if (!release) return release.error();
        RDEXT_TRY(check_compatible(c.cls, c.name, *release, rc.compat));
    }
    // Where its layers are, while on this thread: an image whose /usr leads
    // elsewhere is refused here, alone, instead of failing the whole merge.
    RDEXT_TRY(img->resolve_layers(class_info(c.cls).hierarchies));
    if (c.cls == ImageClass::Sysext) {
        static const std::string kver = running_kernel_release();
        auto modules = layer_carries_modules(img->layer_fd("/usr"), kver);
        if (!modules) return modules.error();
        img->ships_modules = *modules;
    }
    return img;
}

// A directory tree's release file can be read where it is, through the fd
// discovery resolved (every path inside the tree): an entry of a versioned
// directory that does not fit the OS is passed over without a bind mount.
// One that fits is staged and checked again, on what will be merged.
Result<void> check_directory_release(const Candidate& c, const CompatContext& compat) {
    auto release = read_extension_release(c.fd->get(), c.cls, c.name);
    if (!release) return release.error();
    return check_compatible(c.cls, c.name, *release, compat);
}

// What admission made of one candidate (admit_all).
struct Decision {
    std::optional<Result<StagedImage>> staged;
    Selection selection;  // a versioned directory's walk through its entries
};

// OS-bound selection, beyond systemd-sysext (which takes the best ranked
// entry of a versioned directory, fitting or not): the entries are staged
// and checked best first, a pinned version before the others, and the first
// that fits the OS is merged, so an OS rolled back to its previous release
// finds the extension built for it. On a worker thread: the record is
// written afterwards (record_versioned).
void admit_versioned(const RunContext& rc, const Candidate& c, size_t index, Decision& d) {
    std::vector<VersionedEntry> ranked;
    for (const auto& img : c.versioned->ranked) ranked.push_back(img.entry);
    auto try_entry = [&](size_t k) -> Result<void> {
        std::string slot = std::string(class_name(c.cls)) + "-" + std::to_string(index) + "." + std::to_string(k);
        Candidate entry = versioned_entry_candidate(c, k);
        if (entry.kind == ImageKind::Directory && !rc.settings.force)
            RDEXT_TRY(check_directory_release(entry, rc.compat));
        auto img = admit(rc, entry, slot);
        if (!img) return img.error();
        d.staged = std::move(img);
        return {};
    };
    d.selection = select_entry(ranked, rc.settings.pinned(c.cls, c.name), try_entry);
}

// The record of a versioned directory's selection; the candidate becomes
// the chosen entry.
Result<StagedImage> record_versioned(Candidate& c, const Settings& settings, Decision& d, ExtensionRecord& rec) {
    const std::string pin = settings.pinned(c.cls, c.name);
    record_selection(c, d.selection, pin, rec);
    if (!d.selection.chosen || !d.staged) return Error() << no_entry_fits(c, d.selection);
    rec.trial = trial_for(c.versioned->path, c.versioned->ranked[*d.selection.chosen]);
    c = versioned_entry_candidate(c, *d.selection.chosen);
    rec.path = c.path;
    rec.kind = kind_name(c.kind);
    return std::move(*d.staged);
}

bool worth_staging(const Candidate& c, const Settings& settings) {
    ExtensionRecord unused;
    return !record_unstaged(c, settings, unused);
}

// Decides about every candidate of a class; admitted images stay mounted
// in the staging area. The images are staged side by side
// (base/parallel.h); records, messages and layer order then follow the
// candidates' order, as if one had been staged after the other.
std::vector<Admitted> admit_all(const RunContext& rc, std::vector<Candidate>& candidates) {
    const Settings& settings = rc.settings;
    MergeState& state = rc.state;
    std::vector<Decision> decisions(candidates.size());
    auto stage = [&](size_t i) {
        const Candidate& c = candidates[i];
        Decision& d = decisions[i];
        if (c.versioned)
            admit_versioned(rc, c, i, d);
        else
            d.staged = admit(rc, c, std::string(class_name(c.cls)) + "-" + std::to_string(i));
    };
    // Directories are staged on this thread: cloning and attaching one is
    // mount table work under the kernel's namespace lock, which two threads
    // only pass back and forth (498 directories: 56 ms on one thread, 71 ms
    // on two). Image files spend most of their time in their own file
    // system and device.
    std::vector<size_t> files, dirs;
    for (size_t i = 0; i < candidates.size(); i++)
        if (worth_staging(candidates[i], settings))
            (candidates[i].kind == ImageKind::Directory ? dirs : files).push_back(i);
    const size_t threads = parallel_threads(files.size());
    if (!files.empty())
        log_debug() << "staging " << files.size() << " " << class_name(candidates[files[0]].cls)
                    << " image file(s) on " << threads << (threads == 1 ? " thread" : " threads");
    // An image keeps a few descriptors while staged (its file or devices,
    // mounts, tree); a loop device and a dm device need some more meanwhile.
    if (threads > 1) reserve_fds(files.size() * 6 + 32);
    for_each_parallel(files.size(), [&](size_t k) { stage(files[k]); }, threads);
    for (size_t i : dirs) stage(i);

    std::vector<Admitted> admitted;
    // Discovery skipped other names for one image; a versioned directory's
    // entry is only known now: first in layer order wins.
    std::map<std::string, std::string> images;  // identity -> path
    for (size_t i = 0; i < candidates.size(); i++) {
        Candidate& c = candidates[i];
        ExtensionRecord rec = record_for(c);
        if (c.versioned) start_versioned_record(c, rec);
        if (record_unstaged(c, settings, rec)) {
            if (c.state == EntryState::Broken) log_warning() << "skipping " << c.path << ": " << c.reason;
            if (rec.result == ExtensionResult::Excluded) log_info() << "not merging " << c.path << ": " << rec.reason;
        } else {
            if (!c.versioned && !settings.pinned(c.cls, c.name).empty())
                log_warning() << "rd." << class_name(c.cls) << ".pin=" << c.name << "=... does not apply: " << c.path
                              << " is not a versioned directory";
            auto img = c.versioned ? record_versioned(c, settings, decisions[i], rec) : std::move(*decisions[i].staged);
            if (img) {
                auto [first, fresh] = images.emplace(image_identity(c.fd->get()), c.path);
                if (!fresh) img = Error() << "same image as " << first->second << " (another name for it)";
            }
            if (!img) {
                rec.result = ExtensionResult::Skipped;
                rec.reason = img.error().what();
                log_warning() << "skipping " << class_name(c.cls) << " " << c.path << ": " << rec.reason;
            } else {
                rec.result = ExtensionResult::Merged;
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

// How the hierarchies of one class are built in this run.
struct ClassBuild {
    const RunContext& rc;
    ImageClass cls;
    std::string inputs;  // fingerprint of the inputs, for the origin file
};

OriginInfo origin_for(const ClassBuild& b, const std::string& work_dir, const std::vector<std::string>& hierarchies) {
    OriginInfo o;
    o.mutable_mode = mutable_mode_name(b.rc.settings.mutable_mode(b.cls));
    o.work_dir = work_dir;
    o.inputs = b.inputs;
    o.hierarchies = hierarchies;
    return o;
}

// The root's own hierarchy, the overlay's bottom layer, as an fd: the
// kernel gets its /proc/self/fd link, never the path again. During a
// refresh a merged hierarchy is covered by the merge it replaces: its own
// directory is reached through a copy of the mount beneath (refresh.h).
// EXDEV when that cannot be done (the refresh then unmerges first).
Result<UniqueFd> base_of(const RunContext& rc, ImageClass cls, const std::string& hierarchy, int current_fd) {
    if (rc.run.refresh()) {
        auto m = read_merged(current_fd, cls);
        if (!m) return m.error();
        if (m->merged) {
            auto staged = stage_base(rc.target, rc.staging, cls, hierarchy);
            if (!staged && staged.error().code() == ENOTSUP) return Error(EXDEV) << staged.error().message();
            return staged;
        }
    }
    return open_path(proc_fd_path(current_fd), O_PATH | O_DIRECTORY);
}

// The base layer of a hierarchy the root lacks: an empty directory with
// the mode systemd-sysext gives it (0755).
Result<UniqueFd> missing_hierarchy_base(const RunContext& rc, ImageClass cls, const std::string& hierarchy) {
    std::string name = std::string("missing-") + class_name(cls) + hierarchy;
    std::replace(name.begin(), name.end(), '/', '-');
    auto slot = rc.staging.make_slot(name);
    if (!slot) return slot.error();
    if (::chmod(proc_fd_path(slot->get()).c_str(), 0755) < 0) return ErrnoError() << "chmod " << name;
    return slot;
}

// Overlayfs stacks at most 500 lower layers, and the metadata layer and
// the base take two of them. For 499 extensions (the most one overlay can
// show with the base), the metadata layer and the base become one layer:
// an overlay of their own, below the images. Its layers are plain
// directories (file system depth 0), so the outer overlay stays within the
// kernel's stacking depth of 2 even over erofs images mounted from files
// (depth 1). The merged root then takes its owner and mode from the top
// image instead of the metadata layer. Returns the nested overlay's mount
// (the layer is its /proc/self/fd link: keep it until the outer overlay
// exists), or nothing when the layers fit without.
Result<UniqueFd> nest_bottom_if_needed(const ClassBuild& b, const std::string& hierarchy, OverlaySpec& spec) {
    const ImageClass cls = b.cls;
    if (spec.lowers.size() <= kMaxOverlayLayers || !spec.upper.empty()) return UniqueFd();
    OverlaySpec bottom;
    bottom.source = std::string(class_name(cls)) + "-base";
    bottom.flags = spec.flags;
    bottom.lowers = {spec.lowers.front(), spec.lowers.back()};
    auto inner = create_overlay(bottom, b.rc.run.lowerdir_plus_refused);
    if (!inner) return inner.error().prefix("overlay of metadata and base for " + hierarchy + ": ");
    std::string name = std::string("nest-") + class_name(cls) + hierarchy;
    std::replace(name.begin(), name.end(), '/', '-');
    auto slot = b.rc.staging.make_slot(name);
    if (!slot) return slot.error();
    RDEXT_TRY(attach_mount(inner->get(), slot->get()));
    spec.lowers.erase(spec.lowers.begin());
    spec.lowers.back() = proc_fd_path(inner->get());
    log_debug() << hierarchy << ": " << spec.lowers.size() + 1
                << " layers with metadata and base; those two go in as one overlay";
    return inner;
}

// Builds the overlay for one hierarchy: metadata layer on top, the images
// from the last-sorting (top) down, the root's own hierarchy at the bottom.
// Returns an empty overlay when no image has anything there (and the merge
// is not mutable). A merged module index (module_index, for /usr) goes right
// below the metadata layer; a mutable merge adds its upper directory (and
// the import modes a read-only layer below the metadata).
Result<PreparedOverlay> prepare_hierarchy(const ClassBuild& b, const std::string& hierarchy,
                                          std::vector<Admitted>& admitted, int module_index = -1) {
    const RunContext& rc = b.rc;
    const ImageClass cls = b.cls;
    MergeState& state = rc.state;
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
    const MutableMode mode = rc.settings.mutable_mode(cls);
    if (admitted.empty() || (layers.empty() && mode == MutableMode::No)) return p;

    auto current = rc.target.open_hierarchy(hierarchy);
    if (!current && current.error().code() == ENOENT && !layers.empty()) {
        // As systemd-sysext: the merge creates the mount point (at commit,
        // commit.h); until then an empty 0755 directory stands in as the base.
        current = missing_hierarchy_base(rc, cls, hierarchy);
        p.create_mount_point = current.has_value();
    }
    if (!current) {
        log_info() << "hierarchy " << hierarchy << " does not exist in " << rc.target.root_path << " ("
                   << current.error().what() << "), not merging it";
        for (auto& a : admitted) std::erase(state.extensions[a.record].hierarchies, hierarchy);
        return p;
    }
    auto base = base_of(rc, cls, hierarchy, current->get());
    if (!base) return base.error();
    auto base_st = stat_fd(base->get());
    if (!base_st) return Error(EIO) << "cannot inspect " << hierarchy;
    auto rw = mutable_layers(rc.target.root_fd.get(), current->get(), rc.staging, cls, hierarchy, base->get(), mode);
    if (!rw) return rw.error().prefix("mutable " + hierarchy + ": ");
    if (layers.empty() && !rw->writable()) return p;

    std::string meta_name = std::string("meta-") + class_name(cls) + hierarchy;
    std::replace(meta_name.begin(), meta_name.end(), '/', '-');
    auto meta = rc.staging.make_slot(meta_name);
    if (!meta) return meta.error();
    // The topmost layer's root gives the merged hierarchy its owner and
    // mode: make it look like the root's own hierarchy, not a 0700 slot.
    RDEXT_TRY(copy_owner_and_mode(*base_st, meta->get()));
    std::vector<ExtensionRecord> merged;
    for (const auto& a : admitted) merged.push_back(state.extensions[a.record]);
    RDEXT_TRY(write_meta_layer(meta->get(), cls, merged, base_st->st_dev, origin_for(b, rw->work_for_meta, {})));

    OverlaySpec spec;
    spec.source = class_name(cls);
    spec.flags = class_info(cls).overlay_flags;
    if (const auto noexec = rc.settings.noexec) spec.flags = *noexec ? spec.flags | MS_NOEXEC : spec.flags & ~MS_NOEXEC;
    // Every layer goes in as its fd's /proc/self/fd link (stage_image.h):
    // the kernel takes what was checked and walks no path of the root again.
    spec.lowers.push_back(proc_fd_path(meta->get()));
    if (rw->import_dir) spec.lowers.push_back(proc_fd_path(rw->import_dir.get()));
    if (module_index >= 0) spec.lowers.push_back(proc_fd_path(module_index));
    spec.lowers.insert(spec.lowers.end(), layers.begin(), layers.end());
    // A mutable directory linked to the hierarchy makes it the upper layer.
    if (!rw->upper_is_base) spec.lowers.push_back(proc_fd_path(base->get()));
    if (rw->writable()) {
        spec.upper = proc_fd_path(rw->upper.get());
        spec.work = proc_fd_path(rw->work.get());
    }
    auto nested = nest_bottom_if_needed(b, hierarchy, spec);
    if (!nested) return nested.error();
    auto overlay = create_overlay(spec, rc.run.lowerdir_plus_refused);
    if (!overlay) return overlay.error().prefix("overlay for " + hierarchy + ": ");
    auto st = stat_fd(overlay->get());
    if (!st) return st.error();
    // Written after the mount exists (its st_dev is only known now) and
    // before anything looked into it, as systemd-sysext does.
    RDEXT_TRY(write_meta_dev(meta->get(), cls, st->st_dev));
    p.overlay_fd = std::move(*overlay);
    p.writable = rw->writable();
    p.work_dir = rw->work_for_meta;
    p.meta_fd = std::move(*meta);
    p.merged = std::move(merged);
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

// The OS the extensions must fit: the root's own os-release (beneath any
// merge), the scope the merged tree is for, and the architecture the
// kernel runs.
Result<CompatContext> compat_for(const Target& target, Staging& staging) {
    CompatContext compat;
    auto host = read_own_os_release(target, staging);
    if (!host && host.error().code() == EXDEV) return host.error();
    if (!host) return host.error().prefix("cannot read the OS's os-release in " + target.root_path + ": ");
    RDEXT_TRY(check_host_release(*host));
    compat.host = std::move(*host);
    compat.scope = target_scope(target.root_fd.get());
    // As systemd compares it: a 32-bit build on a 64-bit kernel still
    // serves x86-64 extensions.
    compat.architecture = uname_architecture();
    return compat;
}

// Takes an admitted image out of the merge (unmounting it), recording why.
void skip_admitted(std::vector<Admitted>& admitted, size_t i, MergeState& state, const std::string& reason) {
    auto& rec = state.extensions[admitted[i].record];
    rec.result = ExtensionResult::Skipped;
    rec.reason = reason;
    log_warning() << "skipping " << class_name(rec.cls) << " " << admitted[i].candidate->path << ": " << reason;
    admitted.erase(admitted.begin() + static_cast<std::ptrdiff_t>(i));
}

// Sysexts shipping kernel modules for the running kernel: one module index
// over the root's modules and all of theirs (merge/module_index.h), returned
// as a layer for /usr (an O_PATH fd of its slot); none when none ships any. If the index cannot be
// built, those extensions are skipped, the rest merges: merged without it,
// their modules could not be loaded by name, and an index of their own
// would hide the root's, breaking the system's modules too.
Result<UniqueFd> index_extension_modules(const RunContext& rc, std::vector<Admitted>& admitted) {
    const Target& target = rc.target;
    const std::string kver = running_kernel_release();
    std::vector<std::string> layers;
    std::vector<size_t> carriers;  // indexes into admitted, last first
    for (size_t i = admitted.size(); i-- > 0;) {
        auto layer = admitted[i].image.layer_for("/usr");
        if (!layer) return layer.error().prefix(admitted[i].candidate->path + ": ");
        if (layer->empty()) continue;
        layers.push_back(*layer);
        if (admitted[i].image.ships_modules) carriers.push_back(i);
    }
    if (carriers.empty()) return UniqueFd();
    auto current = target.open_hierarchy("/usr");
    if (!current) return UniqueFd();  // /usr is not merged at all then
    // During a refresh, the root's own /usr beneath the current merge.
    auto base = base_of(rc, ImageClass::Sysext, "/usr", current->get());
    if (!base) return base.error();
    layers.push_back(proc_fd_path(base->get()));
    const std::string slot = "modules-sysext-usr";
    auto index = build_module_index(rc.staging, layers, kver, slot, rc.run.lowerdir_plus_refused);
    if (index) {
        log_info() << "merged module index for " << kver << " built over " << carriers.size()
                   << " extension(s) with modules and " << target.root_path << "/usr";
        return open_in_root_nofollow(rc.staging.fd(), slot, O_PATH | O_DIRECTORY);
    }
    for (size_t i : carriers) {
        skip_admitted(admitted, i, rc.state,
                      "ships kernel modules for " + kver + ", but the merged module index cannot be built: " +
                          index.error().what());
    }
    return UniqueFd();
}

// Layers of the hierarchy's overlay that are not images: the metadata
// layer and the base (one nested layer when read-only, see
// nest_bottom_if_needed), an import layer, the module index.
size_t fixed_layers(const Settings& settings, ImageClass cls, const std::string& hierarchy,
                    const std::vector<Admitted>& admitted) {
    const MutableMode mode = settings.mutable_mode(cls);
    size_t n = mode == MutableMode::No ? 1 : 2;
    if (mode == MutableMode::Import || mode == MutableMode::EphemeralImport) n++;
    if (cls == ImageClass::Sysext && hierarchy == "/usr" &&
        std::any_of(admitted.begin(), admitted.end(), [](const Admitted& a) { return a.image.ships_modules; }))
        n++;
    return n;
}

// Overlayfs stacks at most 500 layers. Beyond that the images that sort
// last (the top layers, the ones that win) are merged and the lowest are
// skipped by name, so one extension too many does not fail them all.
void fit_layer_limit(const Settings& settings, ImageClass cls, std::vector<Admitted>& admitted, MergeState& state) {
    const auto& hierarchies = class_info(cls).hierarchies;
    std::vector<size_t> room;
    for (const auto& h : hierarchies) room.push_back(kMaxOverlayLayers - fixed_layers(settings, cls, h, admitted));
    std::vector<size_t> used(hierarchies.size(), 0);
    for (size_t i = admitted.size(); i-- > 0;) {
        std::vector<size_t> has;
        std::optional<size_t> full;
        for (size_t h = 0; h < hierarchies.size(); h++) {
            auto layer = admitted[i].image.layer_for(hierarchies[h]);
            if (!layer || layer->empty()) continue;
            has.push_back(h);
            if (used[h] >= room[h]) full = h;
        }
        if (!full) {
            for (size_t h : has) used[h]++;
            continue;
        }
        skip_admitted(admitted, i, state,
                      "overlayfs stacks at most " + std::to_string(kMaxOverlayLayers) + " layers: " +
                          hierarchies[*full] + " is full with the " + std::to_string(used[*full]) +
                          " extensions that sort after it");
    }
}

// One class's share of a merge. Candidates and admitted images stay alive
// until the commit: the overlays reference their staged mounts.
struct ClassWork {
    std::vector<Candidate> candidates;
    std::vector<Admitted> admitted;
};

// systemd 260's origin object for the class's merge (merge/sysext_origin.h).
std::string systemd_origin_for(const RunContext& rc, ImageClass cls, const std::vector<Admitted>& admitted) {
    std::vector<OriginImage> images;
    const int root_fd = rc.target.root_fd.get();
    for (const auto& a : admitted) {
        const ExtensionRecord& rec = rc.state.extensions[a.record];
        images.push_back({rec.name, systemd_image_path(root_fd, rec.path, rec.versioned_dir), a.image.verity_root_hash});
    }
    return systemd_origin_json(root_fd, cls, rc.settings.mutable_mode(cls), images);
}

Result<void> prepare_class(const RunContext& rc, ImageClass cls, ClassWork& work,
                           std::vector<PreparedOverlay>& overlays) {
    auto found = discover(rc.target.root_fd.get(), cls);
    if (!found) return found.error();
    work.candidates = std::move(*found);
    if (rc.run.refresh()) reopen_beneath_merges(rc.target, rc.staging, work.candidates);
    ClassBuild b{rc, cls, inputs_fingerprint(rc.target, rc.settings, cls, work.candidates)};
    work.admitted = admit_all(rc, work.candidates);
    fit_layer_limit(rc.settings, cls, work.admitted, rc.state);
    UniqueFd module_index;
    if (cls == ImageClass::Sysext) {
        auto m = index_extension_modules(rc, work.admitted);
        if (!m) return m.error();
        module_index = std::move(*m);
    }
    const size_t first = overlays.size();
    std::vector<std::string> covered;
    for (const auto& h : class_info(cls).hierarchies) {
        auto p = prepare_hierarchy(b, h, work.admitted, h == "/usr" ? module_index.get() : -1);
        if (!p) return p.error();
        if (p->overlay_fd) covered.push_back(h);
        overlays.push_back(std::move(*p));
    }
    // Every hierarchy's origin names them all: a refresh compares the set.
    const std::string systemd_origin = systemd_origin_for(rc, cls, work.admitted);
    for (size_t i = first; i < overlays.size(); i++) {
        auto& p = overlays[i];
        if (p.overlay_fd)
            RDEXT_TRY(write_meta_origin(p.meta_fd.get(), cls, p.merged, origin_for(b, p.work_dir, covered),
                                        systemd_origin));
    }
    return {};
}

// Builds and commits the merge, recording it in `state` (operation preset
// by the caller). `previous` is state.json's record of the merge before;
// boot counting updates it. state.json is written by merge().
Result<void> merge_fresh(const Target& target, const Settings& settings, Run& run, MergeState& state,
                         std::optional<MergeState>& previous) {
    const bool refresh = run.refresh();
    state.extensions.clear();
    if (!refresh)
        for (ImageClass cls : all_classes())
            if (settings.class_enabled(cls)) RDEXT_TRY(refuse_if_merged(target, cls));
    auto runtime = target.runtime_dir(true);
    if (!runtime) return runtime.error();
    // Before discovery: /var/lib/extensions may live on it.
    auto var = mount_var_from_fstab(target);
    if (!var) return var.error();
    raise_fd_limit();
    auto staging = Staging::create(runtime->get());
    if (!staging) return staging.error();
    auto compat = compat_for(target, *staging);
    if (!compat) return compat.error();
    run.loop_reuse = refresh ? std::make_unique<LoopReuse>() : nullptr;
    // Boot counting: renames the last merge could not do on a read-only root.
    if (previous) retry_pending_trials(target.root_fd.get(), *previous);
    const RunContext rc{target, settings, *staging, *compat, state, run};

    std::vector<ClassWork> work(all_classes().size());
    std::vector<PreparedOverlay> overlays;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) {
            log_info() << class_name(cls) << " merging is switched off by " << settings.of(cls).disabled_by;
            continue;
        }
        RDEXT_TRY(prepare_class(rc, cls, work[static_cast<size_t>(cls)], overlays));
    }
    // A required extension that is missing fails the run before anything
    // becomes visible; the record still says why, for `rdext status`.
    if (auto missing = missing_required(state, settings); !missing.empty())
        return Error(ENOENT) << "required extension not merged: " << join(missing, "; ");
    RDEXT_TRY(refresh ? swap_overlays(target, overlays, run) : commit_overlays(target, overlays));
    var->keep();
    // Merged: the overlays hold the loop and dm devices now; autoclear and
    // deferred removal free each when its last user goes.
    for (auto& w : work)
        for (auto& a : w.admitted) a.image.relinquish();
    // Each merged trial entry has used up one try of this boot.
    count_trials(target.root_fd.get(), previous ? &*previous : nullptr, state);
    if (run.fell_back) state.operation = "refresh-fallback";
    return {};
}

// A merge with something mounted over it is not rdext's to take off or to
// stack another merge on (the old one would stay below): merge, refresh and
// unmerge all refuse, before anything changes.
Result<void> refuse_covered_merges(const Target& target, const Settings& settings) {
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        for (const auto& h : class_info(cls).hierarchies) RDEXT_TRY(refuse_if_covered(target, cls, h));
    }
    return {};
}

// A refresh that cannot reach the root's own hierarchies beneath the
// current merge (a hierarchy that is a file system of its own) takes the
// current merge off and merges again; a copy of the old merge is kept so a
// failed merge can put it back.
Result<void> refresh_by_unmerging(const Target& target, const Settings& settings, Run& run, MergeState& state,
                                  std::optional<MergeState>& previous) {
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
    // Nothing is merged now: the rest of the run merges afresh, the
    // refresh's fallback (a short gap).
    run.mode = MergeMode::Merge;
    state.operation = "refresh-fallback";
    auto r = merge_fresh(target, settings, run, state, previous);
    if (!r) restore_merges(target, saved);
    return r;
}

// Nothing to do when every enabled class's merge was made from exactly what
// the root offers now (origin files); decided without mounting anything.
bool nothing_changed(const Target& target, const Settings& settings) {
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        auto same = class_unchanged(target, settings, cls);
        if (!same) log_debug() << "cannot compare the " << class_name(cls) << " merge: " << same.error().what();
        if (!same || !*same) return false;
    }
    return true;
}

// Whether any hierarchy of the class carries a merge (rdext's or systemd-sysext's).
bool class_merged(const Target& target, ImageClass cls) {
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        if (auto m = read_merged(fd->get(), cls); m && m->merged) return true;
    }
    return false;
}

bool anything_merged(const Target& target, const Settings& settings) {
    for (ImageClass cls : all_classes())
        if (settings.class_enabled(cls) && class_merged(target, cls)) return true;
    return false;
}

std::vector<ClassRecord> class_records(const Settings& settings) {
    std::vector<ClassRecord> out;
    for (ImageClass cls : all_classes()) {
        const bool on = settings.class_enabled(cls);
        out.push_back({cls, on, on ? "" : "switched off by " + settings.of(cls).disabled_by});
    }
    return out;
}

// state.json describes what is mounted: per class, the records of this
// operation when it merged the class, else (it failed, or the class is
// switched off) those of the merge that stays mounted; a failed operation
// that left the class unmerged records nothing of it as merged.
void keep_mounted_records(const Target& target, const std::optional<MergeState>& previous, MergeState& state) {
    std::vector<ExtensionRecord> out;
    const bool failed = !state.failure.empty();
    for (ImageClass cls : all_classes()) {
        const bool replaced = !failed && state.classes[static_cast<size_t>(cls)].enabled;
        const bool keep = !replaced && previous && class_merged(target, cls);
        for (const auto& r : keep ? previous->extensions : state.extensions) {
            if (r.cls != cls) continue;
            out.push_back(r);
            if (!keep && failed && r.result == ExtensionResult::Merged) {
                out.back().result = ExtensionResult::Skipped;
                out.back().reason = "the " + state.operation + " failed";
                out.back().hierarchies.clear();
            }
        }
    }
    state.extensions = std::move(out);
}

void record_state(const Target& target, const std::optional<MergeState>& previous, MergeState& state) {
    keep_mounted_records(target, previous, state);
    auto runtime = target.runtime_dir(true);
    auto w = runtime ? write_state(runtime->get(), state) : Result<void>(runtime.error());
    if (!w) log_warning() << "cannot record the " << state.operation << " in state.json: " << w.error().what();
}

std::optional<MergeState> read_previous(const Target& target) {
    if (auto runtime = target.runtime_dir(false); runtime)
        if (auto s = read_state(runtime->get()); s) return std::move(*s);
    return std::nullopt;
}

// A refresh builds the new merge out of sight, its bottom layers the root's
// own hierarchies reached beneath the current merge, and swaps it in
// (commit.h: swap_overlays). A refresh of an unmerged root is a merge.
Result<void> merge_or_refresh(const Target& target, const Settings& settings, MergeMode mode, MergeState& state,
                              std::optional<MergeState>& previous) {
    RDEXT_TRY(refuse_covered_merges(target, settings));
    if (mode == MergeMode::Refresh && !anything_merged(target, settings)) {
        log_info() << "refresh: nothing is merged, merging";
        mode = MergeMode::Merge;
        state.operation = "merge";
    }
    Run run;
    run.mode = mode;
    if (mode == MergeMode::Merge) return merge_fresh(target, settings, run, state, previous);
    if (!settings.always_refresh && nothing_changed(target, settings)) {
        log_info() << "nothing changed since the last merge, not refreshing";
        if (previous) state.extensions = previous->extensions;
        state.operation = "unchanged";
        return {};
    }
    auto r = merge_fresh(target, settings, run, state, previous);
    if (!r && r.error().code() == EXDEV) {
        log_warning() << r.error().message() << "; refreshing by unmerging first (a short gap)";
        return refresh_by_unmerging(target, settings, run, state, previous);
    }
    return r;
}

// The records of what is merged on the class's hierarchies now, as their
// merge recorded them (bare names for a merge without a record).
void add_merged_records(const Target& target, ImageClass cls, const std::optional<MergeState>& previous,
                        MergeState& record) {
    std::vector<std::string> names;
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        auto m = fd ? read_merged(fd->get(), cls) : Result<MergedHierarchy>(fd.error());
        if (!m || !m->merged) continue;
        for (const auto& n : m->extensions)
            if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    for (const auto& n : names) {
        ExtensionRecord bare;
        bare.name = n;
        bare.cls = cls;
        bare.result = ExtensionResult::Merged;
        const ExtensionRecord* known = &bare;
        if (previous)
            for (const auto& r : previous->extensions)
                if (r.name == n && r.cls == cls && r.result == ExtensionResult::Merged) known = &r;
        record.extensions.push_back(*known);
    }
}

Result<void> unmerge_classes(const Target& target, const Settings& settings, const std::optional<MergeState>& previous,
                             MergeState& record) {
    RDEXT_TRY(refuse_covered_merges(target, settings));
    Result<void> result;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        add_merged_records(target, cls, previous, record);
        for (const auto& h : class_info(cls).hierarchies) {
            auto r = unmerge_hierarchy(target, cls, h);
            if (!r && result) result = r.error();
        }
    }
    return result;
}

}  // namespace

MergeState merge(const Target& target, const Settings& settings, MergeMode mode) {
    MergeState state = new_record(mode == MergeMode::Merge ? "merge" : "refresh", target.root_path);
    state.classes = class_records(settings);
    std::optional<MergeState> previous = read_previous(target);
    if (auto r = merge_or_refresh(target, settings, mode, state, previous); !r) state.failure = r.error().what();
    record_state(target, previous, state);
    return state;
}

std::vector<std::string> missing_required(const MergeState& state, const Settings& settings) {
    std::vector<std::string> missing;
    for (ImageClass cls : all_classes())
        for (const auto& name : settings.required(cls)) {
            std::string why = "not found";
            bool merged = false;
            for (const auto& r : state.extensions)
                if (r.name == name && r.cls == cls) {
                    merged = r.result == ExtensionResult::Merged;
                    why = extension_result_name(r.result) + (r.reason.empty() ? "" : ": " + r.reason);
                }
            if (!settings.class_enabled(cls)) why = std::string(class_name(cls)) + " merging is switched off by " + settings.of(cls).disabled_by;
            if (!merged) missing.push_back(std::string(class_name(cls)) + " " + name + " (" + why + ")");
        }
    return missing;
}

MergeState unmerge(const Target& target, const Settings& settings) {
    MergeState record = new_record("unmerge", target.root_path);
    record.classes = class_records(settings);
    const std::optional<MergeState> previous = read_previous(target);
    if (auto r = unmerge_classes(target, settings, previous, record); !r) record.failure = r.error().what();
    // state.json keeps the records of what stays merged (a class switched
    // off, a hierarchy that could not be unmerged) and a failure.
    MergeState rest = record;
    rest.extensions.clear();
    for (ImageClass cls : all_classes())
        if (previous && class_merged(target, cls))
            for (const auto& r : previous->extensions)
                if (r.cls == cls) rest.extensions.push_back(r);
    if (auto runtime = target.runtime_dir(false); runtime) {
        if (rest.extensions.empty() && rest.failure.empty())
            (void)remove_state(runtime->get());
        else if (auto w = write_state(runtime->get(), rest); !w)
            log_warning() << "cannot record the unmerge in state.json: " << w.error().what();
    }
    return record;
}

}  // namespace rdext
