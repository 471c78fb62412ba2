#include "merge/module_index.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "kmod/modules.h"
#include "mount/mount_api.h"
#include "mount/overlay.h"

#ifndef RDEXT_DEPMOD_PATH
#define RDEXT_DEPMOD_PATH "/usr/libexec/rdext/depmod"
#endif

namespace rdext {
namespace {

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Keeps the tail of what depmod printed: its last line says why it failed.
std::string read_all(int fd, size_t max) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max) out.erase(0, out.size() - max);
    }
    return out;
}

std::string last_line(std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    auto nl = s.rfind('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
}

// depmod -b BASEDIR KVER reads and writes BASEDIR/lib/modules/KVER. Its
// output goes to the debug log (warnings about a missing modules.order
// and the like are routine for extension trees).
Result<void> run_depmod(const std::string& depmod, const std::string& basedir, const std::string& kver) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return ErrnoError() << "pipe";
    UniqueFd rd(pipe_fds[0]), wr(pipe_fds[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    ScopeGuard fa_guard([&] { posix_spawn_file_actions_destroy(&fa); });
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 2);
    // argv[0] "depmod": the kmod multi-call binary picks the tool by it.
    std::vector<std::string> args = {"depmod", "-b", basedir, kver};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char lc_env[] = "LC_ALL=C";
    char* envp[] = {path_env, lc_env, nullptr};
    pid_t pid;
    int err = posix_spawn(&pid, depmod.c_str(), &fa, nullptr, argv.data(), envp);
    if (err != 0) return Error::sys(err) << "cannot run " << depmod;
    wr.reset();
    std::string out = read_all(rd.get(), 16384);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return ErrnoError() << "waitpid " << depmod;
    for (const auto& line : split(out, '\n'))
        if (!line.empty()) log_debug() << "depmod: " << line;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    Error e(EIO);
    e << depmod << (WIFEXITED(status) ? " exited with status " + std::to_string(WEXITSTATUS(status))
                                      : " was killed by signal " + std::to_string(WTERMSIG(status)));
    if (auto l = last_line(out); !l.empty()) e << ": " << l;
    return e;
}

// Creates dir/name as `like` is (mode and owner), and opens it.
Result<UniqueFd> make_dir_like(int dir_fd, const std::string& name, int like_fd) {
    auto st = stat_fd(like_fd);
    if (!st) return st.error();
    if (::mkdirat(dir_fd, name.c_str(), 0700) < 0) return ErrnoError() << "mkdir " << name;
    auto fd = open_in_root_nofollow(dir_fd, name, O_RDONLY | O_DIRECTORY);
    if (!fd) return fd.error();
    if (::fchown(fd->get(), st->st_uid, st->st_gid) < 0) return ErrnoError() << "chown " << name;
    if (::fchmod(fd->get(), st->st_mode & 07777) < 0) return ErrnoError() << "chmod " << name;
    return fd;
}

// Moves what depmod wrote (the regular files in the upper directory's
// lib/modules/KVER) into the index slot, below directories made like the
// view's. Files, not the upper tree itself: overlayfs marks copied-up
// directories with its own xattrs, which have no business in a lower layer.
Result<void> move_index_files(int upper_fd, int index_fd, const std::string& kver) {
    UniqueFd from, to;
    int from_parent = upper_fd, to_parent = index_fd;
    for (const std::string& name : {std::string("lib"), std::string("modules"), kver}) {
        auto f = open_in_root_nofollow(from_parent, name, O_RDONLY | O_DIRECTORY);
        if (!f) return f.error().prefix("depmod wrote no index: ");
        auto t = make_dir_like(to_parent, name, f->get());
        if (!t) return t.error();
        from = std::move(*f);
        to = std::move(*t);
        from_parent = from.get();
        to_parent = to.get();
    }
    auto names = list_directory(from.get());
    if (!names) return names.error();
    size_t moved = 0;
    for (const auto& n : *names) {
        struct stat st;
        if (::fstatat(from.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return ErrnoError() << "stat " << n;
        if (!S_ISREG(st.st_mode)) continue;
        if (::renameat(from.get(), n.c_str(), to.get(), n.c_str()) < 0) return ErrnoError() << "move " << n;
        moved++;
    }
    if (moved == 0) return Error(ENOENT) << "depmod wrote no index files";
    return {};
}

}  // namespace

std::string running_kernel_release() {
    struct utsname u;
    if (::uname(&u) < 0) return "";
    return u.release;
}

Result<bool> layer_carries_modules(int layer_fd, const std::string& kver) {
    if (layer_fd < 0 || kver.empty() || kver.find('/') != std::string::npos) return false;
    const std::string rel = "lib/modules/" + kver;
    auto fd = open_in_root_no_symlinks(layer_fd, rel, O_PATH | O_DIRECTORY);
    if (fd) return true;
    if (fd.error().code() == ENOENT) return false;
    const char* what = fd.error().code() == ELOOP    ? "is or passes through a symbolic link"
                       : fd.error().code() == ENOTDIR ? "is or passes through something that is not a directory"
                                                      : nullptr;
    if (!what) return fd.error().prefix("usr/" + rel + ": ");
    return Error(ELOOP) << "usr/" << rel << " " << what << ", so its kernel modules cannot be indexed";
}


Result<std::string> find_depmod() {
    if (const char* env = std::getenv("RDEXT_DEPMOD"); env && *env) {
        if (!is_executable(env)) return Error(ENOENT) << "RDEXT_DEPMOD=" << env << " is not an executable";
        return std::string(env);
    }
    // The installed one, where an initrd has it, then the system's.
    std::vector<std::string> where = {RDEXT_DEPMOD_PATH, "/usr/libexec/rdext/depmod", "/usr/sbin/depmod",
                                      "/sbin/depmod"};
    for (const auto& p : where)
        if (is_executable(p)) return p;
    return Error(ENOENT) << "no depmod (looked for " << join(where, ", ") << ")";
}

Result<std::string> build_module_index(Staging& staging, const std::vector<std::string>& layers,
                                       const std::string& kver, const std::string& slot,
                                       bool& lowerdir_plus_refused) {
    auto depmod = find_depmod();
    if (!depmod) return depmod.error();
    auto upper = staging.make_slot(slot + ".upper");
    if (!upper) return upper.error();
    auto work = staging.make_slot(slot + ".work");
    if (!work) return work.error();
    auto view_dir = staging.make_slot(slot + ".view");
    if (!view_dir) return view_dir.error();

    OverlaySpec spec;
    spec.source = "rdext-modules";
    spec.lowers = layers;
    spec.upper = staging.slot_path(slot + ".upper");
    spec.work = staging.slot_path(slot + ".work");
    spec.flags = MS_NODEV | MS_NOSUID | MS_NOEXEC;
    auto view = create_overlay(spec, lowerdir_plus_refused);
    if (!view) return view.error().prefix("module view: ");
    // depmod resolves names in rdext's own namespace: a link in a layer (a
    // module, a subdirectory, modules.order) must not take it out of the
    // view. On a nosymfollow mount it is an entry depmod cannot open.
    RDEXT_TRY(set_mount_attrs(view->get(), MOUNT_ATTR_NOSYMFOLLOW));
    RDEXT_TRY(attach_mount(view->get(), view_dir->get()));
    auto ran = [&]() -> Result<void> {
        RDEXT_TRY(fault_point("module-index"));
        auto t0 = std::chrono::steady_clock::now();
        RDEXT_TRY(run_depmod(*depmod, staging.slot_path(slot + ".view"), kver));
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        log_debug() << "depmod over the merged /usr took " << ms.count() << " ms";
        return {};
    }();
    // The upper directory is only read once the view is gone.
    RDEXT_TRY(detach_mount_of(view->get()));
    if (!ran) return ran.error();

    auto index = staging.make_slot(slot);
    if (!index) return index.error();
    RDEXT_TRY(move_index_files(upper->get(), index->get(), kver));
    return staging.slot_path(slot);
}

}  // namespace rdext
