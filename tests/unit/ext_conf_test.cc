// sysext.conf / confext.conf (target/ext_conf.h), the hierarchy lists of
// SYSTEMD_SYSEXT_HIERARCHIES (target/target.h), where their image policies
// rank (policy/policy_file.h), and the options --force, --noexec= and
// --always-refresh= (cli/options.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/options.h"
#include "policy/policy_file.h"
#include "target/ext_conf.h"
#include "target/target.h"

using namespace rdext;

namespace {
Result<Options> parse_args(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_options(static_cast<int>(args.size()), argv.data());
}

ImagePolicy policy(const char* text) {
    auto p = parse_image_policy(text);
    REQUIRE(p.has_value());
    return *p;
}
}  // namespace

TEST_CASE("sysext.conf: the class's section, later values win, others warned about") {
    ExtConf conf;
    std::vector<std::string> warnings;
    const char* text =
        "# comment\n"
        "[Sysext]\n"
        "Mutable = yes\n"
        "ImagePolicy=root=verity+absent\n"
        "Bogus=1\n"
        "[Confext]\n"
        "Mutable=no\n"
        "[Sysext]\n"
        "; comment\n"
        "Mutable=import\n";
    REQUIRE(parse_ext_conf(text, "Sysext", "/etc/systemd/sysext.conf", conf, warnings));
    REQUIRE(conf.mutable_mode);
    CHECK(conf.mutable_mode->value == "import");
    CHECK(conf.mutable_mode->origin == "/etc/systemd/sysext.conf:10");
    REQUIRE(conf.image_policy);
    CHECK(conf.image_policy->value == "root=verity+absent");
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0] == "/etc/systemd/sysext.conf:5: unknown key Bogus= ignored");
    CHECK(warnings[1] == "/etc/systemd/sysext.conf:6: section [Confext] ignored");

    ExtConf cx;
    REQUIRE(parse_ext_conf(text, "Confext", "confext.conf", cx, warnings));
    REQUIRE(cx.mutable_mode);
    CHECK(cx.mutable_mode->value == "no");
    CHECK_FALSE(cx.image_policy);
}

TEST_CASE("sysext.conf: malformed lines are errors naming the line") {
    ExtConf conf;
    std::vector<std::string> warnings;
    auto r = parse_ext_conf("[Sysext]\nMutable\n", "Sysext", "f", conf, warnings);
    REQUIRE_FALSE(r);
    CHECK(r.error().what() == "f:2: expected KEY=VALUE");
    r = parse_ext_conf("[Sysext\n", "Sysext", "f", conf, warnings);
    REQUIRE_FALSE(r);
    CHECK(r.error().what() == "f:1: malformed section header");
}

TEST_CASE("SYSTEMD_SYSEXT_HIERARCHIES: absolute, normalized, not /, no overlap") {
    auto l = parse_hierarchy_list("V", "/usr:/opt:/nix/store/");
    REQUIRE(l);
    CHECK(*l == std::vector<std::string>{"/usr", "/opt", "/nix/store"});
    for (const char* bad : {"", "usr", "/usr::/opt", "/usr/../opt", "/usr/./x", "//usr", "/", "/usr:/usr",
                            "/usr:/usr/share", "/usr/share:/usr"})
        CHECK_MESSAGE(!parse_hierarchy_list("V", bad), bad);
    CHECK(parse_hierarchy_list("V", "usr").error().what() == "V: 'usr' is not an absolute path");
}

TEST_CASE("hierarchy_dir_name: one path component, as systemd-sysext names mutable directories") {
    CHECK(hierarchy_dir_name("/usr") == "usr");
    CHECK(hierarchy_dir_name("/nix/store") == "nix.store");
    CHECK(hierarchy_dir_name("/srv/data/") == "srv.data");
}

TEST_CASE("policy resolution: ImagePolicy= of the configuration files") {
    PolicyConfig c;
    c.trusted_conf[0] = PolicyConfig::ConfPolicy{policy("root=verity+unprotected+absent"), "/etc/systemd/sysext.conf:2"};
    auto r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.to_string() == "root=verity+unprotected+absent");
    CHECK(r.source == "/etc/systemd/sysext.conf:2 (ImagePolicy=)");
    // Over rd.sysext.image_policy=, under --image-policy=.
    c.sysext_cmdline = policy("root=signed+absent");
    CHECK(resolve_policy(c, ImageClass::Sysext, "foo").source == "/etc/systemd/sysext.conf:2 (ImagePolicy=)");
    c.from_option = true;
    CHECK(resolve_policy(c, ImageClass::Sysext, "foo").source == "--image-policy=");
    c.from_option = false;
    c.sysext_cmdline.reset();
    // The confext class is not governed by sysext.conf.
    CHECK(resolve_policy(c, ImageClass::Confext, "foo").source == "built-in confext default");

    // The root's may only tighten: unprotected can be taken away, signed not added.
    c.sysroot_conf[0] = PolicyConfig::ConfPolicy{policy("root=verity+signed+absent"), "/etc/systemd/sysext.conf:3"};
    r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.to_string() == "root=verity+absent:root-verity-sig=absent");
    CHECK(r.source == "/etc/systemd/sysext.conf:2 (ImagePolicy=), tightened by /etc/systemd/sysext.conf:3 (ImagePolicy=)");
    CHECK_FALSE(r.warnings.empty());
}

TEST_CASE("options: --force, --noexec=BOOL, --always-refresh=BOOL") {
    auto o = parse_args({"rdext", "--force", "--noexec=no", "--always-refresh=yes", "refresh"});
    REQUIRE(o);
    CHECK(o->force);
    REQUIRE(o->noexec);
    CHECK_FALSE(*o->noexec);
    CHECK(o->always_refresh);
    o = parse_args({"rdext", "merge"});
    REQUIRE(o);
    CHECK_FALSE(o->force);
    CHECK_FALSE(o->noexec);
    CHECK_FALSE(o->always_refresh);
    for (const char* t : {"1", "y", "TRUE", "on", "t"}) CHECK(*parse_boolean(t, "--x="));
    for (const char* t : {"0", "n", "False", "off", "f"}) CHECK_FALSE(*parse_boolean(t, "--x="));
    auto bad = parse_args({"rdext", "--noexec=maybe", "merge"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == "--noexec= expects a boolean (yes or no), not 'maybe'");
}
