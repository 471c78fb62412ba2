// Mutable modes (names as systemd-sysext spells them, on the command line
// and the kernel command line) and the origin file a refresh compares.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"
#include "cli/options.h"
#include "cmdline/cmdline.h"
#include "state/metadata.h"
#include "target/mutable_mode.h"
#include "test_util.h"

using namespace rdext;

TEST_CASE("mutable: systemd's modes and booleans parse, anything else does not") {
    const std::pair<const char*, MutableMode> good[] = {
        {"no", MutableMode::No},           {"auto", MutableMode::Auto},
        {"yes", MutableMode::Yes},         {"import", MutableMode::Import},
        {"ephemeral", MutableMode::Ephemeral}, {"ephemeral-import", MutableMode::EphemeralImport},
        {"1", MutableMode::Yes},           {"false", MutableMode::No},
    };
    for (const auto& [text, mode] : good) {
        auto m = parse_mutable_mode(text);
        REQUIRE(m);
        CHECK(*m == mode);
    }
    for (const auto& [text, mode] : good)
        if (std::string(text).size() > 1 && std::string(text) != "false")
            CHECK(std::string(mutable_mode_name(mode)) == text);
    for (const char* bad : {"", "Yes ", "sometimes", "ephemeral_import", "importx"}) {
        auto m = parse_mutable_mode(bad);
        CHECK_FALSE(m);
        if (!m) CHECK(m.error().code() == EINVAL);
    }
}

TEST_CASE("mutable: rd.sysext.mutable= and rd.confext.mutable= are read per class, bad values warned") {
    auto s = parse_cmdline("rd.sysext.mutable=ephemeral rd.confext.mutable=yes");
    REQUIRE(s.sysext_mutable);
    CHECK(*s.sysext_mutable == "ephemeral");
    REQUIRE(s.confext_mutable);
    CHECK(*s.confext_mutable == "yes");
    CHECK(s.warnings.empty());
    auto bad = parse_cmdline("rd.sysext.mutable=sometimes rd.confext.mutable");
    CHECK_FALSE(bad.sysext_mutable);
    CHECK_FALSE(bad.confext_mutable);
    CHECK(bad.warnings.size() == 2);
}

TEST_CASE("mutable: --mutable= is validated") {
    char prog[] = "rdext", ok[] = "--mutable=ephemeral-import", cmd[] = "merge", bad[] = "--mutable=always";
    char* good_argv[] = {prog, ok, cmd, nullptr};
    auto o = parse_options(3, good_argv);
    REQUIRE(o);
    REQUIRE(o->mutable_mode);
    CHECK(*o->mutable_mode == "ephemeral-import");
    char* bad_argv[] = {prog, bad, cmd, nullptr};
    auto e = parse_options(3, bad_argv);
    REQUIRE_FALSE(e);
    CHECK(e.error().code() == EINVAL);
}

TEST_CASE("origin: what a refresh compares survives a write and a read") {
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
