// Cases that need something the machine may lack (a tool, root, user xattrs).
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace rdext::test {

// can_run(ok, why): true when the case can run. Otherwise it fails the case
// under CI=true (a CI machine must have everything), and elsewhere prints
// "RDEXT-SKIP: why", which CTest reports as skipped (SKIP_REGULAR_EXPRESSION
// in tests/CMakeLists.txt). Call it before the case's first assertion: CTest
// reports the case as skipped whatever it printed before.
inline bool can_run(bool ok, const std::string& why) {
    if (ok) return true;
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string_view(ci) == "true") FAIL("cannot run under CI=true: " << why);
    std::printf("RDEXT-SKIP: %s\n", why.c_str());
    std::fflush(stdout);
    return false;
}

}  // namespace rdext::test
