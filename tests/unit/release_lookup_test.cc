// Finding an image's extension-release file (systemd's
// open_extension_release() rules, v256+).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <initializer_list>
#include <string>

#include "release/extension_release.h"
#include "prerequisite.h"
#include "release_test_util.h"

using rdext::ImageClass;
using rdext::read_extension_release;
using rdext::testing::TempTree;

namespace {

const std::string kSysextDir = "img/usr/lib/extension-release.d/";
const std::string kConfextDir = "img/etc/extension-release.d/";

// The ID found for image `name`, or "error: <message>".
std::string lookup(const TempTree& t, const std::string& name, ImageClass cls = ImageClass::Sysext) {
    auto root = t.open("img");
    auto r = read_extension_release(root.get(), cls, name);
    if (!r) return "error: " + r.error().what();
    return (*r)["ID"];
}

bool set_strict_xattr(const std::string& path, const std::string& value) {
    return ::setxattr(path.c_str(), "user.extension-release.strict", value.data(), value.size(), 0) == 0;
}

// Whether the tree's file system takes user.* xattrs (tried on a scratch
// file), asked first in a case that needs them.
bool xattrs_supported(const TempTree& t) {
    t.write("xattr-probe", "");
    return rdext::test::can_run(set_strict_xattr(t.path("xattr-probe"), "0"),
                                "the file system refuses user.* xattrs");
}

}  // namespace

TEST_CASE("release lookup: the exact extension-release.NAME is read") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.foo", "ID=exact\n");
    CHECK(lookup(t, "foo") == "exact");
}

TEST_CASE("release lookup: confexts look in etc/extension-release.d") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.foo", "ID=sys\n");
    t.write(kConfextDir + "extension-release.foo", "ID=conf\n");
    CHECK(lookup(t, "foo", ImageClass::Confext) == "conf");
    CHECK(lookup(t, "foo", ImageClass::Sysext) == "sys");
}

TEST_CASE("release lookup: the exact file wins over a base-name match") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.foo_1", "ID=exact\n");
    t.write(kSysextDir + "extension-release.foo", "ID=base\n");
    CHECK(lookup(t, "foo_1") == "exact");
}

TEST_CASE("release lookup: without the exact file, the base name serves a versioned image") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.foo", "ID=base\n");
    CHECK(lookup(t, "foo_1.2") == "base");
    CHECK(lookup(t, "foo+3-1") == "base");
    CHECK(lookup(t, "foo_1.2.sysext.raw") == "base");
}

TEST_CASE("release lookup: lib_1 does not serve image lib_2") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.lib_1", "ID=one\n");
    auto r = read_extension_release(t.open("img").get(), ImageClass::Sysext, "lib_2");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ENOENT);
    CHECK(r.error().what().find("no extension-release.lib_2") != std::string::npos);
}

TEST_CASE("release lookup: no release file at all is ENOENT") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir("img/usr/lib");
    auto r = read_extension_release(t.open("img").get(), ImageClass::Sysext, "foo");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ENOENT);
    CHECK(r.error().what().find("no extension-release.foo") != std::string::npos);
}

TEST_CASE("release lookup: two candidates without an exact match are ambiguous") {
    TempTree t;
    REQUIRE(t.ok());
    if (!xattrs_supported(t)) return;
    t.write(kSysextDir + "extension-release.foo", "ID=base\n");
    t.write(kSysextDir + "extension-release.other", "ID=other\n");
    REQUIRE(set_strict_xattr(t.path(kSysextDir + "extension-release.other"), "0"));
    auto r = read_extension_release(t.open("img").get(), ImageClass::Sysext, "foo_2");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ENOTUNIQ);
    CHECK(r.error().what().find("ambiguous") != std::string::npos);
}

TEST_CASE("release lookup: user.extension-release.strict=0 lets a file serve any name") {
    TempTree t;
    REQUIRE(t.ok());
    if (!xattrs_supported(t)) return;
    const std::string file = kSysextDir + "extension-release.renamed";
    t.write(file, "ID=relaxed\n");
    CHECK(lookup(t, "foo").rfind("error: ", 0) == 0);  // no xattr: strict
    REQUIRE(set_strict_xattr(t.path(file), "0"));
    CHECK(lookup(t, "foo") == "relaxed");
    for (const std::string& off : std::initializer_list<std::string>{"false", "No", "OFF", "f", std::string("0\0", 2)}) {
        CAPTURE(off);
        REQUIRE(set_strict_xattr(t.path(file), off));
        CHECK(lookup(t, "foo") == "relaxed");
    }
}

TEST_CASE("release lookup: a true or unparsable strict xattr keeps the name check") {
    TempTree t;
    REQUIRE(t.ok());
    if (!xattrs_supported(t)) return;
    const std::string file = kSysextDir + "extension-release.renamed";
    t.write(file, "ID=strict\n");
    for (const std::string& on : std::initializer_list<std::string>{"1", "yes", "maybe", "", std::string("0\0x", 3)}) {
        CAPTURE(on);
        REQUIRE(set_strict_xattr(t.path(file), on));
        CHECK(lookup(t, "foo").rfind("error: ", 0) == 0);
    }
}

TEST_CASE("release lookup: fallback candidates must be regular files, not symlinks") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("img/elsewhere", "ID=linked\n");
    t.symlink("/elsewhere", kSysextDir + "extension-release.foo");
    // As the exact name a symlink is followed (inside the image) ...
    CHECK(lookup(t, "foo") == "linked");
    // ... as a fallback candidate it is skipped.
    CHECK(lookup(t, "foo_1").find("no extension-release.foo_1") != std::string::npos);
    t.mkdir(kSysextDir + "extension-release.bar");
    CHECK(lookup(t, "bar_1").find("no extension-release.bar_1") != std::string::npos);
}

TEST_CASE("release lookup: a symlink escaping the image root resolves inside it") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("secret", "ID=outside\n");      // next to the image, must not be read
    t.write("img/secret", "ID=inside\n");
    t.symlink("../../../../secret", kSysextDir + "extension-release.foo");
    CHECK(lookup(t, "foo") == "inside");
    t.symlink("/../../secret", kSysextDir + "extension-release.bar");
    CHECK(lookup(t, "bar") == "inside");
}

TEST_CASE("release lookup: a symlinked release directory stays inside the image") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("outside/extension-release.foo", "ID=outside\n");
    t.write("img/outside/extension-release.foo", "ID=inside\n");
    t.symlink("/outside", "img/usr/lib/extension-release.d");
    CHECK(lookup(t, "foo") == "inside");
}

TEST_CASE("release lookup: a FIFO as release file is refused without blocking") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir(kSysextDir);
    REQUIRE(::mkfifo(t.path(kSysextDir + "extension-release.foo").c_str(), 0644) == 0);
    CHECK(lookup(t, "foo").find("not a regular file") != std::string::npos);
}

TEST_CASE("release lookup: a release file over 64 KiB is refused") {
    TempTree t;
    REQUIRE(t.ok());
    t.write(kSysextDir + "extension-release.foo", "ID=x\n#" + std::string(70000, 'x') + "\n");
    auto r = read_extension_release(t.open("img").get(), ImageClass::Sysext, "foo");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == E2BIG);
}

TEST_CASE("release lookup: an invalid image name is refused") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir("img");
    for (std::string bad : {"", ".", "..", "a/b", ".#tmp", "tab\there", "\xFF"}) {
        CAPTURE(bad);
        auto r = read_extension_release(t.open("img").get(), ImageClass::Sysext, bad);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code() == EINVAL);
    }
}

TEST_CASE("release lookup: image base names drop .raw suffixes, versions and counters") {
    CHECK(rdext::image_base_name("foo") == "foo");
    CHECK(rdext::image_base_name("foo_1.2") == "foo");
    CHECK(rdext::image_base_name("foo+3-0") == "foo");
    CHECK(rdext::image_base_name("foo-bar_1_x86-64") == "foo-bar");
    CHECK(rdext::image_base_name("foo.raw") == "foo");
    CHECK(rdext::image_base_name("foo.confext.raw") == "foo");
    CHECK(rdext::image_base_name("_1") == "");
}

TEST_CASE("release lookup: an image shipping usr/lib/os-release is detected") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("img/etc/os-release", "ID=fine\n");
    CHECK(rdext::os_release_conflict(t.open("img").get(), ImageClass::Sysext).empty());
    t.write("img/usr/lib/os-release", "ID=bad\n");
    t.write("cx/usr/lib/os-release", "ID=bad\n");
    CHECK(rdext::os_release_conflict(t.open("img").get(), ImageClass::Sysext).find("ships usr/lib/os-release") == 0);
    CHECK(rdext::os_release_conflict(t.open("cx").get(), ImageClass::Confext).find("ships usr/lib/os-release") == 0);
}

TEST_CASE("release lookup: any entry at the OS's os-release counts, a dangling link too") {
    TempTree t;
    REQUIRE(t.ok());
    t.symlink("/nowhere", "img/usr/lib/os-release");
    CHECK(rdext::os_release_conflict(t.open("img").get(), ImageClass::Sysext) ==
          "ships usr/lib/os-release (a symbolic link), which would replace the OS's identity");
    t.mkdir("cx/etc");
    REQUIRE(::mkfifo(t.path("cx/etc/os-release").c_str(), 0600) == 0);
    CHECK(rdext::os_release_conflict(t.open("cx").get(), ImageClass::Confext) ==
          "ships etc/os-release (a FIFO), which would replace the OS's identity");
    // A sysext's etc is not merged: its etc/os-release changes nothing.
    CHECK(rdext::os_release_conflict(t.open("cx").get(), ImageClass::Sysext).empty());
}

TEST_CASE("release lookup: a link or an opaque directory on the way hides the OS's os-release") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir("link/usr/lib.real");
    t.symlink("lib.real", "link/usr/lib");
    CHECK(rdext::os_release_conflict(t.open("link").get(), ImageClass::Sysext) ==
          "usr/lib is a symbolic link, which would hide the OS's usr/lib/os-release");
    t.mkdir("opaque/usr/lib");
    REQUIRE(::setxattr(t.path("opaque/usr/lib").c_str(), "user.overlay.opaque", "y", 1, 0) == 0);
    CHECK(rdext::os_release_conflict(t.open("opaque").get(), ImageClass::Sysext) ==
          "usr/lib carries user.overlay.opaque, which would hide the OS's usr/lib/os-release");
    t.mkdir("cx/etc");
    REQUIRE(::setxattr(t.path("cx/etc").c_str(), "user.overlay.opaque", "x", 1, 0) == 0);
    CHECK(rdext::os_release_conflict(t.open("cx").get(), ImageClass::Confext) ==
          "etc carries user.overlay.opaque, which would hide the OS's etc/os-release");
}
