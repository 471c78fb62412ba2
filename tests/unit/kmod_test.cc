// Kernel module loading decisions and the module index helpers. Loading a
// real module needs a kernel with loadable modules: the VM scenario
// "modules" proves that; here the loader is pointed at synthetic trees.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "base/fs.h"
#include "merge/module_index.h"
#include "kmod/modules.h"
#include "test_util.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

ModuleLoader::Config synthetic(const TempDir& t) {
    ModuleLoader::Config c;
    c.module_dir = t / "lib/modules/9.9.9-unit";
    c.use_system_config = false;
    c.sys_module_dir = t / "sys/module";
    c.proc_filesystems = t / "proc/filesystems";
    return c;
}

}  // namespace

TEST_CASE("a loaded or built-in module is not looked up again") {
    TempDir t;
    t.mkdir("sys/module/rdext_unit_mod");
    t.write("proc/filesystems", "nodev\tsysfs\n\trdextunitfs\n");
    // No module tree at all: only the presence checks can make these pass
    // without a lookup, and the lookup of a missing tree is fine too.
    ModuleLoader loader(synthetic(t));
    CHECK(loader.ensure_module("rdext-unit-mod"));  // '-' is '_' in /sys/module
    CHECK(loader.ensure_filesystem("rdextunitfs"));
}

TEST_CASE("a module the tree does not have is fine") {
    TempDir t;
    t.mkdir("lib/modules/9.9.9-unit");
    t.mkdir("sys/module");
    t.write("proc/filesystems", "nodev\tsysfs\n");
    ModuleLoader loader(synthetic(t));
    CHECK(loader.ensure_module("rdext_unit_no_such_module"));
    CHECK(loader.ensure_filesystem("rdextnosuchfs"));
}

TEST_CASE("a tree carries modules for a kernel only in its own lib/modules/KVER directory") {
    TempDir t;
    t.mkdir("a/lib/modules/9.9.9-unit/extra");
    t.mkdir("b/lib/modules/1.0.0-other");
    t.mkdir("outside/lib/modules/9.9.9-unit");
    t.mkdir("c");
    t.symlink(t / "outside/lib", "c/lib");
    t.mkdir("d/lib/modules/9.9.9-real");
    t.symlink("9.9.9-real", "d/lib/modules/9.9.9-unit");  // inside the tree, still a link
    t.write("e/lib/modules/9.9.9-unit", "");
    auto carries = [&](const std::string& dir, const std::string& kver) {
        auto fd = open_path(t / dir, O_PATH | O_DIRECTORY);
        return layer_carries_modules(fd ? fd->get() : -1, kver);
    };
    auto refused = [&](const std::string& dir, const std::string& why) {
        auto r = carries(dir, "9.9.9-unit");
        REQUIRE_FALSE(r);
        CHECK(r.error().what().find("usr/lib/modules/9.9.9-unit " + why) != std::string::npos);
    };
    CHECK(*carries("a", "9.9.9-unit"));
    CHECK_FALSE(*carries("b", "9.9.9-unit"));
    refused("c", "is or passes through a symbolic link");
    refused("d", "is or passes through a symbolic link");
    refused("e", "is or passes through something that is not a directory");
    CHECK_FALSE(*carries("a", "../a"));
    CHECK_FALSE(*carries("a", ""));
    CHECK_FALSE(*carries("missing", "9.9.9-unit"));
}

TEST_CASE("RDEXT_DEPMOD names the depmod to run, and must be one") {
    TempDir t;
    t.write("not-executable", "");
    ::setenv("RDEXT_DEPMOD", (t / "not-executable").c_str(), 1);
    auto bad = find_depmod();
    REQUIRE_FALSE(bad);
    CHECK(bad.error().what().find("not-executable") != std::string::npos);
    ::setenv("RDEXT_DEPMOD", "/bin/true", 1);
    auto good = find_depmod();
    REQUIRE(good);
    CHECK(*good == "/bin/true");
    ::unsetenv("RDEXT_DEPMOD");
}

TEST_CASE("the running kernel's release is the one the kernel reports") {
    // /proc/sys/kernel/osrelease is what `uname -r` and modprobe go by.
    std::string want;
    std::getline(std::ifstream("/proc/sys/kernel/osrelease"), want);
    REQUIRE_FALSE(want.empty());
    CHECK(running_kernel_release() == want);
}
