// Kernel module loading decisions (kmod/modules.h). Loading a
// real module needs a kernel with loadable modules: the VM scenario
// "modules" proves that; here the loader is pointed at synthetic trees.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "base/fs.h"
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

TEST_CASE("why a module the tree does not have may be missing") {
    TempDir t;
    t.mkdir("sys/module");
    {
        // no module tree at all (a host without /lib/modules)
        ModuleLoader loader(synthetic(t));
        CHECK(loader.ensure_module("rdext_unit_absent"));
        CHECK(loader.why_missing("rdext_unit_absent") ==
              "kernel module rdext_unit_absent is not loaded, and there is no module tree " +
                  (t / "lib/modules/9.9.9-unit"));
    }
    t.mkdir("lib/modules/9.9.9-unit");
    ModuleLoader loader(synthetic(t));
    CHECK(loader.why_missing("rdext_unit_absent") == "");  // never asked for
    CHECK(loader.ensure_module("rdext_unit_absent"));
    CHECK(loader.why_missing("rdext_unit_absent") ==
          "kernel module rdext_unit_absent is neither loaded nor in the module tree " + (t / "lib/modules/9.9.9-unit"));
    // loaded since: no longer a cause
    t.mkdir("sys/module/rdext_unit_absent");
    CHECK(loader.why_missing("rdext_unit_absent") == "");
}
