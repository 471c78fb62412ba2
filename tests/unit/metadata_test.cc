// The metadata layer (state/metadata.h): the files systemd-sysext reads in
// a merged hierarchy, rdext's own record a refresh compares, and systemd
// 260's origin object (merge/sysext_origin.h) beside it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <iterator>
#include <string>

#include "base/fs.h"
#include "state/metadata.h"
#include "state/state_file.h"
#include "test_util.h"

using namespace rdext;

TEST_CASE("metadata: device numbers in systemd's MAJOR:MINOR form") {
    CHECK(format_devnum(makedev(0, 41)) == "0:41");
    CHECK(format_devnum(makedev(259, 3)) == "259:3");
}

TEST_CASE("metadata: the meta layer carries the list and backing files systemd reads") {
    rdext::test::TempDir t;
    auto fd = t.open_root();
    ExtensionRecord a, b, c;
    a.name = "a";
    b.name = "b";
    c.name = "c";
    REQUIRE(write_meta_layer(fd.get(), ImageClass::Sysext, {a, b}, makedev(8, 1)));
    REQUIRE(write_meta_dev(fd.get(), ImageClass::Sysext, makedev(0, 50)));
    REQUIRE(write_meta_layer(fd.get(), ImageClass::Confext, {c}, makedev(8, 1)));
    auto slurp = [&](const std::string& rel) {
        std::ifstream in(t / rel);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(slurp(".systemd-sysext/extensions") == "a\nb\n");
    CHECK(slurp(".systemd-sysext/dev") == "0:50\n");
    CHECK(slurp(".systemd-sysext/backing") == "8:1\n");
    CHECK(slurp(".systemd-confext/confexts") == "c\n");
    CHECK(slurp(".systemd-sysext/rdext").find("\"name\":\"b\"") != std::string::npos);
    // systemd 260's origin is written once the merge's hierarchies are known.
    CHECK(slurp(".systemd-sysext/origin").empty());
}

TEST_CASE("rdext record: what a refresh compares survives a write and a read") {
    rdext::test::TempDir t;
    auto fd = t.open_root();
    ExtensionRecord a;
    a.name = "a";
    a.path = "/var/lib/extensions/a.raw";
    OriginInfo info;
    info.mutable_mode = "yes";
    info.work_dir = "/var/lib/extensions.mutable/.systemd-usr-workdir";
    info.inputs = "0123abcd";
    info.hierarchies = {"/usr", "/opt"};
    REQUIRE(write_meta_layer(fd.get(), ImageClass::Sysext, {a}, makedev(8, 1), info));
    auto back = read_origin(fd.get(), ImageClass::Sysext);
    REQUIRE(back);
    CHECK(back->inputs == "0123abcd");
    CHECK(back->mutable_mode == "yes");
    CHECK(back->hierarchies == std::vector<std::string>{"/usr", "/opt"});
    auto wd = open_path(t / ".systemd-sysext/work_dir", O_RDONLY);
    REQUIRE(wd);
    CHECK(*read_regular_file(wd->get(), 4096) == info.work_dir + "\n");
    // A metadata directory without origin (systemd-sysext 252): no inputs.
    auto none = open_path("/", O_PATH | O_DIRECTORY);
    REQUIRE(none);
    auto empty = read_origin(none->get(), ImageClass::Sysext);
    REQUIRE(empty);
    CHECK(empty->inputs.empty());
}

TEST_CASE("rdext record: beside systemd's origin, and read from an older rdext's origin") {
    rdext::test::TempDir t;
    auto fd = t.open_root();
    ExtensionRecord a;
    a.name = "a";
    OriginInfo info;
    info.inputs = "inputs v3";
    info.hierarchies = {"/usr"};
    const std::string systemd = "{\"mutable\":{\"mode\":\"no\"}}\n";
    REQUIRE(write_meta_origin(fd.get(), ImageClass::Sysext, {a}, info, systemd));
    auto slurp = [&](const std::string& rel) {
        std::ifstream in(t / rel);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(slurp(".systemd-sysext/origin") == systemd);
    auto back = read_origin(fd.get(), ImageClass::Sysext);
    REQUIRE(back);
    CHECK(back->inputs == "inputs v3");
    CHECK(back->hierarchies == std::vector<std::string>{"/usr"});

    // A merge made by an older rdext: its record is in `origin`, no `rdext`.
    rdext::test::TempDir old;
    auto old_fd = old.open_root();
    REQUIRE(make_dirs(old_fd.get(), ".systemd-sysext", 0755));
    auto dot = open_path(old / ".systemd-sysext", O_PATH | O_DIRECTORY);
    REQUIRE(dot);
    REQUIRE(write_file(dot->get(), "origin", rdext_record_json(ImageClass::Sysext, {a}, info)));
    auto legacy = read_origin(old_fd.get(), ImageClass::Sysext);
    REQUIRE(legacy);
    CHECK(legacy->inputs == "inputs v3");
    CHECK(legacy->hierarchies == std::vector<std::string>{"/usr"});

    // systemd 260's own origin, no `rdext`: not rdext's inputs.
    REQUIRE(write_file(dot->get(), "origin", systemd));
    auto theirs = read_origin(old_fd.get(), ImageClass::Sysext);
    REQUIRE(theirs);
    CHECK(theirs->inputs.empty());
}
