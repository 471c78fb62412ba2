// Transfer definitions (fetch/transfer.h) and sysupdate's patterns
// (fetch/pattern.h): what sysupdate reads, rdext reads the same way, and
// what rdext does not implement is refused with the file and line.
#include <doctest/doctest.h>

#include <map>

#include "fetch/pattern.h"
#include "fetch/transfer.h"
#include "test_util.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

SpecifierValues values() {
    SpecifierValues v;
    v.architecture = "x86-64";
    v.os_release = {{"ID", "flatcar"}, {"VERSION_ID", "4152.2.0"}, {"IMAGE_VERSION", "7"},
                    {"BUILD_ID", "b1"}, {"VARIANT_ID", "server"}, {"IMAGE_ID", "fc"}};
    v.machine_id = "0123456789abcdef0123456789abcdef";
    v.boot_id = "fedcba9876543210fedcba9876543210";
    v.hostname = "node1.example.org";
    v.kernel = "6.1.0";
    return v;
}

// sysext-bakery's lib/sysupdate.conf.tmpl (flatcar/sysext-bakery, as
// rendered for kubernetes): every extension it builds ships this file.
const char* kBakeryConf =
    "[Transfer]\n"
    "Verify=false\n"
    "\n"
    "[Source]\n"
    "Type=url-file\n"
    "Path=https://extensions.flatcar.org/extensions/kubernetes/\n"
    "MatchPattern=kubernetes-@v-%a.raw\n"
    "\n"
    "[Target]\n"
    "InstancesMax=3\n"
    "Type=regular-file\n"
    "Path=/opt/extensions/kubernetes\n"
    "CurrentSymlink=/etc/extensions/kubernetes.raw\n";

// The older template (releases on GitHub, the version pinned to a minor).
const char* kBakeryOldConf =
    "[Transfer]\n"
    "Verify=false\n"
    "\n"
    "[Source]\n"
    "Type=url-file\n"
    "Path=https://github.com/flatcar/sysext-bakery/releases/latest/download/\n"
    "MatchPattern=kubernetes-v1.33.@v-%a.raw\n"
    "\n"
    "[Target]\n"
    "InstancesMax=3\n"
    "Type=regular-file\n"
    "Path=/opt/extensions/kubernetes\n"
    "CurrentSymlink=/etc/extensions/kubernetes.raw\n";

Result<std::optional<Transfer>> make(const std::string& text, TransferNote* note = nullptr,
                                     const std::map<std::string, Feature>& features = {}) {
    auto entries = parse_ini(text, "/etc/sysupdate.d/t.transfer");
    if (!entries) return entries.error();
    TransferNote n;
    return make_transfer("t", "/etc/sysupdate.d/t.transfer", *entries, values(), features, note ? note : &n);
}

}  // namespace

TEST_CASE("fetch: sysext-bakery's transfer file is read unchanged") {
    for (const char* text : {kBakeryConf, kBakeryOldConf}) {
        auto t = make(text);
        REQUIRE_MESSAGE(t, (t ? "" : t.error().what()));
        REQUIRE(t->has_value());
        const Transfer& x = **t;
        CHECK(x.source_type == SourceType::UrlFile);
        CHECK(x.verify == false);
        CHECK(x.instances_max == 3);
        CHECK(x.target_path == "/opt/extensions/kubernetes");
        CHECK(x.current_symlink == "/etc/extensions/kubernetes.raw");
        CHECK(x.cls == ImageClass::Sysext);
        CHECK(x.image_name == "kubernetes");
        CHECK(x.placement == Transfer::Placement::Symlink);
        // The target's pattern defaults to the source's, %a expanded.
        REQUIRE(x.target_patterns.size() == 1);
        CHECK(x.target_patterns[0].text().find("-x86-64.raw") != std::string::npos);
        PatternFields f;
        CHECK(x.source_patterns[0].match(std::string(text == kBakeryConf ? "kubernetes-v1.30.4-x86-64.raw"
                                                                         : "kubernetes-v1.33.2-x86-64.raw"), &f));
        CHECK(f.version == (text == kBakeryConf ? "v1.30.4" : "2"));
    }
}

TEST_CASE("fetch: an unsupported key of an extension transfer is refused with file and line") {
    std::string text = std::string(kBakeryConf) + "RemoveTemporary=no\n";
    auto t = make(text);
    REQUIRE_FALSE(t);
    CHECK(t.error().what().find("/etc/sysupdate.d/t.transfer:14") != std::string::npos);
    CHECK(t.error().what().find("RemoveTemporary") != std::string::npos);

    auto unknown_section = make(std::string(kBakeryConf) + "[Partition]\nX=1\n");
    REQUIRE_FALSE(unknown_section);
    CHECK(unknown_section.error().what().find(":14") != std::string::npos);

    auto bad_line = parse_ini("[Source]\nno equals sign\n", "/etc/sysupdate.d/x.transfer");
    REQUIRE_FALSE(bad_line);
    CHECK(bad_line.error().what().find("/etc/sysupdate.d/x.transfer:2") != std::string::npos);

    // A value rdext cannot honour is refused too, at its line.
    auto dir = make("[Source]\nType=url-tar\nPath=file:///srv\nMatchPattern=foo_@v.tar\n"
                    "[Target]\nType=directory\nPath=/var/lib/extensions\nMatchPattern=foo_@v\n");
    REQUIRE_FALSE(dir);
    CHECK(dir.error().what().find("t.transfer:2") != std::string::npos);
}

TEST_CASE("fetch: a transfer whose target is no extension's is left alone, not refused") {
    TransferNote note;
    auto t = make("[Source]\nType=url-file\nPath=https://example.org/\nMatchPattern=usr_@v.raw\n"
                  "[Target]\nType=partition\nPath=auto\nMatchPattern=usr_@v\nPartitionFlags=0\n",
                  &note);
    REQUIRE(t);
    CHECK_FALSE(t->has_value());
    CHECK_FALSE(note.refused);
    CHECK(note.reason.find("extension") != std::string::npos);
}

TEST_CASE("fetch: where the merge finds a transfer's image decides its class and name") {
    auto v = make("[Source]\nType=regular-file\nPath=/run/media/upd\nMatchPattern=foo_@v.raw\n"
                  "[Target]\nType=regular-file\nPath=/var/lib/extensions/foo.raw.v\nMatchPattern=foo_@v+@l-@d.raw\n"
                  "InstancesMax=1\nTriesLeft=3\nTriesDone=0\nMode=0640\n[Transfer]\nMinVersion=2\nProtectVersion=%A\n");
    REQUIRE_MESSAGE(v, (v ? "" : v.error().what()));
    REQUIRE(v->has_value());
    CHECK((*v)->placement == Transfer::Placement::VersionedDir);
    CHECK((*v)->image_name == "foo");
    CHECK((*v)->instances_max == 2);  // as sysupdate: at least 2
    CHECK((*v)->protect_versions == std::vector<std::string>{"7"});
    CHECK((*v)->min_version == "2");
    CHECK((*v)->mode == 0640);
    CHECK((*v)->tries_left == 3);

    auto conf = make("[Source]\nType=url-file\nPath=file:///srv/c\nMatchPattern=cfg_@v.raw\n"
                     "[Target]\nPath=/var/lib/confexts\n");
    REQUIRE(conf);
    REQUIRE(conf->has_value());
    CHECK((*conf)->cls == ImageClass::Confext);
    CHECK((*conf)->placement == Transfer::Placement::SearchDir);
    CHECK((*conf)->image_name.empty());  // the merge takes each file's own name
}

TEST_CASE("fetch: sysupdate's @ fields match and format") {
    auto p = Pattern::parse("foo_@v_@u+@l-@d@@x.@a.@h.raw");
    REQUIRE_MESSAGE(p, (p ? "" : p.error().what()));
    PatternFields f;
    const std::string h(64, 'a');
    REQUIRE(p->match("foo_1.2_8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910+3-0@x.1." + h + ".raw", &f));
    CHECK(f.version == "1.2");
    CHECK(f.uuid == "8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910");
    CHECK(f.tries_left == 3);
    CHECK(f.tries_done == 0);
    CHECK(f.no_auto == true);
    CHECK(f.sha256 == h);
    CHECK(p->format(f).value() == "foo_1.2_8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910+3-0@x.1." + h + ".raw");
    CHECK_FALSE(p->match("foo_1.2_nouuid+3-0@x.1." + h + ".raw"));
    CHECK_FALSE(p->match("foo_1.2_8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910+3-0@x.1." + h + ".raw.extra"));

    auto m = Pattern::parse("a_@v_@m_@s_@t_@f_@r_@g");
    REQUIRE(m);
    REQUIRE(m->match("a_1_644_100_5_1f_0_yes", &f));
    CHECK(f.mode == 0644);
    CHECK(f.size == 100);
    CHECK(f.mtime == 5);
    CHECK(f.flags == 0x1f);
    CHECK(f.read_only == false);
    CHECK(f.growfs == true);
    CHECK_FALSE(m->match("a_1_4755_100_5_1f_0_yes"));  // setuid: never

    // Refused as sysupdate refuses them.
    for (const char* bad : {"foo.raw", "foo_@v@l.raw", "foo_@v_@v.raw", "foo_@x_@v", "foo_@v@", "foo*_@v",
                            "dir/foo_@v"})
        CHECK_FALSE(Pattern::parse(bad));
    PatternFields only_version;
    only_version.version = "3";
    CHECK(Pattern::parse("foo_@v+@l.raw")->format(only_version).error().code() == ENXIO);
    CHECK_FALSE(Pattern::parse("foo_@v.raw")->match("foo_1 2.raw"));  // not a valid version
}

TEST_CASE("fetch: specifiers expand as sysupdate expands them") {
    auto v = values();
    CHECK(expand_specifiers("%a|%A|%b|%B|%H|%l|%m|%M|%o|%v|%w|%W|%T|%V|%%", v).value() ==
          "x86-64|7|fedcba9876543210fedcba9876543210|b1|node1.example.org|node1|0123456789abcdef0123456789abcdef|"
          "fc|flatcar|6.1.0|4152.2.0|server|/tmp|/var/tmp|%");
    CHECK_FALSE(expand_specifiers("%z", v));
    CHECK_FALSE(expand_specifiers("trailing %", v));
    v.machine_id.clear();
    CHECK_FALSE(expand_specifiers("%m", v));
    v.os_release.erase("VERSION_ID");
    CHECK(expand_specifiers("x%wy", v).value() == "xy");
}

TEST_CASE("fetch: definitions are read from sysupdate's directories with its precedence, masking and features") {
    TempDir root;
    const std::string t1 = "[Source]\nType=url-file\nPath=file:///srv/a\nMatchPattern=a_@v.raw\n"
                           "[Target]\nPath=/var/lib/extensions/a.raw.v\n";
    root.write("usr/lib/sysupdate.d/10-a.transfer", t1);
    // /etc owns the name: this one replaces /usr/lib's.
    root.write("etc/sysupdate.d/10-a.transfer", t1 + "InstancesMax=5\n");
    // Masked by an empty file and by a link to /dev/null.
    root.write("usr/lib/sysupdate.d/20-b.transfer", "garbage");
    root.write("etc/sysupdate.d/20-b.transfer", "");
    root.write("usr/lib/sysupdate.d/21-c.transfer", "garbage");
    root.symlink("/dev/null", "run/sysupdate.d/21-c.transfer");
    // A drop-in of 10-a.transfer.
    root.write("run/sysupdate.d/10-a.transfer.d/50-min.conf", "[Transfer]\nMinVersion=4\n");
    // A component directory, a feature that is off and one that is on.
    root.write("usr/lib/sysupdate.k8s.d/k.transfer",
               "[Transfer]\nFeatures=kube\n[Source]\nType=url-file\nPath=file:///srv/k\nMatchPattern=k_@v.raw\n"
               "[Target]\nPath=/opt/extensions/k\nCurrentSymlink=/etc/extensions/k.raw\n");
    root.write("usr/lib/sysupdate.k8s.d/kube.feature", "[Feature]\nDescription=Kubernetes\nEnabled=false\n");
    root.write("usr/lib/sysupdate.k8s.d/l.transfer",
               "[Transfer]\nRequisiteFeatures=on\n[Source]\nType=url-file\nPath=file:///srv/l\n"
               "MatchPattern=l_@v.raw\n[Target]\nPath=/var/lib/extensions/l.raw.v\n");
    root.write("etc/sysupdate.k8s.d/on.feature", "[Feature]\nEnabled=yes\n");
    // A .conf beside a .transfer is not read (sysupdate >= 257) ...
    root.write("etc/sysupdate.d/99-old.conf", "not even ini");
    // ... but a directory set with only .conf files is.
    root.write("etc/sysupdate.old.d/o.conf", "[Source]\nType=url-file\nPath=file:///srv/o\nMatchPattern=o_@v.raw\n"
                                              "[Target]\nPath=/var/lib/extensions/o.raw.v\n");
    auto fd = root.open_root();
    TransferSet set = read_transfers(fd.get(), values());
    for (const auto& n : set.notes) MESSAGE(n.file << ": " << n.reason);
    REQUIRE(set.transfers.size() == 4);
    const Transfer& a = set.transfers[0];
    CHECK(a.file == "/etc/sysupdate.d/10-a.transfer");
    CHECK(a.instances_max == 5);
    CHECK(a.min_version == "4");
    CHECK(set.transfers[1].id == "k");
    CHECK(set.transfers[1].component == "k8s");
    CHECK_FALSE(set.transfers[1].enabled);
    CHECK(set.transfers[2].id == "l");
    CHECK(set.transfers[2].enabled);
    CHECK(set.transfers[3].id == "o");
    for (const auto& n : set.notes) CHECK_FALSE(n.refused);
}
