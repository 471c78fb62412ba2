// Version comparison (compare_versions, version_less): versions come from
// extension-release files and versioned entry names. Input: up to three
// versions separated by '\n'. Checks that the comparison is an order:
// reflexive, antisymmetric, transitive, and version_less strict and weak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "release/version.h"

namespace {

int sign(int v) { return (v > 0) - (v < 0); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 4096) return 0;
    std::string in(reinterpret_cast<const char*>(data), size);
    auto v = rdext_fuzz::split_lines(in, 3);
    while (v.size() < 3) v.push_back(v.back());
    const std::string &a = v[0], &b = v[1], &c = v[2];

    FUZZ_CHECK(rdext::compare_versions(a, a) == 0);
    int ab = sign(rdext::compare_versions(a, b));
    int bc = sign(rdext::compare_versions(b, c));
    int ac = sign(rdext::compare_versions(a, c));
    FUZZ_CHECK(ab == -sign(rdext::compare_versions(b, a)));
    if (ab == bc) FUZZ_CHECK(ac == ab);
    if (ab <= 0 && bc <= 0) FUZZ_CHECK(ac <= 0);

    FUZZ_CHECK(!rdext::version_less(a, a));
    bool lab = rdext::version_less(a, b), lba = rdext::version_less(b, a);
    FUZZ_CHECK(!(lab && lba));
    if (ab < 0) FUZZ_CHECK(lab);
    if (ab > 0) FUZZ_CHECK(lba);
    if (lab && rdext::version_less(b, c)) FUZZ_CHECK(rdext::version_less(a, c));
    return 0;
}
