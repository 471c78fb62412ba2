#include "target/target.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace rdext {

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

}  // namespace rdext
