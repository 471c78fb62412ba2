// The compatibility rules of docs sysext-compat.md "extension-release and
// compatibility", one rule per test case, in systemd's order.
#include <doctest/doctest.h>

#include <string>

#include "release/compat.h"
#include "release_test_util.h"

using rdext::check_compatible;
using rdext::CompatContext;
using rdext::ImageClass;
using rdext::ReleaseFields;

namespace {

CompatContext debian12() {
    return CompatContext{{{"ID", "debian"}, {"VERSION_ID", "12"}}, "system", "x86-64"};
}

bool accepts(const ReleaseFields& ext, const CompatContext& ctx = debian12(), ImageClass cls = ImageClass::Sysext) {
    return check_compatible(cls, "ext", ext, ctx).has_value();
}

std::string refusal(const ReleaseFields& ext, const CompatContext& ctx = debian12(),
                    ImageClass cls = ImageClass::Sysext) {
    auto r = check_compatible(cls, "ext", ext, ctx);
    return r ? std::string("(accepted)") : r.error().what();
}

}  // namespace

TEST_CASE("compat: matching ID and VERSION_ID is accepted") {
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}}));
}

TEST_CASE("compat: a host without ID refuses everything") {
    CompatContext ctx = debian12();
    ctx.host.erase("ID");
    auto r = check_compatible(ImageClass::Sysext, "ext", {{"ID", "_any"}}, ctx);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == EINVAL);
    CHECK(rdext::check_host_release({{"ID", ""}}).has_value() == false);
    CHECK(rdext::check_host_release({{"ID", "debian"}}).has_value());
}

TEST_CASE("compat: an empty release file is refused") {
    CHECK(refusal({}) == "the release file carries no data");
}

TEST_CASE("compat: refusals have no errno and are the plain reason (the caller names the image)") {
    auto r = check_compatible(ImageClass::Sysext, "foo_1", {{"ID", "fedora"}}, debian12());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == 0);
    CHECK(r.error().what() == "ID=fedora does not match the OS's ID=debian");
}

TEST_CASE("compat: without SYSEXT_SCOPE an extension serves system and portable") {
    CompatContext ctx = debian12();
    CHECK(accepts({{"ID", "_any"}}, ctx));
    ctx.scope = "initrd";
    CHECK_FALSE(accepts({{"ID", "_any"}}, ctx));
    ctx.scope = "portable";
    CHECK(accepts({{"ID", "_any"}}, ctx));
}

TEST_CASE("compat: SYSEXT_SCOPE must list the target's scope") {
    CompatContext ctx = debian12();
    CHECK(accepts({{"ID", "_any"}, {"SYSEXT_SCOPE", "initrd system"}}, ctx));
    CHECK(refusal({{"ID", "_any"}, {"SYSEXT_SCOPE", "initrd portable"}}, ctx) ==
          "SYSEXT_SCOPE=initrd portable does not include the target's scope system");
    ctx.scope = "initrd";
    CHECK(accepts({{"ID", "_any"}, {"SYSEXT_SCOPE", " initrd\t"}}, ctx));
}

TEST_CASE("compat: an empty SYSEXT_SCOPE matches no scope at all") {
    CHECK_FALSE(accepts({{"ID", "_any"}, {"SYSEXT_SCOPE", ""}}));
    CHECK_FALSE(accepts({{"ID", "_any"}, {"SYSEXT_SCOPE", "  "}}));
}

TEST_CASE("compat: confexts read CONFEXT_SCOPE, not SYSEXT_SCOPE") {
    ReleaseFields ext{{"ID", "_any"}, {"SYSEXT_SCOPE", "initrd"}};
    CHECK(accepts(ext, debian12(), ImageClass::Confext));
    ext["CONFEXT_SCOPE"] = "initrd";
    CHECK_FALSE(accepts(ext, debian12(), ImageClass::Confext));
}

TEST_CASE("compat: the scope is checked before ARCHITECTURE and ID") {
    ReleaseFields ext{{"ID", "fedora"}, {"ARCHITECTURE", "arm64"}, {"SYSEXT_SCOPE", "initrd"}};
    CHECK(refusal(ext).find("SYSEXT_SCOPE") != std::string::npos);
}

TEST_CASE("compat: ARCHITECTURE must equal the running architecture in systemd spelling") {
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}, {"ARCHITECTURE", "x86-64"}}));
    CHECK(refusal({{"ID", "debian"}, {"VERSION_ID", "12"}, {"ARCHITECTURE", "x86_64"}}) ==
          "ARCHITECTURE=x86_64 does not match the running architecture x86-64");
}

TEST_CASE("compat: ARCHITECTURE _any or empty matches every architecture") {
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}, {"ARCHITECTURE", "_any"}}));
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}, {"ARCHITECTURE", ""}}));
}

TEST_CASE("compat: ARCHITECTURE is checked before ID, even for ID=_any") {
    CHECK(refusal({{"ID", "_any"}, {"ARCHITECTURE", "arm64"}}).find("ARCHITECTURE=arm64") != std::string::npos);
}

TEST_CASE("compat: ID is required") {
    CHECK(refusal({{"VERSION_ID", "12"}}).find("no ID") != std::string::npos);
    CHECK_FALSE(accepts({{"ID", ""}, {"VERSION_ID", "12"}}));
}

TEST_CASE("compat: ID=_any accepts without looking at versions") {
    CHECK(accepts({{"ID", "_any"}}));
    CHECK(accepts({{"ID", "_any"}, {"VERSION_ID", "11"}, {"SYSEXT_LEVEL", "9"}}));
}

TEST_CASE("compat: ID must equal the host's ID exactly") {
    CHECK(refusal({{"ID", "fedora"}, {"VERSION_ID", "12"}}) ==
          "ID=fedora does not match the OS's ID=debian");
    CHECK_FALSE(accepts({{"ID", "Debian"}, {"VERSION_ID", "12"}}));
}

TEST_CASE("compat: ID may be one of the host's ID_LIKE words") {
    CompatContext ctx{{{"ID", "ubuntu"}, {"ID_LIKE", "debian  foo"}, {"VERSION_ID", "24.04"}}, "system", "x86-64"};
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "24.04"}}, ctx));
    CHECK(accepts({{"ID", "foo"}, {"VERSION_ID", "24.04"}}, ctx));
    CHECK(refusal({{"ID", "deb"}, {"VERSION_ID", "24.04"}}, ctx) ==
          "ID=deb does not match the OS's ID=ubuntu (ID_LIKE=debian  foo)");
}

TEST_CASE("compat: ID_LIKE in the extension means nothing") {
    CHECK_FALSE(accepts({{"ID", "ubuntu"}, {"ID_LIKE", "debian"}, {"VERSION_ID", "12"}}));
}

TEST_CASE("compat: a host without VERSION_ID or level accepts a matching ID") {
    CompatContext arch{{{"ID", "arch"}}, "system", "x86-64"};
    CHECK(accepts({{"ID", "arch"}}, arch));
    CHECK(accepts({{"ID", "arch"}, {"VERSION_ID", "1"}, {"SYSEXT_LEVEL", "2"}}, arch));
    arch.host["VERSION_ID"] = "";
    arch.host["SYSEXT_LEVEL"] = "";
    CHECK(accepts({{"ID", "arch"}, {"VERSION_ID", "1"}}, arch));
}

TEST_CASE("compat: VERSION_ID must equal the host's exactly") {
    CHECK(refusal({{"ID", "debian"}, {"VERSION_ID", "11"}}) ==
          "VERSION_ID=11 does not match the OS's VERSION_ID=12");
    CHECK_FALSE(accepts({{"ID", "debian"}, {"VERSION_ID", "12.5"}}));
}

TEST_CASE("compat: a missing or empty VERSION_ID is refused when the host has one") {
    CHECK(refusal({{"ID", "debian"}}) == "no VERSION_ID to match the OS's VERSION_ID=12");
    CHECK_FALSE(accepts({{"ID", "debian"}, {"VERSION_ID", ""}}));
}

TEST_CASE("compat: SYSEXT_LEVEL on both sides wins over VERSION_ID") {
    CompatContext ctx = debian12();
    ctx.host["SYSEXT_LEVEL"] = "1.2";
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "11"}, {"SYSEXT_LEVEL", "1.2"}}, ctx));
    CHECK(refusal({{"ID", "debian"}, {"VERSION_ID", "12"}, {"SYSEXT_LEVEL", "1.3"}}, ctx) ==
          "SYSEXT_LEVEL=1.3 does not match the OS's SYSEXT_LEVEL=1.2");
}

TEST_CASE("compat: with the level on one side only, VERSION_ID decides") {
    CompatContext ctx = debian12();
    ctx.host["SYSEXT_LEVEL"] = "1.2";
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}}, ctx));
    CHECK_FALSE(accepts({{"ID", "debian"}, {"VERSION_ID", "11"}}, ctx));
    CHECK(accepts({{"ID", "debian"}, {"VERSION_ID", "12"}, {"SYSEXT_LEVEL", "7"}}));
}

TEST_CASE("compat: an empty level counts as absent") {
    CompatContext ctx = debian12();
    ctx.host["SYSEXT_LEVEL"] = "1.2";
    CHECK_FALSE(accepts({{"ID", "debian"}, {"VERSION_ID", "11"}, {"SYSEXT_LEVEL", ""}}, ctx));
}

TEST_CASE("compat: a host with only a level accepts an extension without one") {
    CompatContext ctx{{{"ID", "flatcar"}, {"SYSEXT_LEVEL", "1.0"}}, "system", "x86-64"};
    CHECK(accepts({{"ID", "flatcar"}}, ctx));
    CHECK_FALSE(accepts({{"ID", "flatcar"}, {"SYSEXT_LEVEL", "2.0"}}, ctx));
}

TEST_CASE("compat: confexts compare CONFEXT_LEVEL, not SYSEXT_LEVEL") {
    CompatContext ctx = debian12();
    ctx.host["CONFEXT_LEVEL"] = "3";
    ctx.host["SYSEXT_LEVEL"] = "9";
    ReleaseFields ext{{"ID", "debian"}, {"VERSION_ID", "11"}, {"CONFEXT_LEVEL", "3"}, {"SYSEXT_LEVEL", "1"}};
    CHECK(accepts(ext, ctx, ImageClass::Confext));
    CHECK_FALSE(accepts(ext, ctx, ImageClass::Sysext));
}

TEST_CASE("compat: native and uname architectures use systemd's spelling") {
    std::string native = rdext::native_architecture();
    CHECK(native.find('_') == std::string::npos);
#if defined(__x86_64__)
    CHECK(native == "x86-64");
    CHECK(rdext::uname_architecture() == "x86-64");
#elif defined(__aarch64__) && __BYTE_ORDER == __LITTLE_ENDIAN
    CHECK(native == "arm64");
#endif
}

TEST_CASE("compat: the target's scope is initrd only with etc/initrd-release in the root") {
    rdext::testing::TempTree t;
    REQUIRE(t.ok());
    CHECK(rdext::target_scope(t.open().get()) == "system");
    t.write("etc/initrd-release", "ID=x\n");
    CHECK(rdext::target_scope(t.open().get()) == "initrd");
}
