// Building the overlay (mount/overlay.h): what is decided before the
// kernel is asked. Mounting it is covered by tests/integration/merge_kinds.sh
// and many_layers.sh.
#include <doctest/doctest.h>

#include "mount/overlay.h"

using namespace rdext;

TEST_CASE("overlay: legacy lowerdir= strings escape separators") {
    CHECK(escape_lowerdir("/a:b,c\\d") == "/a\\:b\\,c\\\\d");
    CHECK(escape_lowerdir("/plain") == "/plain");
}

TEST_CASE("overlay: no layers and more than overlayfs takes are refused before the kernel is asked") {
    bool refused = false;
    OverlaySpec none;
    none.source = "sysext";
    auto e = create_overlay(none, refused);
    REQUIRE_FALSE(e);
    CHECK(e.error().code() == EINVAL);
    OverlaySpec many;
    many.source = "sysext";
    many.lowers.assign(kMaxOverlayLayers + 1, "/nonexistent");
    auto big = create_overlay(many, refused);
    REQUIRE_FALSE(big);
    CHECK(big.error().code() == E2BIG);
    CHECK_FALSE(refused);  // the run learned nothing of the kernel
}
