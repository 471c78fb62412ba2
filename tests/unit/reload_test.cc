// The release file keys that ask the service manager for a reload and unit
// restarts (reload/reload.h), read as systemd-sysext reads them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "release/os_release.h"
#include "reload/reload.h"

using rdext::ExtensionRelease;
using rdext::manager_actions;
using rdext::ManagerActions;
using rdext::unit_name_is_valid;

namespace {

// One extension whose release file is `text`, parsed as rdext parses it.
ExtensionRelease ext(const std::string& name, const std::string& text) {
    auto fields = rdext::parse_os_release(text);
    REQUIRE(fields.has_value());
    return {name, *fields};
}

ManagerActions actions_of(const std::string& text) { return manager_actions({ext("e", "ID=_any\n" + text)}); }

using Units = std::vector<std::string>;

}  // namespace

TEST_CASE("reload: EXTENSION_RELOAD_MANAGER takes systemd's booleans") {
    for (const char* yes : {"1", "yes", "TRUE", "on", "y", "t"}) {
        CAPTURE(yes);
        auto a = actions_of(std::string("EXTENSION_RELOAD_MANAGER=") + yes + "\n");
        CHECK(a.reload);
        CHECK(a.warnings.empty());
    }
    for (const char* no : {"0", "no", "false", "off"}) {
        CAPTURE(no);
        CHECK_FALSE(actions_of(std::string("EXTENSION_RELOAD_MANAGER=") + no + "\n").reload);
    }
    CHECK_FALSE(actions_of("").reload);
    CHECK_FALSE(actions_of("EXTENSION_RELOAD_MANAGER=\n").reload);
    auto bad = actions_of("EXTENSION_RELOAD_MANAGER=maybe\n");
    CHECK_FALSE(bad.reload);
    REQUIRE(bad.warnings.size() == 1);
    CHECK(bad.warnings[0] == "extension e: EXTENSION_RELOAD_MANAGER=maybe is no boolean, ignored");
}

TEST_CASE("reload: a unit list implies the reload and splits on any blank") {
    auto a = actions_of("EXTENSION_RESTART_UNITS=\"b.service  a.socket\tb.service\"\n");
    CHECK(a.reload);
    CHECK(a.restart == Units{"a.socket", "b.service"});
    CHECK(a.reload_or_restart.empty());
    auto r = actions_of("EXTENSION_RELOAD_OR_RESTART_UNITS='x@1.service'\nEXTENSION_RELOAD_MANAGER=0\n");
    CHECK(r.reload);  // the list wins over an explicit "no"
    CHECK(r.reload_or_restart == Units{"x@1.service"});
    CHECK_FALSE(actions_of("EXTENSION_RESTART_UNITS=\"  \"\n").reload);
}

TEST_CASE("reload: a unit in both lists is only restarted") {
    auto a = actions_of(
        "EXTENSION_RESTART_UNITS=\"y.service x.service\"\n"
        "EXTENSION_RELOAD_OR_RESTART_UNITS=\"x.service z.service\"\n");
    CHECK(a.restart == Units{"x.service", "y.service"});
    CHECK(a.reload_or_restart == Units{"z.service"});
}

TEST_CASE("reload: extensions ask together, each on its own terms") {
    auto a = manager_actions({
        ext("quiet", "ID=_any\nEXTENSION_RELOAD_MANAGER=no\n"),
        ext("restarts", "ID=_any\nEXTENSION_RESTART_UNITS=a.service\n"),
        ext("reloads", "ID=_any\nEXTENSION_RELOAD_OR_RESTART_UNITS=a.service b.service\n"),
    });
    CHECK(a.reload);
    CHECK(a.restart == Units{"a.service"});
    CHECK(a.reload_or_restart == Units{"b.service"});
    CHECK_FALSE(manager_actions({ext("quiet", "ID=_any\nEXTENSION_RELOAD_MANAGER=no\n")}).reload);
    CHECK_FALSE(manager_actions({}).reload);
}

TEST_CASE("reload: invalid unit names are ignored with a warning") {
    auto a = actions_of("EXTENSION_RESTART_UNITS=\"ok.service bogus/name tmpl@.service\"\n");
    CHECK(a.reload);
    CHECK(a.restart == Units{"ok.service"});
    REQUIRE(a.warnings.size() == 2);
    CHECK(a.warnings[0] == "extension e: invalid unit name 'bogus/name' in EXTENSION_RESTART_UNITS=, ignored");
    CHECK(a.warnings[1] == "extension e: invalid unit name 'tmpl@.service' in EXTENSION_RESTART_UNITS=, ignored");
}

TEST_CASE("reload: unit names as systemd's unit_name_is_valid() for plain and instance names") {
    for (const char* good : {"a.service", "getty@tty1.service", "foo\\x2dbar.mount", "x.socket", "t.timer",
                             "a:b-c_d.e.target", "i@a@b.service", "s.slice", "sc.scope", "au.automount",
                             "d.device", "sw.swap", "p.path"})
        CHECK_MESSAGE(unit_name_is_valid(good), good);
    for (const char* bad : {"", ".service", "a", "a.", "a.bogus", "a.Service", "tmpl@.service", "@i.service",
                            "a b.service", "a/b.service", "ä.service"})
        CHECK_FALSE_MESSAGE(unit_name_is_valid(bad), bad);
    std::string longest(247, 'a');  // 247 + ".service" = 255, one under systemd's UNIT_NAME_MAX
    CHECK(unit_name_is_valid(longest + ".service"));
    CHECK_FALSE(unit_name_is_valid(longest + "a.service"));
}
