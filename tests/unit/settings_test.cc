// The settings a run works with (target/target.h): one ClassSettings per
// class, the same shape the kernel command line is read into
// (cmdline/cmdline.h), so taking them over is a copy; and the class names
// (base/image_class.h) the records keep.
#include <doctest/doctest.h>

#include "base/image_class.h"
#include "cmdline/cmdline.h"
#include "target/target.h"

using namespace rdext;

TEST_CASE("settings: the kernel command line's per-class settings are the merge's") {
    auto c = parse_cmdline(
        "rd.confext=0 rd.sysext.exclude=a,b rd.sysext.require=r rd.sysext.pin=foo=12 "
        "rd.confext.mutable=ephemeral rd.sysext.block_devices rd.confext.image_policy=root=signed");
    CHECK(c.warnings.empty());
    Settings s;
    s.classes = c.classes;
    CHECK(s.class_enabled(ImageClass::Sysext));
    CHECK_FALSE(s.class_enabled(ImageClass::Confext));
    CHECK(s.excluded(ImageClass::Sysext) == std::set<std::string>{"a", "b"});
    CHECK(s.excluded(ImageClass::Confext).empty());
    CHECK(s.required(ImageClass::Sysext) == std::set<std::string>{"r"});
    CHECK(s.pinned(ImageClass::Sysext, "foo") == "12");
    CHECK(s.pinned(ImageClass::Sysext, "bar").empty());
    CHECK(s.pinned(ImageClass::Confext, "foo").empty());
    CHECK(s.mutable_mode(ImageClass::Sysext) == MutableMode::No);
    CHECK(s.mutable_mode(ImageClass::Confext) == MutableMode::Ephemeral);
    CHECK(s.block_devices_allowed(ImageClass::Sysext));
    CHECK_FALSE(s.block_devices_allowed(ImageClass::Confext));
    CHECK(s.of(ImageClass::Confext).image_policy == "root=signed");
    CHECK_FALSE(s.of(ImageClass::Sysext).image_policy);
}

TEST_CASE("settings: defaults are what an empty kernel command line gives") {
    const ClassSettings def;
    for (const auto& cls : parse_cmdline("").classes) {
        CHECK(cls.enabled == def.enabled);
        CHECK(cls.mutable_mode == MutableMode::No);
        CHECK_FALSE(cls.block_devices);
        CHECK_FALSE(cls.image_policy);
    }
}

TEST_CASE("image class: names and back") {
    for (ImageClass c : all_classes()) CHECK(class_from_name(class_name(c)) == c);
    CHECK_FALSE(class_from_name("Sysext"));
    CHECK_FALSE(class_from_name(""));
}
