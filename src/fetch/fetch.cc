#include "fetch/fetch.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <memory>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "discover/discover.h"
#include "fetch/manifest.h"
#include "fetch/source.h"
#include "fetch/transfer.h"
#include "fetch/verify.h"
#include "inspect/inspect.h"
#include "release/version.h"
#include "state/metadata.h"
#include "state/state_file.h"

namespace rdext {
namespace {

constexpr size_t kMaxSignatureSize = 64 * 1024;

struct Ctx {
    const Target& target;
    const Settings& settings;
    const FetchOptions& options;
    Deadline deadline;
    std::optional<std::string> keyring;
    std::optional<InspectContext> inspect;
    std::set<std::string> in_use;  // "MAJ:MIN:INO" of the images merged now
};

// The images merged now, from the record of the merge that is mounted.
std::set<std::string> images_in_use(const Target& target) {
    std::set<std::string> out;
    auto runtime = target.runtime_dir(false);
    if (!runtime) return out;
    auto state = read_state(runtime->get());
    if (!state) return out;
    for (const auto& rec : state->extensions) {
        if (rec.result != ExtensionResult::Merged) continue;
        bool merged = false;
        for (const auto& h : class_info(rec.cls).hierarchies)
            if (auto fd = target.open_hierarchy(h))
                if (auto m = read_merged(fd->get(), rec.cls); m && m->merged) merged = true;
        if (merged) out.insert(rec.identity.substr(0, rec.identity.find('@')));
    }
    return out;
}

std::string file_identity(int dir_fd, const std::string& name) {
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return "";
    return format_devnum(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// A temporary name discovery passes over (discover/discover.h).
std::string partial_name(const std::string& final_name) {
    unsigned char r[6];
    if (::getrandom(r, sizeof r, 0) != sizeof r) return ".#" + final_name + ".000000" + kPartialSuffix;
    static const char* kChars = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string s;
    for (unsigned char c : r) s += kChars[c % 36];
    return ".#" + final_name + "." + s + kPartialSuffix;
}

// Streams into a file and hashes what it writes.
class HashingFile : public Sink {
public:
    HashingFile(int fd, std::string what) : fd_(fd), what_(std::move(what)), md_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
        EVP_DigestInit_ex(md_.get(), EVP_sha256(), nullptr);
    }
    Result<void> write(const char* data, size_t size) override {
        EVP_DigestUpdate(md_.get(), data, size);
        while (size > 0) {
            ssize_t n = ::write(fd_, data, size);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == ENOSPC) return Error(ENOSPC) << what_ << ": no space left in the target directory";
            if (n < 0) return ErrnoError() << "write " << what_;
            data += n;
            size -= static_cast<size_t>(n);
        }
        return {};
    }
    std::string hex() {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_DigestFinal_ex(md_.get(), d, &len);
        static const char* kHex = "0123456789abcdef";
        std::string s;
        for (unsigned i = 0; i < len; i++) s += {kHex[d[i] >> 4], kHex[d[i] & 15]};
        return s;
    }

private:
    int fd_;
    std::string what_;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md_;
};

// A directory inside the root, created (mode 0755) where missing.
Result<UniqueFd> ensure_dir(int root_fd, const std::string& path) {
    auto fd = open_in_root(root_fd, path, O_RDONLY | O_DIRECTORY);
    if (fd || fd.error().code() != ENOENT) return fd;
    std::string prefix;
    for (const auto& part : split(path.substr(1), '/')) {
        const std::string parent = prefix.empty() ? "/" : prefix;
        prefix += "/" + part;
        if (open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY)) continue;
        auto pfd = open_in_root(root_fd, parent, O_PATH | O_DIRECTORY);
        if (!pfd) return pfd.error();
        RDEXT_TRY(make_dir(pfd->get(), part, 0755));
    }
    return open_in_root(root_fd, path, O_RDONLY | O_DIRECTORY);
}

void remove_partials(int dir_fd, const std::string& dir) {
    auto names = list_directory(dir_fd);
    if (!names) return;
    for (const auto& n : *names)
        if (is_partial_download(n) && ::unlinkat(dir_fd, n.c_str(), 0) == 0)
            log_info() << "removed " << dir << "/" << n << ", left by an interrupted fetch";
}

// A small file of the source and, when verifying, its detached signature
// (NAME.gpg). ENOENT when the source has no NAME.
Result<std::string> read_verified(Ctx& ctx, const Transfer& t, Source& src, const std::string& name) {
    auto text = src.read_small(name, kMaxManifestSize, ctx.deadline);
    if (!text || !t.verify) return text;
    const std::string what = src.describe() + (ends_with(src.describe(), "/") ? "" : "/") + name;
    if (!ctx.keyring)
        return Error(EPERM) << what << ": Verify=yes, but there is no keyring (--keyring=, /etc/rdext/fetch-keyring.gpg, "
                                       "/usr/lib/rdext/fetch-keyring.gpg)";
    auto sig = src.read_small(name + ".gpg", kMaxSignatureSize, ctx.deadline);
    if (!sig && sig.error().code() == ENOENT)
        return Error(EPERM) << what << ".gpg is missing: with Verify=yes " << name << " must be signed";
    if (!sig) return sig.error();
    RDEXT_TRY(verify_signature(*ctx.keyring, *text, *sig, what));
    return text;
}

// The relative link text from directory `from` to `to` (both absolute).
std::string relative_link(const std::string& from, const std::string& to) {
    auto a = split(from.substr(1), '/'), b = split(to.substr(1), '/');
    if (from == "/") a.clear();
    size_t common = 0;
    while (common < a.size() && common + 1 < b.size() && a[common] == b[common]) common++;
    std::string out;
    for (size_t i = common; i < a.size(); i++) out += "../";
    for (size_t i = common; i < b.size(); i++) out += b[i] + (i + 1 < b.size() ? "/" : "");
    return out;
}


std::string read_link(int dir_fd, const std::string& name) {
    char buf[PATH_MAX];
    ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof buf - 1);
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// Replaces the link atomically: a new link at a partial name, renamed over it.
Result<void> point_link(int root_fd, const std::string& link, const std::string& text) {
    auto dir = ensure_dir(root_fd, dirname_of(link));
    if (!dir) return dir.error();
    const std::string name = basename_of(link);
    struct stat st;
    if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISLNK(st.st_mode)) return Error(EEXIST) << link << " is not a symlink; rdext fetch does not replace it";
        if (read_link(dir->get(), name) == text) return {};
    }
    const std::string tmp = partial_name(name);
    if (::symlinkat(text.c_str(), dir->get(), tmp.c_str()) < 0) return ErrnoError() << "create a link beside " << link;
    if (::renameat(dir->get(), tmp.c_str(), dir->get(), name.c_str()) < 0) {
        Error e = ErrnoError() << "replace " << link;
        ::unlinkat(dir->get(), tmp.c_str(), 0);
        return e;
    }
    ::fsync(dir->get());
    return {};
}

void remove_link(int root_fd, const std::string& link) {
    auto dir = open_in_root(root_fd, dirname_of(link), O_RDONLY | O_DIRECTORY);
    if (dir && ::unlinkat(dir->get(), basename_of(link).c_str(), 0) == 0) ::fsync(dir->get());
}

// The name the merge gives an image of this transfer named `file`.
std::string image_name(const Transfer& t, const std::string& file) {
    return t.placement == Transfer::Placement::SearchDir ? raw_image_name(file) : t.image_name;
}

// Errors that refuse one version, after which the next older one is tried;
// anything else (no space, I/O, a timeout) ends the transfer.
bool refuses_version(const Error& e) {
    return e.code() == EBADMSG || e.code() == EPERM || e.code() == ENOENT || e.code() == EFBIG;
}

// Downloads one version into the target directory under a partial name,
// checks its SHA-256 and what the merge would make of it, and renames it
// into place. Nothing stays behind on an error.
Result<void> download(Ctx& ctx, const Transfer& t, Source& src, int dir_fd, const Offer& offer,
                      const std::string& final_name) {
    const std::string tmp = partial_name(final_name);
    const std::string shown = t.target_path + "/" + final_name;
    UniqueFd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError() << "create a file in " << t.target_path;
    ScopeGuard cleanup([&] { ::unlinkat(dir_fd, tmp.c_str(), 0); });
    HashingFile sink(fd.get(), shown);
    log_info() << "fetching " << offer.name << " from " << src.describe();
    RDEXT_TRY(src.fetch(offer.name, ctx.options.max_image_size, ctx.deadline, sink));
    if (sink.hex() != offer.sha256)
        return Error(EBADMSG) << offer.name << ": its SHA-256 does not match SHA256SUMS (a corrupt or tampered download)";
    if (::fchmod(fd.get(), t.mode.value_or(0644)) < 0) return ErrnoError() << "chmod " << shown;
    if (::fsync(fd.get()) < 0) {
        if (errno == ENOSPC) return Error(ENOSPC) << shown << ": no space left in the target directory";
        return ErrnoError() << "fsync " << shown;
    }
    if (!ctx.inspect) {
        auto ic = inspect_context({}, ctx.target, ctx.settings);
        if (!ic) return Error(EIO) << "cannot judge downloads: " << ic.error().what();
        ctx.inspect = std::move(*ic);
    }
    Candidate c;
    c.name = image_name(t, final_name);
    c.cls = t.cls;
    c.kind = ImageKind::Raw;
    c.path = t.target_path + "/" + tmp;  // sidecars are looked for beside what the path leads to
    c.root_fd = ctx.target.root_fd.get();
    UniqueFd path_fd(::openat(dir_fd, tmp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!path_fd) return ErrnoError() << "reopen " << shown;
    c.fd = std::make_shared<UniqueFd>(std::move(path_fd));
    InspectReport report = inspect_candidate(*ctx.inspect, c);
    if (!report.accepted()) return Error(EPERM) << report.reason();
    if (::renameat2(dir_fd, tmp.c_str(), dir_fd, final_name.c_str(), RENAME_NOREPLACE) < 0)
        return ErrnoError() << "rename the download to " << shown;
    cleanup.disable();
    ::fsync(dir_fd);
    return {};
}

// The target directory's instances of the transfer.
std::vector<Installed> list_installed(Ctx& ctx, const Transfer& t, int dir_fd) {
    std::vector<Installed> out;
    auto names = list_directory(dir_fd);
    if (!names) return out;
    for (const auto& n : *names) {
        PatternFields f;
        bool matches = false;
        for (const auto& p : t.target_patterns) matches = matches || p.match(n, &f);
        if (!matches) continue;
        Installed i{n, f.version};
        i.in_use = ctx.in_use.count(file_identity(dir_fd, n)) > 0;
        for (const auto& v : t.protect_versions) i.protected_ = i.protected_ || compare_versions(v, f.version) == 0;
        out.push_back(std::move(i));
    }
    return out;
}

const Installed* newest(const std::vector<Installed>& v) {
    const Installed* best = nullptr;
    for (const auto& i : v)
        if (!best || version_less(best->version, i.version)) best = &i;
    return best;
}

// The name of a new instance: the target pattern with the version and
// what the transfer and the manifest say.
Result<std::string> target_name(const Transfer& t, const Offer& o) {
    PatternFields f;
    f.version = o.version;
    f.tries_left = t.tries_left;
    f.tries_done = t.tries_done;
    f.sha256 = o.sha256;
    f.mode = t.mode;
    auto name = t.target_patterns.front().format(f);
    if (!name) return Error(EINVAL) << t.file << ": target MatchPattern= " << t.target_patterns.front().text()
                                    << " needs a value rdext has not got (" << name.error().what() << ")";
    return name;
}

// Makes the chosen instance the one the merge finds.
Result<void> make_current(Ctx& ctx, const Transfer& t, const std::string& name) {
    if (t.placement != Transfer::Placement::Symlink) return {};
    return point_link(ctx.target.root_fd.get(), t.current_symlink,
                      relative_link(dirname_of(t.current_symlink), t.target_path + "/" + name));
}

std::string previous_current(Ctx& ctx, const Transfer& t, const std::vector<Installed>& installed) {
    if (t.placement == Transfer::Placement::Symlink) {
        auto dir = open_in_root(ctx.target.root_fd.get(), dirname_of(t.current_symlink), O_RDONLY | O_DIRECTORY);
        const std::string text = dir ? read_link(dir->get(), basename_of(t.current_symlink)) : "";
        for (const auto& i : installed)
            if (!text.empty() && basename_of(text) == i.name) return i.version;
        return "";
    }
    const Installed* n = newest(installed);
    return n ? n->version : "";
}

Result<void> run_transfer(Ctx& ctx, const Transfer& t, FetchTransferRecord& rec) {
    const int root_fd = ctx.target.root_fd.get();
    auto src = open_source(t, root_fd, {ctx.options.ca});
    if (!src) return src.error();
    rec.source = (*src)->describe();
    auto manifest_text = read_verified(ctx, t, **src, kManifestName);
    if (!manifest_text) return manifest_text.error();
    auto manifest = parse_manifest(*manifest_text);
    if (!manifest) return manifest.error().prefix(rec.source + ": ");
    std::set<std::string> retracted;
    if (auto text = read_verified(ctx, t, **src, kRetractedName)) {
        auto r = parse_retracted(*text);
        if (!r) return r.error().prefix(rec.source + ": ");
        retracted = std::move(*r);
    } else if (text.error().code() != ENOENT) {
        return text.error();
    }
    const auto offers = rank_offers(t, *manifest, retracted);
    const auto gone = retracted_versions(t, retracted);

    auto dir = ensure_dir(root_fd, t.target_path);
    if (!dir) return dir.error().prefix(t.target_path + ": ");
    remove_partials(dir->get(), t.target_path);
    auto installed = list_installed(ctx, t, dir->get());
    const std::string previous = previous_current(ctx, t, installed);
    std::vector<Installed> kept;
    for (const auto& i : installed)
        if (!gone.count(i.version)) kept.push_back(i);
    const Installed* best_kept = newest(kept);

    std::string current = best_kept ? best_kept->name : "";
    std::string current_version = best_kept ? best_kept->version : "";
    bool downloaded = false;
    for (const auto& o : offers) {
        if (o.verdict != "candidate") continue;
        if (best_kept && compare_versions(o.version, best_kept->version) <= 0) break;
        auto name = target_name(t, o);
        if (!name) return name.error();
        auto r = download(ctx, t, **src, dir->get(), o, *name);
        if (r) {
            kept.push_back({*name, o.version});
            current = *name;
            current_version = o.version;
            downloaded = true;
            break;
        }
        if (!refuses_version(r.error())) return r.error();
        log_warning() << *name << ": " << r.error().what() << "; trying an older version";
        rec.refused.push_back({t.target_path + "/" + *name, o.version, r.error().what()});
    }
    if (current.empty()) {
        std::string why = offers.empty() ? "the source offers no file matching the pattern"
                                         : "the source offers no usable version (";
        for (size_t i = 0; i < offers.size() && i < 4; i++)
            why += (i ? "; " : "") + offers[i].name + ": " + offers[i].verdict;
        if (!offers.empty()) why += ")";
        for (const auto& i : installed) {
            if (::unlinkat(dir->get(), i.name.c_str(), 0) == 0)
                rec.removed.push_back({t.target_path + "/" + i.name, i.version, "retracted by the source"});
        }
        if (!installed.empty() && t.placement == Transfer::Placement::Symlink) remove_link(root_fd, t.current_symlink);
        return Error(ENOENT) << why;
    }
    RDEXT_TRY(make_current(ctx, t, current));

    // Retracted instances go, in use or not: the next merge must not take them.
    for (const auto& i : installed)
        if (gone.count(i.version) && ::unlinkat(dir->get(), i.name.c_str(), 0) == 0)
            rec.removed.push_back({t.target_path + "/" + i.name, i.version, "retracted by the source"});
    for (auto& i : kept) i.current = i.name == current;
    for (size_t idx : instances_to_remove(kept, t.instances_max)) {
        if (::unlinkat(dir->get(), kept[idx].name.c_str(), 0) == 0)
            rec.removed.push_back({t.target_path + "/" + kept[idx].name, kept[idx].version,
                                   "more than InstancesMax=" + std::to_string(t.instances_max)});
    }
    ::fsync(dir->get());

    rec.name = image_name(t, current);
    rec.path = t.target_path + "/" + current;
    rec.version = current_version;
    if (previous != current_version) rec.previous_version = previous;
    rec.result = downloaded ? "fetched" : previous != current_version ? "switched" : "unchanged";
    if (!rec.previous_version.empty() && gone.count(rec.previous_version))
        rec.reason = "version " + rec.previous_version + " was retracted";
    log_info() << rec.name << ": " << rec.result << ", version " << rec.version
               << (rec.previous_version.empty() ? "" : " (was " + rec.previous_version + ")");
    return {};
}

}  // namespace

FetchRecord fetch(const Target& target, const Settings& settings, const FetchOptions& options) {
    FetchRecord record;
    MergeState stamp = new_record("fetch", target.root_path);
    record.root = stamp.root;
    record.time = stamp.time;
    record.boot_id = stamp.boot_id;
    Ctx ctx{target, settings, options, std::chrono::steady_clock::now() + options.timeout,
            options.keyring ? options.keyring : default_keyring(), std::nullopt, images_in_use(target)};
    TransferSet set = read_transfers(target.root_fd.get(), specifier_values(target.root_fd.get()));
    size_t failed = 0, refused = 0;
    for (const auto& n : set.notes) {
        record.definitions.push_back({n.file, n.reason, n.refused});
        if (n.refused) {
            refused++;
            log_error() << n.reason;
        } else {
            log_debug() << n.file << ": " << n.reason;
        }
    }
    for (const auto& t : set.transfers) {
        FetchTransferRecord rec;
        rec.transfer = t.file;
        rec.name = t.image_name.empty() ? t.id : t.image_name;
        rec.cls = t.cls;
        rec.source = t.source_path;
        if (!t.enabled || !settings.class_enabled(t.cls)) {
            rec.result = "disabled";
            rec.reason = t.enabled ? "switched off by " + settings.of(t.cls).disabled_by : t.disabled_by;
        } else if (auto r = run_transfer(ctx, t, rec); !r) {
            rec.result = "failed";
            rec.reason = r.error().what();
            log_error() << t.file << ": " << rec.reason;
            failed++;
        }
        record.transfers.push_back(std::move(rec));
    }
    if (failed || refused)
        record.failure = std::to_string(failed) + " of " + std::to_string(set.transfers.size()) +
                         " transfers failed, " + std::to_string(refused) + " definition files refused";
    if (auto runtime = target.runtime_dir(true); !runtime)
        log_warning() << "cannot keep the fetch record: " << runtime.error().what();
    else if (auto w = write_fetch_record(runtime->get(), record); !w)
        log_warning() << "cannot keep the fetch record: " << w.error().what();
    return record;
}

}  // namespace rdext
