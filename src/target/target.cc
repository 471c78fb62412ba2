#include "target/target.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {

void apply_mutable_mode_overrides(PerClassSettings& classes, std::optional<MutableMode> option,
                                  const PerClassMode& conf) {
    for (ImageClass c : {ImageClass::Sysext, ImageClass::Confext}) {
        auto& mode = classes[static_cast<size_t>(c)].mutable_mode;
        if (conf[static_cast<size_t>(c)]) mode = *conf[static_cast<size_t>(c)];
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

namespace {

bool path_normalized(const std::string& p) {
    if (p.find("//") != std::string::npos) return false;
    for (const auto& part : split(p, '/'))
        if (part == "." || part == "..") return false;
    return true;
}

// "/usr" inside "/usr" or "/usr/share" (either way round).
bool nested(const std::string& a, const std::string& b) {
    const std::string& shorter = a.size() <= b.size() ? a : b;
    const std::string& longer = a.size() <= b.size() ? b : a;
    return longer == shorter || starts_with(longer, shorter + "/");
}

}  // namespace

Result<std::vector<std::string>> parse_hierarchy_list(const std::string& var, const std::string& value) {
    std::vector<std::string> out;
    for (std::string p : split(value, ':')) {
        auto bad = [&] { return Error(EINVAL) << var << ": '" << p << "' "; };
        if (!path_is_absolute(p)) return bad() << "is not an absolute path";
        if (!path_normalized(p)) return bad() << "is not a normalized path";
        while (p.size() > 1 && p.back() == '/') p.pop_back();
        if (p == "/") return bad() << "is the root directory";
        for (const auto& q : out)
            if (nested(p, q)) return bad() << "overlaps '" << q << "'";
        out.push_back(p);
    }
    if (out.empty()) return Error(EINVAL) << var << ": no paths";
    return out;
}

Result<void> apply_hierarchy_overrides() {
    for (ImageClass c : all_classes()) {
        const char* var = c == ImageClass::Sysext ? "SYSTEMD_SYSEXT_HIERARCHIES" : "SYSTEMD_CONFEXT_HIERARCHIES";
        const char* env = std::getenv(var);
        if (!env) continue;
        auto list = parse_hierarchy_list(var, env);
        if (!list) return list.error();
        set_class_hierarchies(c, std::move(*list));
    }
    for (const auto& s : class_info(ImageClass::Sysext).hierarchies)
        for (const auto& c : class_info(ImageClass::Confext).hierarchies)
            if (nested(s, c))
                return Error(EINVAL) << "hierarchy " << s << " (sysext) overlaps " << c
                                     << " (confext): both classes would merge there";
    return {};
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
