// SHA256SUMS, the retraction list and the choice of a version
// (fetch/manifest.h).
#include <doctest/doctest.h>

#include "fetch/manifest.h"
#include "vpick/vpick.h"

using namespace rdext;

namespace {

std::string h(char c) { return std::string(64, c); }

Transfer transfer(const std::string& pattern, const std::string& min_version = "") {
    Transfer t;
    t.source_patterns.push_back(Pattern::parse(pattern).value());
    t.target_patterns = t.source_patterns;
    t.min_version = min_version;
    return t;
}

std::vector<std::string> candidates(const std::vector<Offer>& offers) {
    std::vector<std::string> out;
    for (const auto& o : offers)
        if (o.verdict == "candidate") out.push_back(o.version);
    return out;
}

}  // namespace

TEST_CASE("fetch: SHA256SUMS is read as sha256sum writes it") {
    auto m = parse_manifest(h('a') + "  foo_1.raw\n" + h('B') + " *foo_2.raw\n\n" + h('c') + "  foo 3.raw\n");
    REQUIRE_MESSAGE(m, (m ? "" : m.error().what()));
    CHECK(m->size() == 3);
    CHECK(m->at("foo_1.raw") == h('a'));
    CHECK(m->at("foo_2.raw") == h('b'));
    CHECK(m->count("foo 3.raw"));
    for (const std::string& bad : std::vector<std::string>{"xyz  foo.raw\n", h('a') + "  dir/foo.raw\n", h('a') + "foo.raw\n",
                                  h('a') + "  a\n" + h('b') + "  a\n", h('a') + "  \n"}) {
        auto r = parse_manifest(bad);
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().what().find("line") != std::string::npos);
    }
}

TEST_CASE("fetch: the retraction list takes names and sha256sum lines") {
    auto r = parse_retracted("# broken build\nfoo_3.raw\n" + h('a') + "  foo_4.raw\n\n");
    REQUIRE(r);
    CHECK(*r == std::set<std::string>{"foo_3.raw", "foo_4.raw"});
    CHECK_FALSE(parse_retracted("../foo_3.raw\n"));
}

TEST_CASE("fetch: the newest matching, native, non-retracted version at least MinVersion is first") {
    const std::string arch = local_architectures().front();
    const std::string foreign = arch == "arm64" ? "x86-64" : "arm64";
    std::map<std::string, std::string> manifest{
        {"foo_1.raw", h('1')}, {"foo_2.raw", h('2')}, {"foo_10.raw", h('3')}, {"foo_9.raw", h('4')},
        {"foo_11_" + foreign + ".raw", h('5')}, {"bar_12.raw", h('6')}, {"foo_1.5.raw", h('7')},
    };
    auto offers = rank_offers(transfer("foo_@v.raw", "1.5"), manifest, {"foo_10.raw"});
    CHECK(candidates(offers) == std::vector<std::string>{"9", "2", "1.5"});
    bool saw_retracted = false, saw_foreign = false, saw_old = false;
    for (const auto& o : offers) {
        saw_retracted |= o.version == "10" && o.verdict == "retracted";
        saw_foreign |= o.verdict == "foreign architecture";
        saw_old |= o.version == "1" && o.verdict == "too old";
    }
    CHECK(saw_retracted);
    CHECK(saw_foreign);
    CHECK(saw_old);
    CHECK(retracted_versions(transfer("foo_@v.raw"), {"foo_10.raw", "other.raw"}) == std::set<std::string>{"10"});
    // Retracting the newest makes an older one the choice: a downgrade.
    auto down = rank_offers(transfer("foo_@v.raw"), manifest, {"foo_10.raw", "foo_9.raw"});
    CHECK(candidates(down).front() == "2");
}

TEST_CASE("fetch: InstancesMax removes the oldest, never the one in use, protected or current") {
    std::vector<Installed> in{
        {"foo_1.raw", "1", true, false, false},  // merged now
        {"foo_2.raw", "2", false, true, false},  // ProtectVersion=
        {"foo_3.raw", "3", false, false, false},
        {"foo_4.raw", "4", false, false, false},
        {"foo_5.raw", "5", false, false, true},  // current
    };
    auto rm = instances_to_remove(in, 3);
    CHECK(rm == std::vector<size_t>{2, 3});
    CHECK(instances_to_remove(in, 5).empty());
    // Over the limit with nothing removable: nothing is removed.
    for (auto& i : in) i.in_use = true;
    CHECK(instances_to_remove(in, 2).empty());
}
