#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/policy_file.h"
#include "test_util.h"

using namespace rdext;
namespace pf = policy_flag;

namespace {

ImagePolicy parse_ok(const std::string& s) {
    auto p = parse_image_policy(s);
    REQUIRE_MESSAGE(p.has_value(), s << ": " << p.error().what());
    return *p;
}

std::string parse_err(const std::string& s) {
    auto p = parse_image_policy(s);
    REQUIRE_MESSAGE(!p.has_value(), s << " parsed as " << p->to_string());
    CHECK(p.error().code() == EINVAL);
    return p.error().message();
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

bool any_contains(const std::vector<std::string>& v, const std::string& needle) {
    for (const auto& s : v)
        if (contains(s, needle)) return true;
    return false;
}

const PolicyFlags kPf = pf::ReadOnlyMask | pf::GrowfsMask;  // extended "don't care" GPT flags

}  // namespace

TEST_CASE("policy: designator names round trip") {
    for (Designator d : all_designators()) CHECK(designator_from_name(designator_name(d)) == d);
    CHECK_FALSE(designator_from_name("ROOT"));
    CHECK_FALSE(designator_from_name("opt"));
    CHECK_FALSE(designator_from_name(""));
    CHECK(std::string(designator_name(Designator::UsrVeritySig)) == "usr-verity-sig");
}

TEST_CASE("policy: every flag parses") {
    struct {
        const char* text;
        PolicyFlags flags;
    } cases[] = {
        {"verity", pf::Verity},           {"signed", pf::Signed},         {"encrypted", pf::Encrypted},
        {"unprotected", pf::Unprotected}, {"unused", pf::Unused},         {"absent", pf::Absent},
        {"open", pf::Open},               {"ignore", pf::Ignore},         {"read-only-on", pf::ReadOnlyOn},
        {"read-only-off", pf::ReadOnlyOff}, {"growfs-on", pf::GrowfsOn}, {"growfs-off", pf::GrowfsOff},
        {"btrfs", pf::Btrfs},             {"erofs", pf::Erofs},           {"ext4", pf::Ext4},
        {"f2fs", pf::F2fs},               {"squashfs", pf::Squashfs},     {"vfat", pf::Vfat},
        {"xfs", pf::Xfs},                 {"", 0},                        {"-", 0},
        {"verity+signed", pf::Verity | pf::Signed},
        {"verity+verity", pf::Verity},  // a repeated flag is harmless, as in systemd
        {" verity + absent ", pf::Verity | pf::Absent},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        auto f = parse_policy_flags(c.text);
        REQUIRE(f.has_value());
        CHECK(*f == c.flags);
    }
    for (const char* bad : {"veriti", "verity+", "+verity", "verity++signed", "Verity", "verity,signed"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_policy_flags(bad).has_value());
    }
}

TEST_CASE("policy: symbolic whole-policy words") {
    CHECK(parse_ok("*").equivalent(ImagePolicy::allow_all()));
    CHECK(parse_ok("-").equivalent(ImagePolicy::ignore_all()));
    CHECK(parse_ok("").equivalent(ImagePolicy::ignore_all()));
    CHECK(parse_ok("~").equivalent(ImagePolicy::deny_all()));
    CHECK(parse_ok("*").effective(Designator::Root) == (pf::Open | kPf));
    CHECK(parse_ok("-").effective(Designator::Home) == (pf::Ignore | kPf));
    CHECK(parse_ok("~").effective(Designator::Usr) == pf::Absent);
    // Long forms are the same policies and print as the short ones.
    CHECK(parse_ok("=verity+signed+encrypted+unprotected+unused+absent").to_string() == "*");
    CHECK(parse_ok("=unused+absent").to_string() == "-");
    CHECK(parse_ok("=absent").to_string() == "~");
}

TEST_CASE("policy: rules, default rule and normalization") {
    ImagePolicy p = parse_ok("root=verity+signed:usr=encrypted+read-only-on:=absent");
    CHECK(p.rule(Designator::Root) == (pf::Verity | pf::Signed));
    CHECK(p.default_flags() == pf::Absent);
    CHECK(p.effective(Designator::Root) == (pf::Verity | pf::Signed | kPf));
    CHECK(p.effective(Designator::Usr) == (pf::Encrypted | pf::ReadOnlyOn | pf::GrowfsMask));
    CHECK(p.effective(Designator::Home) == pf::Absent);
    // A rule without use flags means open.
    CHECK(parse_ok("root=").effective(Designator::Root) == (pf::Open | kPf));
    CHECK(parse_ok("root=read-only-on").effective(Designator::Root) ==
          (pf::Open | pf::ReadOnlyOn | pf::GrowfsMask));
    // Partitions without verity cannot be verity or signed.
    CHECK(parse_ok("home=verity+encrypted").effective(Designator::Home) == (pf::Encrypted | kPf));
    // Verity partitions without a rule derive theirs from the data partition.
    ImagePolicy v = parse_ok("usr=signed+absent");
    CHECK(v.effective(Designator::UsrVerity) == (pf::Unprotected | pf::Absent | kPf));
    CHECK(v.effective(Designator::UsrVeritySig) == (pf::Unprotected | pf::Absent | kPf));
    ImagePolicy w = parse_ok("usr=verity");
    CHECK(w.effective(Designator::UsrVerity) == (pf::Unprotected | kPf));
    CHECK(w.effective(Designator::UsrVeritySig) == (pf::Ignore | kPf));  // no signed: the default
    // Spaces around names and flags are tolerated, like systemd.
    CHECK(parse_ok(" root = verity : usr = signed ").equivalent(parse_ok("root=verity:usr=signed")));
}

TEST_CASE("policy: invalid strings name the bad token") {
    CHECK(contains(parse_err("root=verity:opt=signed"), "'opt'"));
    CHECK(contains(parse_err("ROOT=verity"), "'ROOT'"));
    CHECK(contains(parse_err("root=veriti"), "'veriti'"));
    CHECK(contains(parse_err("root=verity:root=signed"), "'root' given twice"));
    CHECK(contains(parse_err("=verity:=signed"), "default rule"));
    CHECK(contains(parse_err("root"), "'root' has no '='"));
    CHECK(contains(parse_err("root=verity::usr=signed"), "empty rule"));
    CHECK(contains(parse_err("root=verity:"), "empty rule"));
    CHECK(contains(parse_err(":root=verity"), "empty rule"));
    CHECK(contains(parse_err("root=verity++signed"), "empty flag"));
    CHECK(contains(parse_err("root=a=b"), "'a=b'"));
    CHECK(contains(parse_err("**"), "'**'"));
    CHECK(contains(parse_err("* "), "'*' has no '='"));
    CHECK(contains(parse_err(" "), "empty rule"));
}

TEST_CASE("policy: canonical formatting and round trip") {
    struct {
        const char* in;
        const char* out;
    } cases[] = {
        {"usr=verity+read-only-on:root=encrypted:swap=encrypted",
         "root=encrypted:usr=verity+read-only-on:swap=encrypted"},
        {"root=encrypted+read-only-off:srv=encrypted+absent:swap=absent",
         "root=encrypted+read-only-off:srv=encrypted+absent:swap=absent"},
        {"root=unprotected+encrypted:swap=absent+unused:=unprotected+encrypted+absent",
         "root=encrypted+unprotected:swap=ignore:=encrypted+unprotected+absent"},
        {"root=signed+verity", "root=verity+signed"},
        {"root=open", "root=open"},
        {"root=read-only-on+read-only-off", "root=-"},  // systemd's spelling: no use flag = open
        {"root=verity+growfs-on+growfs-off", "root=verity"},
        {"usr=signed+erofs+squashfs", "usr=signed+erofs+squashfs"},
        {"home=ignore", "-"},                      // same as the default: left out
        {"root=absent:=absent", "~"},
        {"=open", "*"},
        {"=ignore", "-"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        ImagePolicy p = parse_ok(c.in);
        CHECK(p.to_string() == c.out);
        ImagePolicy again = parse_ok(p.to_string());
        CHECK(again.equivalent(p));
        CHECK(again.to_string() == p.to_string());
    }
    // Round trips also where verity rules interact with the default and
    // with the derivation from their data partition.
    for (const char* in : {"root=open:root-verity=open:=open", "usr=signed:usr-verity=ignore",
                           "usr=verity:usr-verity-sig=absent:=absent", "root-verity=unused:=open",
                           "home=verity:=encrypted", "root=ignore:root-verity-sig=open"}) {
        CAPTURE(in);
        ImagePolicy p = parse_ok(in);
        CHECK(parse_ok(p.to_string()).equivalent(p));
    }
    CHECK(format_policy_flags(0) == "-");
    CHECK(format_policy_flags(pf::Open, false) == "verity+signed+encrypted+unprotected+unused+absent");
    CHECK(format_policy_flags(pf::Ignore) == "ignore");
    CHECK(format_policy_flags(pf::Verity | kPf) == "verity");
    CHECK(format_policy_flags(pf::Verity | kPf, false) == "verity+read-only-on+read-only-off+growfs-off+growfs-on");
    CHECK_FALSE(parse_ok("root=verity").equivalent(parse_ok("root=signed")));
}

TEST_CASE("policy: systemd's sysext and confext defaults") {
    ImagePolicy sys = default_image_policy(ImageClass::Sysext);
    ImagePolicy conf = default_image_policy(ImageClass::Confext);
    CHECK(sys.to_string() ==
          "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent");
    CHECK(conf.to_string() == "root=verity+signed+encrypted+unprotected+absent");
    CHECK(sys.equivalent(parse_ok(sys.to_string())));
    CHECK(sys.effective(Designator::Home) == (pf::Ignore | kPf));
    CHECK(conf.effective(Designator::Usr) == (pf::Ignore | kPf));
    CHECK(sys.effective(Designator::UsrVerity) == (pf::Unprotected | pf::Absent | kPf));
}

TEST_CASE("policy: evaluation matrix, one state against each flag") {
    using S = ImageState;
    using U = PartitionUse;
    const U R = U::Refused;
    struct Row {
        const char* flags;
        U absent, unprotected, verity, signed_, failed, encrypted;
    };
    // The use chosen for usr under "usr=FLAGS" for each state.
    Row rows[] = {
        {"verity", R, R, U::Verity, U::Verity, R, R},
        {"signed", R, R, R, U::Signed, R, R},
        {"encrypted", R, R, R, R, R, U::Encrypted},
        {"unprotected", R, U::Unprotected, U::Unprotected, U::Unprotected, R, R},
        {"unused", R, U::Unused, U::Unused, U::Unused, R, U::Unused},
        {"absent", U::Absent, R, R, R, R, R},
        {"ignore", U::Absent, U::Unused, U::Unused, U::Unused, R, U::Unused},
        {"open", U::Absent, U::Unprotected, U::Verity, U::Signed, R, U::Encrypted},
        {"verity+unprotected", R, U::Unprotected, U::Verity, U::Verity, R, R},
        {"signed+unprotected+absent", U::Absent, U::Unprotected, U::Unprotected, U::Signed, R, R},
        {"signed+verity+unprotected+encrypted+unused+absent", U::Absent, U::Unprotected, U::Verity, U::Signed,
         R, U::Encrypted},
    };
    for (const Row& r : rows) {
        CAPTURE(r.flags);
        ImagePolicy p = parse_ok(std::string("usr=") + r.flags);
        const std::pair<S, U> expect[] = {{S::Absent, r.absent},   {S::Unprotected, r.unprotected},
                                          {S::Verity, r.verity},   {S::Signed, r.signed_},
                                          {S::SignatureFailed, r.failed}, {S::Encrypted, r.encrypted}};
        for (const auto& [state, use] : expect) {
            CAPTURE(image_state_name(state));
            PolicyVerdict v = evaluate_partition(p, Designator::Usr, state);
            CHECK(partition_use_name(v.use) == std::string(partition_use_name(use)));
            CHECK(v.accepted() == (use != R));
            if (!v.accepted()) {
                CHECK(contains(v.reason, "usr: "));
                CHECK(contains(v.reason, "policy allows"));
            } else {
                CHECK(v.reason.empty());
            }
        }
    }
}

TEST_CASE("policy: a failed signature never passes, whatever the policy") {
    for (const char* s : {"*", "usr=open", "usr=verity+unprotected", "usr=unprotected", "=open",
                          "usr=signed+verity+unprotected+encrypted+unused+absent"}) {
        CAPTURE(s);
        PolicyVerdict v = evaluate_partition(parse_ok(s), Designator::Usr, ImageState::SignatureFailed);
        CHECK_FALSE(v.accepted());
        CHECK(contains(v.reason, "usr: signature check FAILED"));
        CHECK(!evaluate_image(parse_ok(s), {{Designator::Usr, ImageState::SignatureFailed, ""}}).accepted());
    }
}

TEST_CASE("policy: refusal reasons name designator, offer and allowed flags") {
    ImagePolicy p = parse_ok("usr=signed+absent");
    PolicyVerdict v = evaluate_partition(p, Designator::Usr, ImageState::Verity);
    CHECK(v.reason == "usr: image offers verity (no signature); policy allows signed+absent");
    v = evaluate_partition(parse_ok("root=signed"), Designator::Root, ImageState::Absent);
    CHECK(v.reason == "root: partition is absent; policy allows signed");
}

TEST_CASE("policy: file system types are checked when both sides name one") {
    ImagePolicy p = parse_ok("usr=signed+erofs+squashfs");
    CHECK(evaluate_partition(p, Designator::Usr, ImageState::Signed, "erofs").accepted());
    CHECK(evaluate_partition(p, Designator::Usr, ImageState::Signed, "").accepted());
    PolicyVerdict v = evaluate_partition(p, Designator::Usr, ImageState::Signed, "ext4");
    CHECK_FALSE(v.accepted());
    CHECK(contains(v.reason, "ext4"));
    CHECK_FALSE(evaluate_partition(p, Designator::Usr, ImageState::Signed, "ntfs").accepted());
    CHECK(evaluate_partition(parse_ok("usr=signed"), Designator::Usr, ImageState::Signed, "ext4").accepted());
}

TEST_CASE("policy: whole images under the sysext default") {
    ImagePolicy sys = default_image_policy(ImageClass::Sysext);
    // A raw file system image counts as root (with root-verity when it has sidecars).
    PolicyVerdict v = evaluate_image(sys, {{Designator::Root, ImageState::Signed, ""},
                                           {Designator::RootVerity, ImageState::Unprotected, ""}});
    CHECK(v.accepted());
    CHECK(v.use == PartitionUse::Signed);
    CHECK(evaluate_image(sys, {}).use == PartitionUse::Absent);
    CHECK(evaluate_image(sys, {{Designator::Usr, ImageState::Unprotected, ""}}).use == PartitionUse::Unprotected);
    // Ignored partitions may be there, unused.
    CHECK(evaluate_image(sys, {{Designator::Usr, ImageState::Verity, ""}, {Designator::Home, ImageState::Unprotected, ""}})
              .accepted());
    v = evaluate_image(parse_ok("usr=signed+absent:=absent"),
                       {{Designator::Usr, ImageState::Signed, ""}, {Designator::Home, ImageState::Unprotected, ""}});
    CHECK_FALSE(v.accepted());
    CHECK(contains(v.reason, "home: "));
    v = evaluate_image(parse_ok("usr=signed"), {{Designator::Root, ImageState::Signed, ""}});
    CHECK_FALSE(v.accepted());
    CHECK(contains(v.reason, "usr: partition is absent"));
}

TEST_CASE("policy: intersection keeps only what both allow") {
    std::vector<std::string> w;
    ImagePolicy trusted = default_image_policy(ImageClass::Sysext);
    ImagePolicy r = intersect_policies(trusted, parse_ok("root=signed+absent:usr=signed+absent"), "ctx", &w);
    CHECK(r.to_string() == "root=signed+absent:usr=signed+absent");
    CHECK(w.empty());

    w.clear();
    r = intersect_policies(parse_ok("usr=signed+absent"), parse_ok("usr=signed+unprotected+absent"), "ctx", &w);
    CHECK(r.effective(Designator::Usr) == (pf::Signed | pf::Absent | kPf));
    REQUIRE(w.size() == 1);
    CHECK(w[0] == "ctx: usr: unprotected not allowed by the trusted policy, ignored");

    // open/ignore are plain sets: open ∩ X = X, ignore ∩ (verity+absent) = absent.
    w.clear();
    r = intersect_policies(parse_ok("usr=open"), parse_ok("usr=verity+absent"), "", &w);
    CHECK(r.effective(Designator::Usr) == (pf::Verity | pf::Absent | kPf));
    r = intersect_policies(parse_ok("usr=ignore"), parse_ok("usr=verity+absent"), "", &w);
    CHECK(r.effective(Designator::Usr) == pf::Absent);  // absent only: no GPT flags to check
    CHECK(any_contains(w, "usr: verity not allowed"));

    // Nothing in common for root or usr: both cannot hold, so no image
    // passes (only "unused"); the root's rule is never set aside.
    w.clear();
    r = intersect_policies(parse_ok("usr=signed"), parse_ok("usr=unprotected"), "", &w);
    CHECK((r.effective(Designator::Usr) & pf::UseMask) == pf::Unused);
    CHECK(any_contains(w, "no image passes"));
    r = intersect_policies(parse_ok("root=signed:usr=signed"), parse_ok("~"), "", &w);
    CHECK((r.effective(Designator::Root) & pf::UseMask) == pf::Unused);
    CHECK((r.effective(Designator::Usr) & pf::UseMask) == pf::Unused);
    for (auto offered : {std::vector<OfferedPartition>{{Designator::Usr, ImageState::Signed, "erofs"}},
                         std::vector<OfferedPartition>{{Designator::Root, ImageState::Signed, "erofs"}}})
        CHECK_FALSE(evaluate_image(r, offered).accepted());

    // GPT flag pairs and file system types.
    w.clear();
    r = intersect_policies(parse_ok("usr=signed+read-only-on"), parse_ok("usr=signed+read-only-off"), "", &w);
    CHECK((r.effective(Designator::Usr) & pf::UseMask) == pf::Unused);  // no GPT flag both allow
    r = intersect_policies(parse_ok("usr=signed"), parse_ok("usr=signed+read-only-on+erofs"), "", &w);
    CHECK(r.effective(Designator::Usr) == (pf::Signed | pf::ReadOnlyOn | pf::GrowfsMask | pf::Erofs));
    r = intersect_policies(parse_ok("usr=signed+erofs"), parse_ok("usr=signed+erofs+ext4"), "", &w);
    CHECK((r.effective(Designator::Usr) & pf::FstypeMask) == pf::Erofs);

    // Defaults intersect too; a loosened default is reported.
    w.clear();
    r = intersect_policies(parse_ok("~"), parse_ok("usr=absent"), "", &w);
    CHECK(w.empty());  // an unwritten default ("ignore") is not a loosening attempt
    r = intersect_policies(parse_ok("~"), parse_ok("*"), "", &w);
    CHECK(r.equivalent(ImagePolicy::deny_all()));
    CHECK(any_contains(w, "default: verity+signed+encrypted+unprotected+unused not allowed"));

    // Intersecting never allows more than the trusted side, for any pair.
    const char* samples[] = {"*", "-", "~", "usr=signed", "usr=verity+unprotected:=absent", "root=open:usr=unused",
                             "usr=encrypted+read-only-on", "root=verity:usr=signed+absent:=ignore",
                             "usr=signed:usr-verity=open:usr-verity-sig=absent", "root-verity=unused:=open",
                             "usr=erofs+growfs-off", "usr=squashfs+absent:root=unprotected+read-only-off"};
    for (const char* a : samples)
        for (const char* b : samples) {
            std::string pair = std::string(a) + " & " + b;
            CAPTURE(pair);
            ImagePolicy t = parse_ok(a);
            ImagePolicy x = intersect_policies(t, parse_ok(b), "", nullptr);
            for (Designator d : all_designators()) {
                CAPTURE(designator_name(d));
                // No use or GPT flag beyond the trusted side's (a root or usr
                // left only "unused", which no image passes, aside) ...
                const bool passes_none = (d == Designator::Root || d == Designator::Usr) &&
                                         (x.effective(d) & pf::UseMask) == pf::Unused;
                if (!passes_none) CHECK((x.effective(d) & ~t.effective(d) & ~pf::FstypeMask) == 0);
                // ... and file system types only narrowed (none listed = any).
                if (t.effective(d) & pf::FstypeMask)
                    CHECK((x.effective(d) & pf::FstypeMask & ~t.effective(d)) == 0);
            }
            CHECK(parse_ok(x.to_string()).equivalent(x));
        }
}

TEST_CASE("policy patterns: matching and specificity") {
    CHECK(pattern_matches("flatcar-*", "flatcar-docker"));
    CHECK_FALSE(pattern_matches("flatcar-*", "oem-azure"));
    CHECK(pattern_matches("oem-?zure", "oem-azure"));
    CHECK(pattern_matches("oem-[ab]*", "oem-azure"));
    CHECK(pattern_matches("*", "anything"));
    CHECK(is_glob_pattern("a*"));
    CHECK(is_glob_pattern("a[bc]"));
    CHECK_FALSE(is_glob_pattern("flatcar-docker"));
    CHECK_FALSE(is_glob_pattern("a[b"));  // an unclosed bracket is a literal

    CHECK(more_specific("flatcar-docker", "flatcar-*"));    // exact beats glob
    CHECK(more_specific("flatcar-docker", "flatcar-dock*"));
    CHECK(more_specific("flatcar-d*", "flatcar-*"));        // longer literal prefix
    CHECK(more_specific("flatcar-*", "*-docker"));          // prefix before total literals
    CHECK(more_specific("flatcar-*-x", "flatcar-*"));       // more literals
    CHECK(more_specific("flatcar-?x", "flatcar-[ab]x*"));   // fewer wildcards
    CHECK_FALSE(more_specific("a*", "a?"));                 // a tie
    CHECK_FALSE(more_specific("a?", "a*"));
    CHECK_FALSE(more_specific("*", "flatcar-*"));

    PolicyFile f;
    f.rules = {{"*", parse_ok("*"), 1},
               {"flatcar-*", parse_ok("usr=signed"), 2},
               {"flatcar-d*", parse_ok("usr=verity"), 3},
               {"flatcar-docker", parse_ok("usr=encrypted"), 4},
               {"a*", parse_ok("~"), 5},
               {"a?", parse_ok("-"), 6}};
    CHECK(find_rule(f, "flatcar-docker")->line == 4);
    CHECK(find_rule(f, "flatcar-dev")->line == 3);
    CHECK(find_rule(f, "flatcar-python")->line == 2);
    CHECK(find_rule(f, "oem-azure")->line == 1);
    CHECK(find_rule(f, "ab")->line == 5);  // tie: the first written
    f.rules.erase(f.rules.begin());
    CHECK(find_rule(f, "oem-azure") == nullptr);
}

TEST_CASE("policy file: parsing") {
    auto f = parse_policy_file(
        "# rdext policy\n"
        "\n"
        "   # indented comment\n"
        "flatcar-*\troot=signed+absent:usr=signed+absent\n"
        "oem-*   usr=signed+absent   # trailing comment\r\n"
        "default *\n",
        "/etc/rdext/policy.conf");
    REQUIRE_MESSAGE(f.has_value(), f.error().what());
    REQUIRE(f->rules.size() == 2);
    CHECK(f->rules[0].pattern == "flatcar-*");
    CHECK(f->rules[0].line == 4);
    CHECK(f->rules[0].policy.to_string() == "root=signed+absent:usr=signed+absent");
    CHECK(f->rules[1].pattern == "oem-*");
    CHECK(f->rules[1].line == 5);
    REQUIRE(f->default_policy);
    CHECK(f->default_line == 6);
    CHECK(f->default_policy->to_string() == "*");

    auto empty = parse_policy_file("", "x");
    REQUIRE(empty.has_value());
    CHECK(empty->rules.empty());
    CHECK_FALSE(empty->default_policy);
    auto no_newline = parse_policy_file("a usr=signed", "x");
    REQUIRE(no_newline.has_value());
    CHECK(no_newline->rules.size() == 1);
}

TEST_CASE("policy file: errors carry the line number") {
    struct {
        const char* text;
        const char* message;
    } cases[] = {
        {"# ok\nflatcar-*\n", "p.conf:2: expected 'PATTERN POLICY', got 1 field starting with 'flatcar-*'"},
        {"a usr=signed extra\n", "p.conf:1: expected 'PATTERN POLICY', got 3 fields"},
        {"\n\na usr=veriti\n", "p.conf:3: image policy: rule 'usr=veriti': unknown policy flag 'veriti'"},
        {"a opt=signed\n", "p.conf:1: image policy: unknown partition designator 'opt'"},
        {"a usr=signed\nb *\na ~\n", "p.conf:3: pattern 'a' given again (first on line 1)"},
        {"default *\ndefault ~\n", "p.conf:2: 'default' given again (first on line 1)"},
        {"a/b usr=signed\n", "p.conf:1: pattern 'a/b' contains '/'"},
        {"a usr=signed\nb\x01 *\n", "p.conf:2: control character"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        auto f = parse_policy_file(c.text, "p.conf");
        REQUIRE_FALSE(f.has_value());
        CHECK(contains(f.error().message(), c.message));
    }
    std::string nul("a *\n\0 *\n", 8);
    auto f = parse_policy_file(nul, "p.conf");
    REQUIRE_FALSE(f.has_value());
    CHECK(contains(f.error().message(), "p.conf:2: control character"));
}

TEST_CASE("policy file: size cap") {
    std::string big;
    while (big.size() <= kPolicyFileMax) big += "# padding padding padding padding padding padding\n";
    auto f = parse_policy_file(big, "p.conf");
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().code() == E2BIG);

    test::TempDir dir;
    dir.write("etc/rdext/policy.conf", big);
    auto root = dir.open_root();
    auto r = read_policy_file(root.get(), "/etc/rdext/policy.conf");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == E2BIG);
}

TEST_CASE("policy file: read from a root") {
    test::TempDir dir;
    auto root = dir.open_root();
    auto missing = read_policy_file(root.get(), "/etc/rdext/policy.conf");
    REQUIRE(missing.has_value());
    CHECK_FALSE(missing->has_value());

    dir.write("etc/rdext/policy.conf", "oem-* usr=signed+absent\n");
    auto ok = read_policy_file(root.get(), "/etc/rdext/policy.conf");
    REQUIRE(ok.has_value());
    REQUIRE(ok->has_value());
    CHECK((*ok)->origin == "/etc/rdext/policy.conf");
    CHECK((*ok)->rules.at(0).pattern == "oem-*");

    dir.write("etc/rdext/bad.conf", "oem-*\n");
    auto bad = read_policy_file(root.get(), "/etc/rdext/bad.conf");
    REQUIRE_FALSE(bad.has_value());
    CHECK(contains(bad.error().message(), "/etc/rdext/bad.conf:1:"));

    // A label tells the trusted file from the root's at the same path.
    auto labelled = read_policy_file(root.get(), "/etc/rdext/policy.conf", "root's policy file");
    REQUIRE(labelled.has_value());
    REQUIRE(labelled->has_value());
    CHECK((*labelled)->origin == "root's policy file /etc/rdext/policy.conf");
    bad = read_policy_file(root.get(), "/etc/rdext/bad.conf", "root's policy file");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().what().rfind("root's policy file /etc/rdext/bad.conf:1: ", 0) == 0);
    dir.mkdir("etc/rdext/dir.conf");
    bad = read_policy_file(root.get(), "/etc/rdext/dir.conf", "trusted policy file");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().what() == "trusted policy file /etc/rdext/dir.conf: not a regular file (a directory)");
}

TEST_CASE("policy resolution: trusted sources in order") {
    PolicyConfig c;
    auto r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.equivalent(default_image_policy(ImageClass::Sysext)));
    CHECK(r.source == "built-in sysext default");
    r = resolve_policy(c, ImageClass::Confext, "foo");
    CHECK(r.policy.equivalent(default_image_policy(ImageClass::Confext)));

    auto file = parse_policy_file("flatcar-* usr=signed\ndefault usr=verity\n", "/etc/rdext/policy.conf");
    REQUIRE(file.has_value());
    c.trusted = *file;
    r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.to_string() == "usr=verity");
    CHECK(r.source == "/etc/rdext/policy.conf:2 (default)");

    c.sysext_cmdline = parse_ok("usr=unprotected");
    r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.to_string() == "usr=unprotected");
    CHECK(r.source == "rd.sysext.image_policy=");
    r = resolve_policy(c, ImageClass::Confext, "foo");
    CHECK(r.policy.to_string() == "usr=verity");  // the sysext key does not apply
    c.from_option = true;  // --image-policy= set it
    r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.source == "--image-policy=");
    c.from_option = false;

    r = resolve_policy(c, ImageClass::Sysext, "flatcar-docker");
    CHECK(r.policy.to_string() == "usr=signed");
    CHECK(r.source == "/etc/rdext/policy.conf:1 (flatcar-*)");
    CHECK(r.warnings.empty());
}

TEST_CASE("policy resolution: the sysroot may only tighten") {
    PolicyConfig c;
    auto trusted = parse_policy_file(
        "flatcar-* root=signed+absent:usr=signed+absent\n"
        "default root=verity+signed+unprotected+absent:usr=verity+signed+unprotected+absent\n",
        "initrd:/etc/rdext/policy.conf");
    auto sysroot = parse_policy_file(
        "# tighten the general default, try to loosen flatcar-*\n"
        "flatcar-f* root=signed+unprotected+absent:usr=signed+unprotected+absent\n"
        "default root=verity+signed+absent:usr=verity+signed+absent\n",
        "/sysroot/etc/rdext/policy.conf");
    REQUIRE(trusted.has_value());
    REQUIRE(sysroot.has_value());
    c.trusted = *trusted;
    c.sysroot = *sysroot;

    // Tightening is kept, silently.
    auto r = resolve_policy(c, ImageClass::Sysext, "foo");
    CHECK(r.policy.to_string() == "root=verity+signed+absent:usr=verity+signed+absent");
    CHECK(r.warnings.empty());
    CHECK(contains(r.source, "tightened by /sysroot/etc/rdext/policy.conf:3 (default)"));
    CHECK_FALSE(evaluate_image(r.policy, {{Designator::Usr, ImageState::Unprotected, ""}}).accepted());

    // Loosening is ignored, with a warning naming rule, designator and flags.
    r = resolve_policy(c, ImageClass::Sysext, "flatcar-foo");
    CHECK(r.policy.to_string() == "root=signed+absent:usr=signed+absent");
    REQUIRE(r.warnings.size() == 2);
    CHECK(r.warnings[0] ==
          "/sysroot/etc/rdext/policy.conf:2 (flatcar-f*) for flatcar-foo: root: unprotected not allowed by "
          "the trusted policy, ignored");
    CHECK(contains(r.warnings[1], "usr: unprotected not allowed"));
    CHECK_FALSE(evaluate_image(r.policy, {{Designator::Usr, ImageState::Unprotected, ""}}).accepted());
    CHECK(evaluate_image(r.policy, {{Designator::Usr, ImageState::Signed, ""}}).accepted());

    // The sysroot cannot loosen the command line or the built-in default either.
    PolicyConfig d;
    d.sysext_cmdline = parse_ok("usr=signed+absent");
    d.sysroot = *parse_policy_file("default *\n", "sysroot");
    r = resolve_policy(d, ImageClass::Sysext, "x");
    CHECK(r.policy.to_string() == "usr=signed+absent");
    // Its default is compared with the trusted default ("ignore").
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0] ==
          "sysroot:1 (default) for x: default: verity+signed+encrypted+unprotected not allowed by the trusted "
          "policy, ignored");
    r = resolve_policy(d, ImageClass::Confext, "x");
    CHECK(r.policy.equivalent(default_image_policy(ImageClass::Confext)));
}

TEST_CASE("policy: policies that use nothing refuse every image (systemd.image-policy(7))") {
    // "-" and "" are "=unused+absent"; "=" alone is the open default ("*").
    CHECK(parse_ok("-").equivalent(ImagePolicy::ignore_all()));
    CHECK(parse_ok("").equivalent(ImagePolicy::ignore_all()));
    CHECK(parse_ok("=").equivalent(ImagePolicy::allow_all()));
    const std::vector<OfferedPartition> images[] = {
        {{Designator::Root, ImageState::Unprotected, ""}},  // a directory or bare file system
        {{Designator::Root, ImageState::Signed, ""}, {Designator::RootVerity, ImageState::Unprotected, ""}},
        {{Designator::Usr, ImageState::Verity, "erofs"}, {Designator::UsrVerity, ImageState::Unprotected, ""}},
        {{Designator::Root, ImageState::Encrypted, ""}, {Designator::Usr, ImageState::Unprotected, ""}},
    };
    for (std::string s : {"-", "", "=unused+absent", "=ignore", "root=unused+absent:usr=unused+absent",
                          "root=ignore:usr=ignore:=open"}) {
        CAPTURE(s);
        ImagePolicy p = parse_ok(s);
        for (const auto& offered : images) {
            PolicyVerdict v = evaluate_image(p, offered);
            CHECK_FALSE(v.accepted());
            CHECK(contains(v.reason, ": image has it, but the policy allows it no use (unused"));
        }
        // Nothing offered, nothing used: still fine.
        CHECK(evaluate_image(p, {}).accepted());
    }
    // One data partition unused is enough: rdext would mount it anyway.
    PolicyVerdict v = evaluate_image(parse_ok("root=unused+absent:usr=open"),
                                     {{Designator::Root, ImageState::Unprotected, ""},
                                      {Designator::Usr, ImageState::Unprotected, ""}});
    CHECK_FALSE(v.accepted());
    CHECK(v.reason == "root: image has it, but the policy allows it no use (unused+absent)");
    // A partition the policy refuses outright is the reason given first.
    v = evaluate_image(parse_ok("root=unused:usr=signed"), {{Designator::Root, ImageState::Unprotected, ""}});
    CHECK(v.reason == "usr: partition is absent; policy allows signed");
    // "~" (everything absent) refuses a present partition as before.
    CHECK_FALSE(evaluate_image(parse_ok("~"), {{Designator::Root, ImageState::Signed, ""}}).accepted());
    // An unused verity partition beside a used data partition is fine.
    CHECK(evaluate_image(parse_ok("root=unprotected"), {{Designator::Root, ImageState::Unprotected, ""},
                                                        {Designator::RootVerity, ImageState::Unprotected, ""}})
              .accepted());
}

TEST_CASE("policy file: a FIFO is never opened for reading") {
    test::TempDir dir;
    dir.mkdir("etc/rdext");
    REQUIRE(::mkfifo((dir / "etc/rdext/policy.conf").c_str(), 0644) == 0);
    auto root = dir.open_root();
    // Would block for ever if it were opened O_RDONLY.
    auto r = read_policy_file(root.get(), "/etc/rdext/policy.conf");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == EBADFD);
    CHECK(r.error().message() == "/etc/rdext/policy.conf: not a regular file (a FIFO)");
    dir.mkdir("etc/rdext/dir.conf");
    r = read_policy_file(root.get(), "/etc/rdext/dir.conf");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == "/etc/rdext/dir.conf: not a regular file (a directory)");
}

TEST_CASE("policy resolution: an unusable sysroot file refuses every image") {
    PolicyConfig c;
    c.sysext_cmdline = parse_ok("*");
    c.sysroot_unusable = "root's policy file /etc/rdext/policy.conf: not a regular file (a FIFO)";
    for (ImageClass cls : {ImageClass::Sysext, ImageClass::Confext}) {
        auto r = resolve_policy(c, cls, "foo");
        CHECK(r.policy.to_string() == "~");
        CHECK(contains(r.source, "root's policy file /etc/rdext/policy.conf: not a regular file (a FIFO) (unusable"));
        CHECK_FALSE(evaluate_image(r.policy, {{Designator::Root, ImageState::Signed, ""}}).accepted());
        CHECK_FALSE(evaluate_image(r.policy, {{Designator::Usr, ImageState::Signed, ""}}).accepted());
    }
}
