#include <doctest/doctest.h>

#include <sys/sysmacros.h>

#include "cli/options.h"
#include "mount/overlay.h"
#include "state/metadata.h"
#include "state/state_file.h"
#include "test_util.h"

using namespace rdext;

TEST_CASE("state.json round-trips records, odd characters included") {
    MergeState s;
    s.root = "/sysroot";
    s.time = "2026-01-01T00:00:00Z";
    ExtensionRecord r;
    r.name = "we\"ird\nname";
    r.cls = "sysext";
    r.path = "/etc/extensions/x.raw";
    r.kind = "raw";
    r.fstype = "erofs";
    r.result = "skipped";
    r.reason = "VERSION_ID=11 does not match";
    r.hierarchies = {"/usr", "/opt"};
    s.extensions.push_back(r);
    auto back = state_from_json(state_to_json(s, true));
    REQUIRE(back);
    CHECK(back->root == "/sysroot");
    REQUIRE(back->extensions.size() == 1);
    CHECK(back->extensions[0].name == r.name);
    CHECK(back->extensions[0].reason == r.reason);
    CHECK(back->extensions[0].hierarchies == r.hierarchies);
}

TEST_CASE("state.json that is not JSON is an error, not a crash") {
    CHECK_FALSE(state_from_json("{not json"));
    CHECK_FALSE(state_from_json("[1,2]"));
    auto empty = state_from_json("{}");
    REQUIRE(empty);
    CHECK(empty->extensions.empty());
}

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
    CHECK(slurp(".systemd-sysext/origin").find("\"name\":\"b\"") != std::string::npos);
}

TEST_CASE("overlay: legacy lowerdir= strings escape separators") {
    CHECK(escape_lowerdir("/a:b,c\\d") == "/a\\:b\\,c\\\\d");
    CHECK(escape_lowerdir("/plain") == "/plain");
}

namespace {
Result<Options> parse(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST_CASE("options: commands and flags") {
    auto o = parse({"rdext", "--root=/r", "--json", "status"});
    REQUIRE(o);
    CHECK(o->command == Command::Status);
    CHECK(o->root == "/r");
    CHECK(o->json);
    CHECK(parse({"rdext", "--help"})->command == Command::Help);
    CHECK(parse({"rdext", "--version"})->command == Command::Version);
}

TEST_CASE("options: usage errors") {
    CHECK_FALSE(parse({"rdext"}));
    CHECK_FALSE(parse({"rdext", "frobnicate"}));
    CHECK_FALSE(parse({"rdext", "--no-such-option", "merge"}));
    CHECK_FALSE(parse({"rdext", "merge", "extra"}));
    CHECK_FALSE(parse({"rdext", "--root"}));
}
