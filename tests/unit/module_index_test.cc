// The merged module index's helpers (merge/module_index.h): which image
// layer carries modules for the running kernel, and which depmod runs. The
// index itself is built over real images by tests/integration/modules.sh
// and booted by the VM scenario "modules".
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "base/fs.h"
#include "merge/module_index.h"
#include "test_util.h"

using namespace rdext;
using rdext::test::TempDir;

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
