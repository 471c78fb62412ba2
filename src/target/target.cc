#include "target/target.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {

void apply_mutable_mode_overrides(PerClassSettings& classes, std::optional<MutableMode> option) {
    for (ImageClass c : {ImageClass::Sysext, ImageClass::Confext}) {
        auto& mode = classes[static_cast<size_t>(c)].mutable_mode;
        const char* var = c == ImageClass::Sysext ? "SYSTEMD_SYSEXT_MUTABLE_MODE" : "SYSTEMD_CONFEXT_MUTABLE_MODE";
        if (const char* env = std::getenv(var)) {
            auto m = parse_mutable_mode(env);
            if (m)
                mode = *m;
            else
                log_warning() << var << "='" << env << "' ignored: " << m.error().message();
        }
        if (option) mode = *option;
    }
}

bool running_in_initrd() { return ::access("/etc/initrd-release", F_OK) == 0; }

Result<Target> Target::open(const std::string& root) {
    Target t;
    t.root_path = root;
    auto fd = open_path(root, O_PATH | O_DIRECTORY);
    if (!fd) return fd.error().prefix("root directory ");
    t.root_fd = std::move(*fd);
    t.in_initrd = running_in_initrd();
    return t;
}

bool Target::is_running_root() const {
    struct stat root_st, slash_st;
    return ::fstat(root_fd.get(), &root_st) == 0 && ::stat("/", &slash_st) == 0 &&
           root_st.st_dev == slash_st.st_dev && root_st.st_ino == slash_st.st_ino;
}

Result<UniqueFd> Target::runtime_dir(bool create) const {
    UniqueFd run;
    if (in_initrd || is_running_root()) {
        auto r = open_path("/run", O_PATH | O_DIRECTORY);
        if (!r) return r.error();
        run = std::move(*r);
    } else {
        auto r = open_in_root(root_fd.get(), "/run", O_PATH | O_DIRECTORY);
        if (!r && r.error().code() == ENOENT && create) {
            RDEXT_TRY(make_dir(root_fd.get(), "run", 0755));
            r = open_in_root(root_fd.get(), "/run", O_PATH | O_DIRECTORY);
        }
        if (!r) return r.error().prefix("runtime directory ");
        run = std::move(*r);
    }
    if (create) RDEXT_TRY(make_dir(run.get(), "rdext", 0700));
    return open_in_root_nofollow(run.get(), "rdext", O_RDONLY | O_DIRECTORY);
}

Result<UniqueFd> Target::open_hierarchy(const std::string& h) const {
    return open_in_root(root_fd.get(), h, O_PATH | O_DIRECTORY);
}

Result<Target::CreatedDir> Target::create_hierarchy(const std::string& h) const {
    CreatedDir c;
    const size_t slash = h.rfind('/');
    auto parent = open_in_root(root_fd.get(), slash == 0 ? "/" : h.substr(0, slash), O_PATH | O_DIRECTORY);
    if (!parent) return parent.error().prefix("parent of " + h + ": ");
    c.parent = std::move(*parent);
    c.name = h.substr(slash + 1);
    // mkdirat fails on anything already there, a dangling symlink included:
    // only a directory made here becomes the mount point.
    if (::mkdirat(c.parent.get(), c.name.c_str(), 0755) < 0) return ErrnoError() << "creating " << h;
    // The umask does not decide the mode the merged tree shows.
    auto dir = open_in_root_nofollow(c.parent.get(), c.name, O_PATH | O_DIRECTORY);
    if (!dir) {
        c.remove();
        return dir.error().prefix(h + ": ");
    }
    if (::chmod(proc_fd_path(dir->get()).c_str(), 0755) < 0) {
        Error e = ErrnoError() << "chmod " << h;
        c.remove();
        return e;
    }
    c.dir = std::move(*dir);
    return c;
}

void Target::CreatedDir::remove() const { (void)::unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR); }

}  // namespace rdext
