#include "varlink/sysext_service.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <optional>

#include "base/fs.h"
#include "base/log.h"
#include "discover/discover.h"
#include "merge/merge.h"
#include "release/release_utf8.h"
#include "state/metadata.h"
#include "varlink/varlink.h"
#include "version.h"

namespace rdext {
namespace {

// The interfaces' descriptions, as systemd-sysext 257 returns them (so
// `varlinkctl introspect` shows the same text for both).
const char* const kSysextIdl =
    "interface io.systemd.sysext\n"
    "\n"
    "type ImageClass(\n"
    "\tsysext,\n"
    "\tconfext\n"
    ")\n"
    "\n"
    "type ImageType(\n"
    "\tdirectory,\n"
    "\tsubvolume,\n"
    "\traw,\n"
    "\tblock\n"
    ")\n"
    "\n"
    "method Merge(\n"
    "\tclass: ?ImageClass,\n"
    "\tforce: ?bool,\n"
    "\tnoReload: ?bool,\n"
    "\tnoexec: ?bool\n"
    ") -> ()\n"
    "\n"
    "method Unmerge(\n"
    "\tclass: ?ImageClass,\n"
    "\tnoReload: ?bool\n"
    ") -> ()\n"
    "\n"
    "method Refresh(\n"
    "\tclass: ?ImageClass,\n"
    "\tforce: ?bool,\n"
    "\tnoReload: ?bool,\n"
    "\tnoexec: ?bool\n"
    ") -> ()\n"
    "\n"
    "# [Requires 'more' flag]\n"
    "method List(\n"
    "\tclass: ?ImageClass\n"
    ") -> (\n"
    "\tClass: ImageClass,\n"
    "\tType: ImageType,\n"
    "\tName: string,\n"
    "\tPath: ?string,\n"
    "\tReadOnly: bool,\n"
    "\tCreationTimestamp: ?int,\n"
    "\tModificationTimestamp: ?int,\n"
    "\tUsage: ?int,\n"
    "\tUsageExclusive: ?int,\n"
    "\tLimit: ?int,\n"
    "\tLimitExclusive: ?int\n"
    ")\n"
    "\n"
    "error NoImagesFound()\n"
    "\n"
    "error AlreadyMerged(\n"
    "\thierarchy: string\n"
    ")\n";

const char* const kSystemdIdl =
    "interface io.systemd\n"
    "\n"
    "error Disconnected()\n"
    "\n"
    "error TimedOut()\n"
    "\n"
    "error Protocol()\n"
    "\n"
    "error System(\n"
    "\terrno: int\n"
    ")\n";

constexpr const char* kMergeParams[] = {"class", "force", "noReload", "noexec"};

struct Context {
    const Target& target;
    const Settings& settings;
};

json_object* jstr(const std::string& s) { return json_object_new_string(json_text(s).c_str()); }

// The call's "class" (systemd-sysext's own class, sysext, when absent);
// nullopt after replying InvalidParameter.
std::optional<ImageClass> call_class(const VarlinkCall& call, VarlinkReplier& r) {
    json_object* v = nullptr;
    if (!json_object_object_get_ex(call.parameters, "class", &v)) return ImageClass::Sysext;
    if (auto c = class_from_name(json_object_get_string(v))) return c;
    r.invalid_parameter("class");
    return std::nullopt;
}

std::optional<bool> flag(const VarlinkCall& call, const char* name) {
    json_object* v = nullptr;
    if (!json_object_object_get_ex(call.parameters, name, &v)) return std::nullopt;
    return json_object_get_boolean(v);
}

// force and noexec as the command line's --force and --noexec= (absent:
// the command line's own). noReload is accepted: rdext does not reload the
// service manager yet.
void apply_flags(const VarlinkCall& call, Settings& s) {
    if (auto force = flag(call, "force")) s.force = *force;
    if (auto noexec = flag(call, "noexec")) s.noexec = *noexec;
}

// The command line's settings for the call's class alone; the other class
// is left as it is (merge.h: a switched-off class keeps its merge).
Settings only_class(const Settings& settings, ImageClass cls) {
    Settings s = settings;
    for (ImageClass other : all_classes()) {
        auto& c = s.classes[static_cast<size_t>(other)];
        if (other == cls || !c.enabled) continue;
        c.enabled = false;
        c.disabled_by = std::string("an io.systemd.sysext call for ") + class_name(cls);
    }
    return s;
}

// The first of the class's hierarchies that is merged, as systemd-sysext
// reports it in AlreadyMerged.
std::optional<std::string> merged_hierarchy(const Target& target, ImageClass cls) {
    for (const auto& h : class_info(cls).hierarchies) {
        auto fd = target.open_hierarchy(h);
        if (!fd) continue;
        if (auto m = read_merged(fd->get(), cls); m && m->merged) return h;
    }
    return std::nullopt;
}

void reply_record(const MergeState& record, const VarlinkCall& call, VarlinkReplier& r) {
    if (record.failure.empty()) return r.reply(nullptr);
    log_error() << "varlink: " << call.method << " failed: " << record.failure;
    json_object* p = json_object_new_object();
    json_object_object_add(p, "errno", json_object_new_int(EIO));
    r.error("io.systemd.System", p);
}

void method_merge(const Context& ctx, const VarlinkCall& call, VarlinkReplier& r, MergeMode mode) {
    std::vector<ParamSpec> specs;
    for (const char* n : kMergeParams) specs.push_back({n, n == kMergeParams[0] ? ParamType::String : ParamType::Bool});
    if (!check_parameters(call, specs, r)) return;
    auto cls = call_class(call, r);
    if (!cls) return;
    if (mode == MergeMode::Merge)
        if (auto h = merged_hierarchy(ctx.target, *cls)) {
            json_object* p = json_object_new_object();
            json_object_object_add(p, "hierarchy", jstr(*h));
            return r.error("io.systemd.sysext.AlreadyMerged", p);
        }
    Settings settings = only_class(ctx.settings, *cls);
    apply_flags(call, settings);
    reply_record(merge(ctx.target, settings, mode), call, r);
}

void method_unmerge(const Context& ctx, const VarlinkCall& call, VarlinkReplier& r) {
    if (!check_parameters(call, {{"class", ParamType::String}, {"noReload", ParamType::Bool}}, r)) return;
    auto cls = call_class(call, r);
    if (cls) reply_record(unmerge(ctx.target, only_class(ctx.settings, *cls)), call, r);
}

// ---- List: what systemd's image discovery reports of an image ----------------

int64_t usec(const struct statx_timestamp& t) { return t.tv_sec * 1000000LL + t.tv_nsec / 1000; }

// As systemd: an image under /usr, on a read-only file system, without
// write permission (files) or immutable (directories) is read-only.
bool read_only(const Candidate& c, const std::string& full_path, const struct statx& st) {
    if (full_path == "/usr" || full_path.rfind("/usr/", 0) == 0) return true;
    struct statvfs vfs {};
    if (::fstatvfs(c.fd->get(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) return true;
    if (c.kind != ImageKind::Directory) return !(st.stx_mode & 0222);
    auto dir = open_path(proc_fd_path(c.fd->get()), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int attr = 0;
    return dir && ::ioctl(dir->get(), FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_IMMUTABLE_FL);
}

void add_int(json_object* o, const char* key, int64_t v) { json_object_object_add(o, key, json_object_new_int64(v)); }

// A List reply, the fields in 257's order; optional ones only when known.
json_object* image_json(const Target& target, const Candidate& c) {
    const std::string full = target.root_path == "/" ? c.path
                             : target.root_path.substr(0, target.root_path.find_last_not_of('/') + 1) + c.path;
    struct statx st {};
    const bool have = ::statx(c.fd->get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &st) == 0;
    json_object* o = json_object_new_object();
    json_object_object_add(o, "Type", json_object_new_string(kind_name(c.kind)));
    json_object_object_add(o, "Class", json_object_new_string(class_name(c.cls)));
    json_object_object_add(o, "Name", jstr(c.name));
    json_object_object_add(o, "Path", jstr(full));
    json_object_object_add(o, "ReadOnly", json_object_new_boolean(have && read_only(c, full, st)));
    if (!have) return o;
    if ((st.stx_mask & STATX_BTIME) && usec(st.stx_btime) != 0) add_int(o, "CreationTimestamp", usec(st.stx_btime));
    uint64_t usage = 0, limit = 0;
    if (c.kind == ImageKind::Raw) {
        // systemd leaves a directory's out: its own mtime is not the tree's.
        add_int(o, "ModificationTimestamp", usec(st.stx_mtime));
        usage = st.stx_blocks * 512;
        limit = st.stx_size;
    } else if (c.kind == ImageKind::Block) {
        auto dev = open_path(proc_fd_path(c.fd->get()), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (!dev || ::ioctl(dev->get(), BLKGETSIZE64, &usage) != 0) return o;
        limit = usage;
    } else
        return o;
    add_int(o, "Usage", static_cast<int64_t>(usage));
    add_int(o, "UsageExclusive", static_cast<int64_t>(usage));
    add_int(o, "Limit", static_cast<int64_t>(limit));
    add_int(o, "LimitExclusive", static_cast<int64_t>(limit));
    return o;
}

// Every image discovery offers for the class (not masked, shadowed or
// broken), one reply each; a call that does not take several is refused.
void method_list(const Context& ctx, const VarlinkCall& call, VarlinkReplier& r) {
    if (!call.more) return r.error("org.varlink.service.ExpectedMore");
    if (!check_parameters(call, {{"class", ParamType::String}}, r)) return;
    auto cls = call_class(call, r);
    if (!cls) return;
    auto found = discover(ctx.target.root_fd.get(), *cls);
    if (!found) {
        log_error() << "varlink: List: " << found.error().what();
        json_object* p = json_object_new_object();
        json_object_object_add(p, "errno", json_object_new_int(found.error().code() ? found.error().code() : EIO));
        return r.error("io.systemd.System", p);
    }
    json_object* pending = nullptr;
    for (const auto& c : *found) {
        if (c.state != EntryState::Available || !c.fd) continue;
        if (pending) r.reply(pending, true);
        pending = image_json(ctx.target, c);
    }
    if (pending) return r.reply(pending);
    r.error("io.systemd.sysext.NoImagesFound");
}

bool handle(const Context& ctx, const VarlinkCall& call, VarlinkReplier& r) {
    if (call.method == "io.systemd.sysext.Merge") method_merge(ctx, call, r, MergeMode::Merge);
    else if (call.method == "io.systemd.sysext.Refresh") method_merge(ctx, call, r, MergeMode::Refresh);
    else if (call.method == "io.systemd.sysext.Unmerge") method_unmerge(ctx, call, r);
    else if (call.method == "io.systemd.sysext.List") method_list(ctx, call, r);
    else return false;
    return true;
}

}  // namespace

Result<void> serve_sysext_varlink(int fd, const Target& target, const Settings& settings) {
    const Context ctx{target, settings};
    VarlinkService service;
    service.vendor = "rdext";
    service.product = "rdext (io.systemd.sysext)";
    service.version = RDEXT_VERSION;
    service.url = "man:rdext(8)";  // no web page of its own
    service.interfaces = {{"io.systemd", kSystemdIdl}, {"io.systemd.sysext", kSysextIdl}};
    service.handle = [&ctx](const VarlinkCall& call, VarlinkReplier& r) { return handle(ctx, call, r); };
    return varlink_serve(fd, service);
}

}  // namespace rdext
