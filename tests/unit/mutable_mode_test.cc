// Mutable modes (merge/mutable.h): the names systemd-sysext spells them
// with, read once, on the command line (--mutable=) and on the kernel
// command line (rd.sysext.mutable=, rd.confext.mutable=). The layers a
// mode mounts are covered by tests/integration/mutable.sh.
#include <doctest/doctest.h>

#include <string>

#include "cli/options.h"
#include "cmdline/cmdline.h"
#include "target/mutable_mode.h"

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
    CHECK(s.of(ImageClass::Sysext).mutable_mode == MutableMode::Ephemeral);
    CHECK(s.of(ImageClass::Confext).mutable_mode == MutableMode::Yes);
    CHECK(s.warnings.empty());
    // A bad value is warned about and leaves the mode as it was.
    auto bad = parse_cmdline("rd.sysext.mutable=import rd.sysext.mutable=sometimes rd.confext.mutable");
    CHECK(bad.of(ImageClass::Sysext).mutable_mode == MutableMode::Import);
    CHECK(bad.of(ImageClass::Confext).mutable_mode == MutableMode::No);
    CHECK(bad.warnings.size() == 2);
}

TEST_CASE("mutable: --mutable= is validated") {
    char prog[] = "rdext", ok[] = "--mutable=ephemeral-import", cmd[] = "merge", bad[] = "--mutable=always";
    char* good_argv[] = {prog, ok, cmd, nullptr};
    auto o = parse_options(3, good_argv);
    REQUIRE(o);
    REQUIRE(o->mutable_mode);
    CHECK(*o->mutable_mode == MutableMode::EphemeralImport);
    char* bad_argv[] = {prog, bad, cmd, nullptr};
    auto e = parse_options(3, bad_argv);
    REQUIRE_FALSE(e);
    CHECK(e.error().code() == EINVAL);
}
