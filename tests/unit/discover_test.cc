#include <doctest/doctest.h>

#include <algorithm>

#include "base/fs.h"
#include "discover/discover.h"
#include "test_util.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

const Candidate* find(const std::vector<Candidate>& v, const std::string& path) {
    auto it = std::find_if(v.begin(), v.end(), [&](const Candidate& c) { return c.path == path; });
    return it == v.end() ? nullptr : &*it;
}

std::vector<Candidate> discover_ok(const TempDir& t, ImageClass cls) {
    auto root = t.open_root();
    auto r = discover(root.get(), cls);
    REQUIRE(r);
    return std::move(*r);
}

}  // namespace

TEST_CASE("discover: .raw files and directories become images, other files do not") {
    TempDir t;
    t.write("etc/extensions/a.raw", "x");
    t.write("etc/extensions/b.sysext.raw", "x");
    t.write("etc/extensions/notes.txt", "x");
    t.write("etc/extensions/d/usr/lib/x", "x");
    auto v = discover_ok(t, ImageClass::Sysext);
    REQUIRE(v.size() == 3);
    CHECK(find(v, "/etc/extensions/a.raw")->name == "a");
    CHECK(find(v, "/etc/extensions/a.raw")->kind == ImageKind::Raw);
    CHECK(find(v, "/etc/extensions/b.sysext.raw")->name == "b");
    CHECK(find(v, "/etc/extensions/d")->kind == ImageKind::Directory);
    CHECK(find(v, "/etc/extensions/notes.txt") == nullptr);
}

TEST_CASE("discover: the first search directory holding a name owns it") {
    TempDir t;
    t.write("etc/extensions/a/usr/x", "1");
    t.write("var/lib/extensions/a.raw", "2");
    t.write("run/extensions/a.raw", "3");
    auto v = discover_ok(t, ImageClass::Sysext);
    REQUIRE(v.size() == 3);
    CHECK(find(v, "/etc/extensions/a")->state == EntryState::Available);
    CHECK(find(v, "/run/extensions/a.raw")->state == EntryState::Shadowed);
    CHECK(find(v, "/var/lib/extensions/a.raw")->state == EntryState::Shadowed);
    CHECK(find(v, "/var/lib/extensions/a.raw")->reason.find("/etc/extensions/a") != std::string::npos);
}

TEST_CASE("discover: an empty directory masks, and so does a link to /dev/null") {
    TempDir t;
    t.mkdir("etc/extensions/a");
    t.symlink("/dev/null", "etc/extensions/b.raw");
    t.write("var/lib/extensions/a.raw", "x");
    t.write("var/lib/extensions/b.raw", "x");
    auto v = discover_ok(t, ImageClass::Sysext);
    CHECK(find(v, "/etc/extensions/a")->state == EntryState::Masked);
    CHECK(find(v, "/etc/extensions/b.raw")->state == EntryState::Masked);
    CHECK(find(v, "/var/lib/extensions/a.raw")->state == EntryState::Shadowed);
    CHECK(find(v, "/var/lib/extensions/b.raw")->state == EntryState::Shadowed);
}

TEST_CASE("discover: absolute symlinks resolve inside the root and keep the link's name") {
    TempDir t;
    t.write("opt/ext/a-1.raw", "x");
    t.symlink("/opt/ext/a-1.raw", "etc/extensions/a.raw");
    // Points at a directory that exists on the host but not in the root.
    t.symlink("/usr/bin", "etc/extensions/hostbin");
    auto v = discover_ok(t, ImageClass::Sysext);
    const Candidate* a = find(v, "/etc/extensions/a.raw");
    REQUIRE(a);
    CHECK(a->name == "a");
    CHECK(a->state == EntryState::Available);
    const Candidate* h = find(v, "/etc/extensions/hostbin");
    REQUIRE(h);
    CHECK(h->state == EntryState::Broken);
}

TEST_CASE("discover: '..' in a link cannot climb out of the root") {
    TempDir t;
    t.mkdir("etc/extensions");
    t.write("x/usr/lib/marker", "inside");
    t.symlink("../../../../../../x", "etc/extensions/up");
    auto v = discover_ok(t, ImageClass::Sysext);
    const Candidate* up = find(v, "/etc/extensions/up");
    REQUIRE(up);
    REQUIRE(up->state == EntryState::Available);
    // It resolved to <root>/x, not to a directory of the host.
    struct stat a, b;
    REQUIRE(::fstat(up->fd->get(), &a) == 0);
    REQUIRE(::stat((t / "x").c_str(), &b) == 0);
    CHECK(a.st_ino == b.st_ino);
}

TEST_CASE("discover: symlink loops are skipped as broken and hold no name") {
    TempDir t;
    t.symlink("loop2.raw", "etc/extensions/loop1.raw");
    t.symlink("loop1.raw", "etc/extensions/loop2.raw");
    t.write("var/lib/extensions/loop1.raw", "x");
    auto v = discover_ok(t, ImageClass::Sysext);
    CHECK(find(v, "/etc/extensions/loop1.raw")->state == EntryState::Broken);
    CHECK(find(v, "/var/lib/extensions/loop1.raw")->state == EntryState::Available);
}

TEST_CASE("discover: names that are not valid image names are skipped") {
    TempDir t;
    t.write("etc/extensions/.#tmp.raw", "x");
    t.write("etc/extensions/bad\x01name.raw", "x");
    t.write("etc/extensions/with space.raw", "x");
    auto v = discover_ok(t, ImageClass::Sysext);
    REQUIRE(v.size() == 3);
    CHECK(find(v, "/etc/extensions/with space.raw")->state == EntryState::Available);
    CHECK(find(v, "/etc/extensions/.#tmp.raw")->state == EntryState::Broken);
    CHECK(find(v, "/etc/extensions/bad\x01name.raw")->state == EntryState::Broken);
}

TEST_CASE("discover: candidates are sorted version-aware, the top layer last") {
    TempDir t;
    for (auto n : {"foo-10", "foo-9", "bar", "foo-9.1"}) t.write(std::string("etc/extensions/") + n + ".raw", "x");
    auto v = discover_ok(t, ImageClass::Sysext);
    std::vector<std::string> names;
    for (auto& c : v) names.push_back(c.name);
    CHECK(names == std::vector<std::string>{"bar", "foo-9", "foo-9.1", "foo-10"});
}

TEST_CASE("discover: confext search directories") {
    TempDir t;
    t.write("run/confexts/a/etc/x", "1");
    t.write("usr/lib/confexts/b.raw", "x");
    t.write("etc/extensions/c.raw", "x");
    auto v = discover_ok(t, ImageClass::Confext);
    REQUIRE(v.size() == 2);
    CHECK(find(v, "/run/confexts/a"));
    CHECK(find(v, "/usr/lib/confexts/b.raw"));
}

TEST_CASE("discover: a root without search directories offers nothing") {
    TempDir t;
    CHECK(discover_ok(t, ImageClass::Sysext).empty());
}

TEST_CASE("discover: another name for an image found before is skipped, naming the first") {
    TempDir t;
    t.write("var/lib/extensions/real/usr/lib/x", "x");
    t.symlink("/var/lib/extensions/real", "etc/extensions/alias");
    t.write("var/lib/extensions/img.raw", "x");
    t.symlink("../../var/lib/extensions/img.raw", "run/extensions/other.raw");
    auto v = discover_ok(t, ImageClass::Sysext);
    // the search order decides: /etc before /run before /var/lib
    CHECK(find(v, "/etc/extensions/alias")->state == EntryState::Available);
    CHECK(find(v, "/run/extensions/other.raw")->state == EntryState::Available);
    const Candidate* real = find(v, "/var/lib/extensions/real");
    CHECK(real->state == EntryState::Broken);
    CHECK(real->reason.find("same image as /etc/extensions/alias") != std::string::npos);
    CHECK(find(v, "/var/lib/extensions/img.raw")->reason.find("same image as /run/extensions/other.raw") !=
          std::string::npos);
}

TEST_CASE("locate_in_root: follows links in the last component inside the root, to the file opened") {
    TempDir t;
    t.write("var/lib/images/img.raw", "x");
    t.symlink("/var/lib/images/img.raw", "var/lib/images/link.raw");
    t.symlink("../../var/lib/images/link.raw", "etc/extensions/a.raw");
    t.write("etc/img.raw", "other");
    auto root = t.open_root();
    auto fd = open_in_root(root.get(), "/etc/extensions/a.raw", O_PATH);
    REQUIRE(fd);
    auto where = locate_in_root(root.get(), "/etc/extensions/a.raw", fd->get());
    REQUIRE(where);
    CHECK(where->name == "img.raw");
    auto st = stat_fd(where->dir.get());
    struct stat want;
    REQUIRE(::stat((t / "var/lib/images").c_str(), &want) == 0);
    CHECK((st && st->st_ino == want.st_ino));
    // the link now leads elsewhere: not the file that was opened
    ::unlink((t / "etc/extensions/a.raw").c_str());
    t.symlink("/etc/img.raw", "etc/extensions/a.raw");
    CHECK(!locate_in_root(root.get(), "/etc/extensions/a.raw", fd->get()));
}
