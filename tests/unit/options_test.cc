// The rdext tool's own command line (cli/options.h): commands and flags,
// and inspect's image argument, --os-release= and repeatable
// --certificate=, which no other command accepts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/options.h"

using namespace rdext;

namespace {
Result<Options> parse_args(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST_CASE("inspect options: image, os-release, certificates") {
    auto o = parse_args({"rdext", "--os-release=/tmp/os", "--certificate=a.crt", "--certificate=b.crt", "--json",
                         "inspect", "foo.raw"});
    REQUIRE(o);
    CHECK(o->command == Command::Inspect);
    CHECK(o->image == "foo.raw");
    CHECK(o->os_release == std::optional<std::string>("/tmp/os"));
    CHECK(o->certificates == std::vector<std::string>{"a.crt", "b.crt"});
    CHECK(o->json == JsonMode::Pretty);
}

TEST_CASE("inspect options: options may follow the command and the image") {
    auto o = parse_args({"rdext", "inspect", "foo.raw", "--os-release=/tmp/os", "--json"});
    REQUIRE(o);
    CHECK(o->command == Command::Inspect);
    CHECK(o->image == "foo.raw");
    CHECK(o->os_release == std::optional<std::string>("/tmp/os"));
    CHECK(o->json == JsonMode::Pretty);
}

TEST_CASE("inspect options: usage errors") {
    CHECK_FALSE(parse_args({"rdext", "inspect"}));                   // no image
    CHECK_FALSE(parse_args({"rdext", "inspect", "a.raw", "b.raw"}));  // one image
    CHECK_FALSE(parse_args({"rdext", "status", "a.raw"}));            // no argument elsewhere
    CHECK_FALSE(parse_args({"rdext", "--os-release=/x", "merge"}));
    CHECK_FALSE(parse_args({"rdext", "--certificate=a.crt", "status"}));
    auto e = parse_args({"rdext", "inspect"});
    CHECK(e.error().code() == EINVAL);
}

TEST_CASE("options: commands and flags") {
    auto o = parse_args({"rdext", "--root=/r", "--json", "status"});
    REQUIRE(o);
    CHECK(o->command == Command::Status);
    CHECK(o->root == "/r");
    CHECK(o->json == JsonMode::Pretty);
    CHECK(parse_args({"rdext", "--help"})->command == Command::Help);
    CHECK(parse_args({"rdext", "--version"})->command == Command::Version);
}

TEST_CASE("options: --json=short|pretty|off, a bare --json is pretty") {
    CHECK(parse_args({"rdext", "status"})->json == JsonMode::Off);
    CHECK(parse_args({"rdext", "--json=short", "status"})->json == JsonMode::Short);
    CHECK(parse_args({"rdext", "--json=pretty", "merge"})->json == JsonMode::Pretty);
    CHECK(parse_args({"rdext", "--json", "--json=off", "unmerge"})->json == JsonMode::Off);
    CHECK(parse_args({"rdext", "mark-good", "--json=short"})->json == JsonMode::Short);
    auto bad = parse_args({"rdext", "--json=yaml", "status"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == EINVAL);
}

TEST_CASE("options: usage errors") {
    CHECK_FALSE(parse_args({"rdext"}));
    CHECK_FALSE(parse_args({"rdext", "frobnicate"}));
    CHECK_FALSE(parse_args({"rdext", "--no-such-option", "merge"}));
    CHECK_FALSE(parse_args({"rdext", "merge", "extra"}));
    CHECK_FALSE(parse_args({"rdext", "--root"}));
}

TEST_CASE("fetch options: --ca=, --timeout= (seconds, 1 to 86400), fetch only") {
    auto o = parse_args({"rdext", "--ca=/etc/my-ca.pem", "--timeout=20", "fetch"});
    REQUIRE(o);
    CHECK(o->command == Command::Fetch);
    CHECK(o->ca == "/etc/my-ca.pem");
    CHECK(o->timeout == 20u);
    for (const char* bad : {"--timeout=0", "--timeout=-5", "--timeout=5s", "--timeout=", "--timeout=86401"})
        CHECK_FALSE(parse_args({"rdext", bad, "fetch"}));
    CHECK_FALSE(parse_args({"rdext", "--ca=/x.pem", "merge"}));
    CHECK_FALSE(parse_args({"rdext", "--timeout=5", "merge"}));
}
