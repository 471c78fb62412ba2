// The rdext tool's own command line (cli/options.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/options.h"

using namespace rdext;

namespace {
Result<Options> parse(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST_CASE("options: commands and flags") {
    auto o = parse({"rdext", "--root=/r", "--json", "status"});
    REQUIRE(o);
    CHECK(o->command == Command::Status);
    CHECK(o->root == "/r");
    CHECK(o->json);
    CHECK(parse({"rdext", "--help"})->command == Command::Help);
    CHECK(parse({"rdext", "--version"})->command == Command::Version);
}

TEST_CASE("options: usage errors") {
    CHECK_FALSE(parse({"rdext"}));
    CHECK_FALSE(parse({"rdext", "frobnicate"}));
    CHECK_FALSE(parse({"rdext", "--no-such-option", "merge"}));
    CHECK_FALSE(parse({"rdext", "merge", "extra"}));
    CHECK_FALSE(parse({"rdext", "--root"}));
}
