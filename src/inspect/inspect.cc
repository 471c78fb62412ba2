#include "inspect/inspect.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "discover/discover.h"
#include "inspect/image_tree.h"
#include "record/candidate_record.h"
#include "record/versioned_record.h"
#include "mount/stage_image.h"
#include "release/compat.h"
#include "release/extension_release.h"
#include "release/release_architecture.h"
#include "verity/sidecar.h"

namespace rdext {
namespace {

constexpr size_t kCertificateMaxBytes = 1024 * 1024;

std::string base_name(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The trust anchors: the certificates named on the command line, else
// those merge would use here (the running system's verity.d).
Result<TrustStore> load_trust(const InspectRequest& req, InspectContext& ctx) {
    TrustStore store;
    if (!req.certificates.empty()) {
        for (const auto& file : req.certificates) {
            auto fd = open_path(file, O_RDONLY | O_NONBLOCK | O_NOCTTY);
            if (!fd) return fd.error().prefix("certificate ");  // the error names it
            auto pem = read_regular_file(fd->get(), kCertificateMaxBytes);
            if (!pem) return pem.error().prefix("certificate " + file + ": ");
            auto cert = parse_pem_certificate(*pem, file);
            if (!cert) return cert.error().prefix("certificate " + file + ": ");
            store.certificates.push_back(std::move(*cert));
        }
        ctx.trust_source = join(req.certificates, ", ");
        return store;
    }
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    auto dirs = open_verity_dirs(slash->get());
    if (!dirs) return dirs.error().prefix("verity.d: ");
    auto loaded = load_trusted_certificates(*dirs);
    if (!loaded) return loaded.error().prefix("verity.d: ");
    std::vector<std::string> names;
    for (const auto& d : *dirs) names.push_back(d.path);
    ctx.trust_source = names.empty() ? "no verity.d directory" : join(names, ", ");
    ctx.trust_warnings = loaded->warnings;
    return std::move(*loaded);
}

// The OS the image must fit, as merge sees it for this root.
Result<CompatContext> compat_context(const InspectRequest& req, const Target& target, InspectContext& ctx) {
    CompatContext compat;
    if (req.os_release) {
        auto fd = open_path(*req.os_release, O_RDONLY | O_NONBLOCK | O_NOCTTY);
        if (!fd) return fd.error().prefix("os-release: ");
        auto fields = read_release_fd(fd->get(), *req.os_release);
        if (!fields) return fields.error();
        compat.host = std::move(*fields);
        ctx.os_release_source = *req.os_release;
    } else {
        auto fields = read_host_os_release(target.root_fd.get());
        if (!fields) return fields.error().prefix("os-release of " + target.root_path + ": ");
        compat.host = std::move(*fields);
        ctx.os_release_source = target.root_path + (target.root_path == "/" ? "" : "/") + "etc/os-release";
    }
    compat.scope = target_scope(target.root_fd.get());
    compat.architecture = uname_architecture();
    return compat;
}

// Records why the image would be refused; the first reason stands.
void note(InspectReport& report, const std::string& why) {
    if (report.image_error.empty()) report.image_error = why;
}

const char* layout_name(const ImageLayout& l) {
    return l.kind == ImageLayoutKind::Gpt ? "GPT disk image" : "file system";
}

// The sidecars next to the file the candidate resolves to, as staging
// finds them (mount/stage_image.cc): from the search directory's listing,
// else beside the file the path leads to inside the root.
Result<VeritySidecars> sidecars_of(const Candidate& c, int file_fd) {
    if (c.siblings)
        return find_verity_sidecars(c.siblings->fd.get(), c.path.substr(c.path.rfind('/') + 1), file_fd,
                                    &c.siblings->names);
    return find_verity_sidecars_in_root(c.root_fd, c.path, file_fd);
}

// The image planned as merge plans it (verity/plan.h).
Result<ImagePlan> plan_file(const Candidate& c, int file_fd, InspectReport& report) {
    auto layout = probe_image(file_fd);
    if (!layout) return layout.error();
    report.layout = layout_name(*layout);
    report.fstype = layout->root ? layout->root->fstype : layout->usr->fstype;
    report.partitions = *layout;
    VeritySidecars sc;
    if (c.kind == ImageKind::Raw) {
        auto found = sidecars_of(c, file_fd);
        if (!found) return found.error();
        sc = std::move(*found);
    }
    return plan_image(file_fd, c.kind == ImageKind::Raw, std::move(*layout), std::move(sc));
}

// Probes a raw image, assesses its protection and mounts it privately.
// Problems are recorded in report.image_error; the tree is empty when the
// image could not be mounted.
ImageTree open_raw_image(const Candidate& c, const TrustStore& trust, InspectReport& report) {
    auto fail = [&](const Error& e, const std::string& what) {
        note(report, what + e.what());
        return ImageTree();
    };
    auto file = open_candidate_image(c, O_RDONLY | O_NONBLOCK);
    if (!file) return fail(file.error(), "cannot open: ");
    auto plan = plan_file(c, file->get(), report);
    if (!plan) return fail(plan.error(), "");
    report.protection = assess_protection(*plan, trust);
    std::vector<ImageState> states;
    for (const auto& p : report.protection) states.push_back(p.state());
    report.offered = plan->offer(states);
    // A hash tree that does not match refuses the image, but its contents
    // are still worth reporting.
    for (const auto& p : report.protection)
        if (p.hash_tree == HashTreeCheck::Failed)
            note(report, std::string(designator_name(p.designator)) + ": " + p.hash_tree_detail);
    auto tree = ImageTree::open_raw(*plan);
    if (!tree) return fail(tree.error(), "cannot mount: ");
    return std::move(*tree);
}

// Release files and, per class judged, the compatibility and policy
// verdicts: `classes` are the candidate's own, or every class for an image
// inspect was given by path.
void judge_classes(const ImageTree& tree, const InspectContext& ctx, const std::vector<ImageClass>& classes,
                   InspectReport& report) {
    std::string conflict;
    for (ImageClass cls : classes)
        if (auto why = os_release_conflict(tree.fd(), cls); !why.empty() && why != conflict) {
            note(report, std::string(class_name(cls)) + ": " + why);
            conflict = why;
        }
    for (ImageClass cls : classes) {
        auto release = read_extension_release(tree.fd(), cls, report.name);
        if (!release) {
            if (release.error().code() == ENOENT) continue;
            note(report, release.error().what());
            return;
        }
        ClassFindings f;
        f.cls = cls;
        f.release = std::move(*release);
        if (auto r = check_compatible(cls, report.name, f.release, ctx.compat); !r) f.compat_error = r.error().what();
        ResolvedPolicy resolved = resolve_policy(ctx.settings->policy, cls, report.name);
        f.policy = resolved.policy.to_string();
        f.policy_source = resolved.source;
        PolicyVerdict v = evaluate_image(resolved.policy, report.offered);
        if (!v.accepted()) f.policy_error = v.reason;
        report.classes.push_back(std::move(f));
    }
    if (report.classes.empty())
        note(report, "no extension-release." + report.name + " in /usr/lib/extension-release.d (sysext) or " +
                             "/etc/extension-release.d (confext)");
}

// The path as given, absolute (a relative one from the working directory):
// the image is then found inside "/" as the merge finds one in its root.
std::string absolute_path(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (!p.empty() && p[0] == '/') return p;
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof(cwd))) return p;
    return std::string(cwd) + (std::string(cwd) == "/" ? "" : "/") + p;
}

// The class a versioned directory's name says ("foo.confext.raw.v"); a
// sysext otherwise, as one in /var/lib/extensions would be.
ImageClass class_of_versioned_name(const std::string& dir) {
    return dir.find(".confext.") != std::string::npos ? ImageClass::Confext : ImageClass::Sysext;
}

// An image given by path, as a candidate discovery would have made of it.
// An entry of a versioned directory is named after the directory (a merge
// merges it as NAME); one whose name the merge would ignore says why.
Candidate candidate_for_path(const InspectContext& ctx, const std::string& path, UniqueFd fd, const struct stat& st,
                             InspectReport& report) {
    Candidate c;
    c.root_fd = ctx.host_root.get();
    c.path = path;
    c.kind = S_ISDIR(st.st_mode) ? ImageKind::Directory : S_ISREG(st.st_mode) ? ImageKind::Raw : ImageKind::Block;
    c.fd = std::make_shared<UniqueFd>(std::move(fd));
    const std::string file = base_name(path);
    c.name = c.kind == ImageKind::Raw ? raw_image_name(file) : file;
    const std::string parent = path.substr(0, path.rfind('/'));
    const std::string dir = base_name(parent);
    if (!ends_with(dir, ".v")) return c;
    c.cls = class_of_versioned_name(dir);
    auto dn = parse_versioned_dir_name(dir, c.cls);
    if (!dn) return c;
    c.name = dn->name;
    report.versioned_dir = parent;
    auto entry = parse_versioned_entry(file, *dn, local_architectures());
    if (!entry)
        note(report, "a merge ignores this entry of " + parent + ": " + entry.error().what());
    else
        report.version = entry->version;
    return c;
}

}  // namespace

bool InspectReport::accepted() const {
    if (!image_error.empty() || classes.empty()) return false;
    for (const auto& c : classes)
        if (!c.accepted()) return false;
    return true;
}

std::string InspectReport::reason() const {
    if (!image_error.empty()) return name + ": " + image_error;
    for (const auto& c : classes) {
        std::string who = name + " (" + class_name(c.cls) + "): ";
        if (!c.policy_error.empty())
            return who + "refused by image policy " + c.policy + " (from " + c.policy_source + "): " + c.policy_error;
        if (!c.compat_error.empty()) return who + c.compat_error;
    }
    return name + ": accepted";
}

Result<InspectContext> inspect_context(const InspectRequest& req, const Target& target, const Settings& settings) {
    InspectContext ctx;
    ctx.settings = &settings;
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    ctx.host_root = std::move(*slash);
    auto trust = load_trust(req, ctx);
    if (!trust) return trust.error();
    ctx.trust = std::move(*trust);
    auto compat = compat_context(req, target, ctx);
    if (!compat) return compat.error();
    ctx.compat = std::move(*compat);
    return ctx;
}

InspectReport inspect_candidate(const InspectContext& ctx, const Candidate& c) {
    InspectReport report;
    report.path = c.path;
    report.name = c.name;
    report.kind = kind_name(c.kind);
    report.trust_source = ctx.trust_source;
    report.trust_warnings = ctx.trust_warnings;
    report.os_release_source = ctx.os_release_source;
    if (!ctx.any_class)
        if (auto r = check_block_device_allowed(c, *ctx.settings); !r) note(report, r.error().what());
    ImageTree tree;
    if (c.kind == ImageKind::Directory) {
        report.layout = "directory";
        // A directory has no partitions and no protection.
        report.offered.push_back({Designator::Root, ImageState::Unprotected, ""});
        auto t = ImageTree::open_directory(c.fd->get());
        if (!t) note(report, "cannot bind: " + t.error().what());
        else tree = std::move(*t);
    } else {
        tree = open_raw_image(c, ctx.trust, report);
    }
    std::vector<ImageClass> classes{c.cls};
    if (ctx.any_class) classes.assign(all_classes().begin(), all_classes().end());
    if (tree.fd() >= 0) judge_classes(tree, ctx, classes, report);
    return report;
}

InspectReport inspect_versioned(const InspectContext& ctx, const Candidate& c, ExtensionRecord& rec) {
    start_versioned_record(c, rec);
    std::optional<InspectReport> chosen;
    std::vector<VersionedEntry> ranked;
    for (const auto& img : c.versioned->ranked) ranked.push_back(img.entry);
    auto try_entry = [&](size_t k) -> Result<void> {
        InspectReport r = inspect_candidate(ctx, versioned_entry_candidate(c, k));
        if (!r.accepted()) return Error(EPERM) << r.reason();
        chosen = std::move(r);
        return {};
    };
    const std::string pin = ctx.settings->pinned(c.cls, c.name);
    Selection sel = select_entry(ranked, pin, try_entry);
    record_selection(c, sel, pin, rec);
    InspectReport report;
    if (sel.chosen && chosen) {
        report = std::move(*chosen);
        report.version = c.versioned->ranked[*sel.chosen].entry.version;
        rec.path = report.path;
        rec.kind = report.kind;
    } else {
        report.path = c.path;
        report.name = c.name;
        report.kind = kind_name(c.kind);
        report.trust_source = ctx.trust_source;
        report.os_release_source = ctx.os_release_source;
        note(report, no_entry_fits(c, sel));
    }
    report.versioned_dir = c.versioned->path;
    report.candidates = rec.candidates;
    report.notes = rec.notes;
    return report;
}

Result<InspectReport> inspect_image(const InspectRequest& req, const Target& target, const Settings& settings) {
    auto path_fd = open_path(req.image, O_PATH);
    if (!path_fd) return path_fd.error().prefix("image ");  // the error names it
    auto st = stat_fd(path_fd->get());
    if (!st) return st.error();
    if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
        return Error(EINVAL) << "image " << req.image << " is not a directory, regular file or block device";
    auto ctx = inspect_context(req, target, settings);
    if (!ctx) return ctx.error();
    ctx->any_class = true;
    const std::string path = absolute_path(req.image);
    if (S_ISDIR(st->st_mode) && ends_with(path, ".v")) {
        const ImageClass cls = class_of_versioned_name(base_name(path));
        Candidate c = discover_versioned(ctx->host_root.get(), path, cls);
        ExtensionRecord rec = record_for(c);
        if (c.state == EntryState::Available) return inspect_versioned(*ctx, c, rec);
        InspectReport report;
        report.path = path;
        report.name = c.name;
        report.kind = kind_name(c.kind);
        report.versioned_dir = path;
        report.trust_source = ctx->trust_source;
        report.os_release_source = ctx->os_release_source;
        if (c.versioned) start_versioned_record(c, rec);
        report.candidates = rec.candidates;
        note(report, c.reason);
        return report;
    }
    InspectReport report;
    Candidate c = candidate_for_path(*ctx, path, std::move(*path_fd), *st, report);
    InspectReport judged = inspect_candidate(*ctx, c);
    judged.versioned_dir = report.versioned_dir;
    judged.version = report.version;
    if (!report.image_error.empty()) judged.image_error = report.image_error;
    return judged;
}

}  // namespace rdext
