#include "merge/var_mount.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <libmount/libmount.h>
#include <sys/mount.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "image/probe.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

struct TableDeleter {
    void operator()(libmnt_table* t) const { mnt_unref_table(t); }
};
struct FileDeleter {
    void operator()(FILE* f) const { std::fclose(f); }
};

// The fstab's /var entry, parsed by libmount from the root's file (read
// through openat2, so a symlinked fstab cannot point outside the root).
Result<std::unique_ptr<libmnt_table, TableDeleter>> read_fstab(const Target& target) {
    auto fd = open_regular_in_root(target.root_fd.get(), "/etc/fstab");
    if (!fd) return fd.error();
    auto text = read_regular_file(fd->get(), 1 << 20);
    if (!text) return text.error().prefix("/etc/fstab: ");
    std::unique_ptr<FILE, FileDeleter> f(::fmemopen(text->data(), text->size(), "r"));
    if (!f) return ErrnoError() << "fmemopen";
    std::unique_ptr<libmnt_table, TableDeleter> tb(mnt_new_table());
    if (!tb || mnt_table_parse_stream(tb.get(), f.get(), "/etc/fstab") < 0)
        return Error(EBADMSG) << "cannot parse the root's /etc/fstab";
    return tb;
}

std::string or_empty(const char* s) { return s ? s : ""; }

struct Option {
    std::string name, value;
    bool has_value = false;
};

std::vector<Option> split_options(const std::string& optstr) {
    std::vector<Option> out;
    std::string copy = optstr;
    char* p = copy.data();
    char *name = nullptr, *value = nullptr;
    size_t namesz = 0, valuesz = 0;
    while (mnt_optstr_next_option(&p, &name, &namesz, &value, &valuesz) == 0) {
        Option o;
        o.name.assign(name, namesz);
        if (value) o.value.assign(value, valuesz);
        o.has_value = value != nullptr;
        out.push_back(std::move(o));
    }
    return out;
}

bool has_option(const std::vector<Option>& opts, const std::set<std::string>& names) {
    for (const auto& o : opts)
        if (names.count(o.name)) return true;
    return false;
}

// What a separate /var can be: a local file system on a block device.
bool local_block_fstype(const std::string& t) {
    static const std::set<std::string> kTypes = {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "bcachefs"};
    return kTypes.count(t) != 0;
}

// Why the line is not a separate /var rdext mounts, or "" when it may be.
// The line is the root's, so untrusted: bind mounts and tmpfs could show
// the initrd's own files or widen what /var may do; network and nofail
// mounts are the booted system's business (and cannot fail the merge).
std::string refusal(libmnt_fs* fs, const std::vector<Option>& opts) {
    const std::string type = or_empty(mnt_fs_get_fstype(fs));
    const std::string source = or_empty(mnt_fs_get_source(fs));
    if (has_option(opts, {"nofail"})) return "a nofail line, left to the booted system";
    if (has_option(opts, {"noauto"})) return "a noauto line, left to the booted system";
    if (has_option(opts, {"bind", "rbind", "move", "rmove"}) || type == "bind" || type == "none")
        return "a bind mount, only a block device is mounted as /var";
    if (has_option(opts, {"_netdev"}) || mnt_fs_is_netfs(fs))
        return "a network file system (" + type + "), left to the booted system";
    if (!type.empty() && type != "auto" && !local_block_fstype(type))
        return "type " + type + " is not a local block file system";
    static const char* const kTags[] = {"UUID=", "LABEL=", "PARTUUID=", "PARTLABEL="};
    for (const char* tag : kTags)
        if (starts_with(source, tag)) return "";
    if (!starts_with(source, "/dev/"))
        return "the source is not a block device (a /dev path, UUID=, LABEL=, PARTUUID= or PARTLABEL=)";
    return "";
}

// The device a tag or /dev path names, in the running system's /dev (the
// device itself is what the line names), evaluated by libblkid as
// systemd's fstab generator does, but without blkid's cache file, which
// may list regular files.
Result<std::string> find_device(const std::string& spec) {
    blkid_cache cache = nullptr;
    if (blkid_get_cache(&cache, "/dev/null") != 0) return Error(ENOMEM) << "blkid cache";
    char* dev = blkid_evaluate_spec(spec.c_str(), &cache);
    blkid_put_cache(cache);
    if (!dev) return Error(ENODEV) << "no device found for " << spec;
    std::string out = dev;
    std::free(dev);
    return out;
}

// A block device that may become /var, or why it may not.
struct VarDevice {
    std::string path;     // canonical, under /dev
    std::string fstype;   // the type to mount
    std::string refused;  // non-empty: not mounted, and why
};

// The probed type decides; the fstab may say "auto", the same type, or
// ext4 for an ext2/ext3 file system (the ext4 driver mounts those).
std::string type_mismatch(const std::string& fstab_type, const std::string& probed) {
    if (probed.empty()) return "no file system found on the device";
    if (!local_block_fstype(probed)) return "the device holds " + probed + ", not a local block file system";
    if (fstab_type.empty() || fstab_type == "auto" || fstab_type == probed) return "";
    if (fstab_type == "ext4" && (probed == "ext2" || probed == "ext3")) return "";
    return "the fstab says " + fstab_type + " but the device holds " + probed;
}

Result<VarDevice> check_device(const std::string& source, const std::string& fstab_type) {
    VarDevice d;
    auto path = find_device(source);
    if (!path) return path.error();
    d.path = *path;
    if (!starts_with(d.path, "/dev/")) {
        d.refused = d.path + " is not a block device";
        return d;
    }
    // O_PATH first: opening a character device can have side effects.
    auto node = open_path(d.path, O_PATH);
    if (!node) return node.error();
    auto st = stat_fd(node->get());
    if (!st) return st.error();
    if (!S_ISBLK(st->st_mode)) {
        d.refused = d.path + " is not a block device";
        return d;
    }
    auto dev = open_path(proc_fd_path(node->get()), O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!dev) return dev.error().prefix(d.path + ": ");
    auto probed = probe_filesystem_type(dev->get());
    if (!probed) return probed.error().prefix(d.path + ": ");
    d.refused = type_mismatch(fstab_type, *probed);
    d.fstype = fstab_type.empty() || fstab_type == "auto" ? *probed : fstab_type;
    return d;
}

// File system options passed on as written: common ones of the types
// above, none of which reaches beyond the device (btrfs' device= would).
bool fs_option_allowed(const std::string& name) {
    static const std::set<std::string> kAllowed = {
        "errors", "data", "commit", "discard", "nodiscard", "barrier", "nobarrier", "user_xattr",
        "acl", "noacl", "quota", "noquota", "usrquota", "grpquota", "prjquota", "journal_checksum",
        "auto_da_alloc", "noauto_da_alloc", "delalloc", "nodelalloc", "dioread_nolock", "inode64",
        "inode32", "logbufs", "logbsize", "allocsize", "largeio", "nolargeio", "subvol", "subvolid",
        "compress", "compress-force", "space_cache", "nospace_cache", "ssd", "nossd", "ssd_spread",
        "autodefrag", "noautodefrag", "background_gc", "lazytime", "nolazytime", "sync", "dirsync"};
    return kAllowed.count(name) != 0;
}

// Mount-wide options that only ever narrow what /var may do.
bool take_mount_option(const std::string& name, uint64_t& attrs) {
    if (name == "ro") attrs |= MOUNT_ATTR_RDONLY;
    else if (name == "noexec") attrs |= MOUNT_ATTR_NOEXEC;
    else if (name == "noatime") attrs = (attrs & ~MOUNT_ATTR__ATIME) | MOUNT_ATTR_NOATIME;
    else if (name == "relatime") attrs = (attrs & ~MOUNT_ATTR__ATIME) | MOUNT_ATTR_RELATIME;
    else if (name == "strictatime") attrs = (attrs & ~MOUNT_ATTR__ATIME) | MOUNT_ATTR_STRICTATIME;
    else if (name == "nodiratime") attrs |= MOUNT_ATTR_NODIRATIME;
    else return false;
    return true;
}

// nosuid,nodev always; ro and the atime and noexec options as written;
// allowed file system options passed on; suid, dev, exec and the like
// (the defaults, or what is forced off) and userspace-only options
// (x-systemd.*, comment=) are ignored; anything else is dropped, said so.
void take_options(const std::vector<Option>& opts, uint64_t& attrs, std::vector<FsParam>& params) {
    static const std::set<std::string> kIgnored = {"defaults", "rw", "auto", "async", "suid", "nosuid",
                                                   "dev", "nodev", "exec", "nouser"};
    attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    for (const auto& o : opts) {
        if (kIgnored.count(o.name) || starts_with(o.name, "x-") || o.name == "comment") continue;
        if (take_mount_option(o.name, attrs)) {
            if (o.name == "ro") params.push_back({"ro", "", true});
        } else if (fs_option_allowed(o.name)) {
            params.push_back({o.name, o.value, !o.has_value});
        } else {
            log_warning() << "/etc/fstab: option " << o.name << " of /var dropped (not one rdext passes on)";
        }
    }
}

}  // namespace

VarMount::~VarMount() {
    if (mount_fd_) (void)detach_mount_of(mount_fd_.get());
}

Result<VarMount> mount_var_from_fstab(const Target& target) {
    VarMount vm;
    auto tb = read_fstab(target);
    if (!tb) return vm;  // no fstab (or unreadable): nothing to do
    libmnt_fs* fs = mnt_table_find_target(tb->get(), "/var", MNT_ITER_FORWARD);
    if (!fs || mnt_fs_is_swaparea(fs)) return vm;
    const std::string source = or_empty(mnt_fs_get_source(fs));
    const std::string fstype = or_empty(mnt_fs_get_fstype(fs));
    const auto opts = split_options(or_empty(mnt_fs_get_options(fs)));
    auto skip = [&](const std::string& why) {
        log_warning() << "/etc/fstab: not mounting /var (" << source << " " << fstype << " "
                      << or_empty(mnt_fs_get_options(fs)) << "): " << why;
        return Result<VarMount>(std::move(vm));
    };
    // The root's real /var: a symlink would carry the mount elsewhere
    // (/usr/bin), even when it stays inside the root.
    auto var = open_in_root_no_symlinks(target.root_fd.get(), "/var", O_PATH | O_DIRECTORY);
    if (!var && var.error().code() == ELOOP) return skip("/var is a symlink on the root");
    if (!var) return var.error().prefix("/var: ");
    auto is_mounted = is_mount_root(var->get());
    if (!is_mounted) return is_mounted.error().prefix("/var: ");
    if (*is_mounted) return vm;
    if (auto why = refusal(fs, opts); !why.empty()) return skip(why);

    auto dev = check_device(source, fstype == "auto" ? "" : fstype);
    if (!dev) return dev.error().prefix("/var from the root's fstab: ");
    if (!dev->refused.empty()) return skip(dev->refused);
    std::vector<FsParam> params{{"source", dev->path, false}};
    uint64_t attrs = 0;
    take_options(opts, attrs, params);
    auto mnt = mount_detached(dev->fstype, params, attrs);
    if (!mnt) return mnt.error().prefix("mounting /var (" + source + ") from the root's fstab failed: ");
    RDEXT_TRY(attach_mount(mnt->get(), var->get()));
    log_info() << "mounted /var from " << dev->path << " (" << dev->fstype
               << ", nosuid,nodev) as the root's fstab says";
    vm.mount_fd_ = std::move(*mnt);
    return vm;
}

}  // namespace rdext
