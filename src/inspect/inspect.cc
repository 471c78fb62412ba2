#include "inspect/inspect.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "discover/discover.h"
#include "inspect/image_tree.h"
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
Result<TrustStore> load_trust(const InspectRequest& req, InspectReport& report) {
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
        report.trust_source = join(req.certificates, ", ");
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
    report.trust_source = names.empty() ? "no verity.d directory" : join(names, ", ");
    report.trust_warnings = loaded->warnings;
    return std::move(*loaded);
}

// The OS the image must fit, as merge sees it for this root.
Result<CompatContext> compat_context(const InspectRequest& req, const Target& target, InspectReport& report) {
    CompatContext ctx;
    if (req.os_release) {
        auto fd = open_path(*req.os_release, O_RDONLY | O_NONBLOCK | O_NOCTTY);
        if (!fd) return fd.error().prefix("os-release: ");
        auto fields = read_release_fd(fd->get(), *req.os_release);
        if (!fields) return fields.error();
        ctx.host = std::move(*fields);
        report.os_release_source = *req.os_release;
    } else {
        auto fields = read_host_os_release(target.root_fd.get());
        if (!fields) return fields.error().prefix("os-release of " + target.root_path + ": ");
        ctx.host = std::move(*fields);
        report.os_release_source = target.root_path + (target.root_path == "/" ? "" : "/") + "etc/os-release";
    }
    ctx.scope = target_scope(target.root_fd.get());
    ctx.architecture = uname_architecture();
    return ctx;
}

// Records why the image would be refused; the first reason stands.
void note(InspectReport& report, const std::string& why) {
    if (report.image_error.empty()) report.image_error = why;
}

const char* layout_name(const ImageLayout& l) {
    return l.kind == ImageLayoutKind::Gpt ? "GPT disk image" : "file system";
}

// The image's sidecars, next to the file it resolves to.
Result<VeritySidecars> sidecars_of(int fd) {
    auto path = fd_path(fd);
    if (!path) return path.error();
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    return find_verity_sidecars_in_root(slash->get(), *path, fd);
}

// The image planned as merge plans it (verity/plan.h).
Result<ImagePlan> plan_file(int file_fd, bool is_file, InspectReport& report) {
    auto layout = probe_image(file_fd);
    if (!layout) return layout.error();
    report.layout = layout_name(*layout);
    report.fstype = layout->root ? layout->root->fstype : layout->usr->fstype;
    report.partitions = *layout;
    VeritySidecars sc;
    if (is_file) {
        auto found = sidecars_of(file_fd);
        if (!found) return found.error();
        sc = std::move(*found);
    }
    return plan_image(file_fd, is_file, std::move(*layout), std::move(sc));
}

// Probes a raw image, assesses its protection and mounts it privately.
// Problems are recorded in report.image_error; the tree is empty when the
// image could not be mounted.
ImageTree open_raw_image(int path_fd, bool is_file, const TrustStore& trust, InspectReport& report) {
    auto fail = [&](const Error& e, const std::string& what) {
        note(report, what + e.what());
        return ImageTree();
    };
    auto file = open_path(proc_fd_path(path_fd), O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!file) return fail(file.error(), "cannot open: ");
    auto plan = plan_file(file->get(), is_file, report);
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

// Release files and, per class found, the compatibility and policy verdicts.
void judge_classes(const ImageTree& tree, const CompatContext& compat, const PolicyConfig& policy,
                   InspectReport& report) {
    std::string conflict;
    for (ImageClass cls : all_classes())
        if (auto why = os_release_conflict(tree.fd(), cls); !why.empty() && why != conflict) {
            note(report, std::string(class_name(cls)) + ": " + why);
            conflict = why;
        }
    for (ImageClass cls : all_classes()) {
        auto release = read_extension_release(tree.fd(), cls, report.name);
        if (!release) {
            if (release.error().code() == ENOENT) continue;
            note(report, release.error().what());
            return;
        }
        ClassFindings f;
        f.cls = cls;
        f.release = std::move(*release);
        if (auto r = check_compatible(cls, report.name, f.release, compat); !r) f.compat_error = r.error().what();
        ResolvedPolicy resolved = resolve_policy(policy, cls, report.name);
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

Result<InspectReport> inspect_image(const InspectRequest& req, const Target& target, const PolicyConfig& policy) {
    InspectReport report;
    report.image = req.image;
    auto path_fd = open_path(req.image, O_PATH);
    if (!path_fd) return path_fd.error().prefix("image ");  // the error names it
    auto st = stat_fd(path_fd->get());
    if (!st) return st.error();
    if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
        return Error(EINVAL) << "image " << req.image << " is not a directory, regular file or block device";
    report.name = S_ISREG(st->st_mode) ? raw_image_name(base_name(req.image)) : base_name(req.image);
    auto trust = load_trust(req, report);
    if (!trust) return trust.error();
    auto compat = compat_context(req, target, report);
    if (!compat) return compat.error();

    ImageTree tree;
    if (S_ISDIR(st->st_mode)) {
        report.layout = "directory";
        // A directory has no partitions and no protection.
        report.offered.push_back({Designator::Root, ImageState::Unprotected, ""});
        auto t = ImageTree::open_directory(path_fd->get());
        if (!t) note(report, "cannot bind: " + t.error().what());
        else tree = std::move(*t);
    } else {
        tree = open_raw_image(path_fd->get(), S_ISREG(st->st_mode), *trust, report);
    }
    if (tree.fd() >= 0) judge_classes(tree, *compat, policy, report);
    return report;
}

}  // namespace rdext
