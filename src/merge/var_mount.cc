#include "merge/var_mount.h"

#include <fcntl.h>
#include <libmount/libmount.h>

#include <cstdio>
#include <memory>

#include "base/fs.h"
#include "base/log.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

struct TableDeleter {
    void operator()(libmnt_table* t) const { mnt_unref_table(t); }
};
struct ContextDeleter {
    void operator()(libmnt_context* c) const { mnt_free_context(c); }
};
struct FileDeleter {
    void operator()(FILE* f) const { std::fclose(f); }
};

// The fstab's /var entry, parsed by libmount from the root's file (read
// through openat2, so a symlinked fstab cannot point outside the root).
Result<std::unique_ptr<libmnt_table, TableDeleter>> read_fstab(const Target& target) {
    auto fd = open_in_root(target.root_fd.get(), "/etc/fstab", O_RDONLY | O_NONBLOCK | O_NOCTTY);
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
    auto var = target.open_hierarchy("/var");
    if (!var) return var.error().prefix("/var: ");
    auto is_mounted = is_mount_root(var->get());
    if (!is_mounted) return is_mounted.error().prefix("/var: ");
    if (*is_mounted) return vm;
    auto var_path = fd_path(var->get());
    if (!var_path) return var_path.error();

    std::unique_ptr<libmnt_context, ContextDeleter> cxt(mnt_new_context());
    if (!cxt) return Error(ENOMEM) << "libmount context";
    libmnt_fs* copy = mnt_copy_fs(nullptr, fs);
    mnt_fs_set_target(copy, var_path->c_str());
    mnt_context_set_fs(cxt.get(), copy);
    mnt_unref_fs(copy);  // the context holds its own reference
    // Only this mount: no helpers (/sbin/mount.*), no mtab, no fstab lookups.
    mnt_context_disable_helpers(cxt.get(), 1);
    mnt_context_disable_mtab(cxt.get(), 1);
    int r = mnt_context_mount(cxt.get());
    if (r != 0 || mnt_context_get_status(cxt.get()) != 1) {
        char buf[256] = "";
        mnt_context_get_excode(cxt.get(), r, buf, sizeof(buf));
        return Error(EIO) << "mounting /var (" << (mnt_fs_get_source(fs) ? mnt_fs_get_source(fs) : "?")
                          << ") from the root's fstab failed: " << buf;
    }
    auto root = open_in_root(target.root_fd.get(), "/var", O_PATH | O_DIRECTORY);
    if (!root) return root.error();
    log_info() << "mounted /var from " << mnt_fs_get_source(fs) << " as the root's fstab says";
    vm.mount_fd_ = std::move(*root);
    return vm;
}

}  // namespace rdext
