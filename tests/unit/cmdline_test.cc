#include "cmdline/cmdline.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "policy/policy.h"

using namespace rdext;

namespace {

using Words = std::vector<std::string>;

bool has_warning_containing(const CmdlineSettings& s, const std::string& needle) {
    for (const auto& w : s.warnings)
        if (w.find(needle) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("cmdline: words split on whitespace") {
    CHECK(split_cmdline("") == Words{});
    CHECK(split_cmdline("   \t\n") == Words{});
    CHECK(split_cmdline("a b\tc\nd\r\ne") == Words{"a", "b", "c", "d", "e"});
    CHECK(split_cmdline("  ro   quiet  ") == Words{"ro", "quiet"});
}

TEST_CASE("cmdline: quotes group and are removed anywhere in a word") {
    CHECK(split_cmdline("foo=\"a b\" bar") == Words{"foo=a b", "bar"});
    CHECK(split_cmdline("\"foo=a b\"") == Words{"foo=a b"});
    CHECK(split_cmdline("foo='a \"b\" c'") == Words{"foo=a \"b\" c"});
    CHECK(split_cmdline("foo=\"a'b\"") == Words{"foo=a'b"});
    CHECK(split_cmdline("a\"b c\"d e") == Words{"ab cd", "e"});
    // An empty pair of quotes is an (empty) word, like systemd.
    CHECK(split_cmdline("\"\" x") == Words{"", "x"});
}

TEST_CASE("cmdline: an unterminated quote runs to the end of the line") {
    CHECK(split_cmdline("a foo=\"b c") == Words{"a", "foo=b c"});
    CHECK(split_cmdline("x='") == Words{"x="});
}

TEST_CASE("cmdline: backslashes are ordinary characters") {
    CHECK(split_cmdline("a\\ b") == Words{"a\\", "b"});
    CHECK(split_cmdline("a=\\\"x y\"") == Words{"a=\\x y"});
}

TEST_CASE("cmdline: booleans in systemd's spellings") {
    for (const char* s : {"1", "yes", "y", "true", "t", "on", "YES", "True", "On"}) {
        CAPTURE(s);
        CHECK(parse_boolean(s) == std::optional<bool>(true));
    }
    for (const char* s : {"0", "no", "n", "false", "f", "off", "NO", "Off"}) {
        CAPTURE(s);
        CHECK(parse_boolean(s) == std::optional<bool>(false));
    }
    for (const char* s : {"", "2", "yess", "maybe", " 1", "o"}) {
        CAPTURE(s);
        CHECK_FALSE(parse_boolean(s).has_value());
    }
}

TEST_CASE("cmdline: defaults") {
    CmdlineSettings s = parse_cmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet");
    CHECK(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Confext).enabled);
    CHECK(s.of(ImageClass::Sysext).exclude.empty());
    CHECK(s.of(ImageClass::Confext).exclude.empty());
    CHECK_FALSE(s.log_level.has_value());
    CHECK(s.warnings.empty());
}

TEST_CASE("cmdline: rd.sysext and rd.confext switch the classes") {
    CmdlineSettings s = parse_cmdline("rd.sysext=0 rd.confext=no");
    CHECK_FALSE(s.of(ImageClass::Sysext).enabled);
    CHECK_FALSE(s.of(ImageClass::Confext).enabled);
    CHECK(s.warnings.empty());

    s = parse_cmdline("rd.sysext=off rd.sysext=on");
    CHECK(s.of(ImageClass::Sysext).enabled);

    s = parse_cmdline("rd.confext=1 rd.confext=false");
    CHECK_FALSE(s.of(ImageClass::Confext).enabled);
}

TEST_CASE("cmdline: the switch that turned a class off is kept for status") {
    CmdlineSettings s = parse_cmdline("systemd.sysext=0 rd.confext=no");
    CHECK(s.of(ImageClass::Sysext).disabled_by == "systemd.sysext=0");
    CHECK(s.of(ImageClass::Confext).disabled_by == "rd.confext=no");
    s = parse_cmdline("rd.sysext=0 rd.sysext=1");
    CHECK(s.of(ImageClass::Sysext).disabled_by.empty());
    s = parse_cmdline("rd.sysext=0 rd.sysext=bogus");  // ignored: still off by the first
    CHECK_FALSE(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Sysext).disabled_by == "rd.sysext=0");
}

TEST_CASE("cmdline: a boolean key without a value means true") {
    CmdlineSettings s = parse_cmdline("rd.sysext=0 rd.sysext");
    CHECK(s.of(ImageClass::Sysext).enabled);
    CHECK(s.warnings.empty());
}

TEST_CASE("cmdline: an unparsable boolean is a warning and changes nothing") {
    CmdlineSettings s = parse_cmdline("rd.sysext=0 rd.sysext=maybe");
    CHECK_FALSE(s.of(ImageClass::Sysext).enabled);
    REQUIRE(s.warnings.size() == 1);
    CHECK(s.warnings[0] == "rd.sysext=maybe: not a boolean, ignored");

    s = parse_cmdline("rd.confext=");
    CHECK(s.of(ImageClass::Confext).enabled);
    CHECK(s.warnings.size() == 1);
}

TEST_CASE("cmdline: systemd's switches are synonyms, the last one wins") {
    CHECK_FALSE(parse_cmdline("systemd.sysext=0").of(ImageClass::Sysext).enabled);
    CHECK_FALSE(parse_cmdline("rd.systemd.sysext=0").of(ImageClass::Sysext).enabled);
    CHECK_FALSE(parse_cmdline("systemd.confext=0").of(ImageClass::Confext).enabled);
    CHECK_FALSE(parse_cmdline("rd.systemd.confext=0").of(ImageClass::Confext).enabled);
    CHECK(parse_cmdline("rd.sysext=0 systemd.sysext=1").of(ImageClass::Sysext).enabled);
    CHECK_FALSE(parse_cmdline("systemd.sysext=1 rd.systemd.sysext=0").of(ImageClass::Sysext).enabled);
    CHECK(parse_cmdline("systemd.confext=0 rd.confext").of(ImageClass::Confext).enabled);
    // One class does not affect the other.
    CmdlineSettings s = parse_cmdline("systemd.sysext=0");
    CHECK(s.of(ImageClass::Confext).enabled);
}

TEST_CASE("cmdline: '-' and '_' are the same in keys") {
    CmdlineSettings s = parse_cmdline("rd.rdext.log-level=debug");
    CHECK(s.log_level == std::optional<std::string>("debug"));
    CHECK(s.warnings.empty());
}

TEST_CASE("cmdline: quoted values") {
    CmdlineSettings s = parse_cmdline("\"rd.sysext=0\" rd.sysext.exclude=\"a,b\"");
    CHECK_FALSE(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Sysext).exclude == std::set<std::string>{"a", "b"});
}

TEST_CASE("cmdline: exclusions accumulate") {
    CmdlineSettings s = parse_cmdline(
        "rd.sysext.exclude=foo rd.sysext.exclude=bar,baz rd.confext.exclude=etc1 "
        "rd.sysext.exclude=foo");
    CHECK(s.of(ImageClass::Sysext).exclude == std::set<std::string>{"foo", "bar", "baz"});
    CHECK(s.of(ImageClass::Confext).exclude == std::set<std::string>{"etc1"});
    CHECK(s.warnings.empty());
}

TEST_CASE("cmdline: invalid exclusion names are warned about, valid ones kept") {
    CmdlineSettings s = parse_cmdline("rd.sysext.exclude=good,a/b,,..,also_good");
    CHECK(s.of(ImageClass::Sysext).exclude == std::set<std::string>{"good", "also_good"});
    CHECK(s.warnings.size() == 3);
    CHECK(has_warning_containing(s, "invalid image name \"a/b\""));
    CHECK(has_warning_containing(s, "invalid image name \"\""));
    CHECK(has_warning_containing(s, "invalid image name \"..\""));
}

TEST_CASE("cmdline: control characters in names are refused and not echoed raw") {
    CmdlineSettings s = parse_cmdline(std::string("rd.confext.exclude=a\x01" "b,c"));
    CHECK(s.of(ImageClass::Confext).exclude == std::set<std::string>{"c"});
    REQUIRE(s.warnings.size() == 1);
    CHECK(has_warning_containing(s, "a\\x01b"));
    CHECK(s.warnings[0].find('\x01') == std::string::npos);
}

TEST_CASE("cmdline: an exclusion needs a value") {
    CmdlineSettings s = parse_cmdline("rd.sysext.exclude rd.confext.exclude=");
    CHECK(s.of(ImageClass::Sysext).exclude.empty());
    CHECK(s.of(ImageClass::Confext).exclude.empty());
    CHECK(s.warnings.size() == 2);
}

TEST_CASE("cmdline: log level") {
    CHECK(parse_cmdline("rd.rdext.log_level=info").log_level == std::optional<std::string>("info"));
    CHECK(parse_cmdline("rd.rdext.log_level=7").log_level == std::optional<std::string>("7"));
    CHECK(parse_cmdline("rd.rdext.log_level=debug rd.rdext.log_level=err").log_level ==
          std::optional<std::string>("err"));

    CmdlineSettings s = parse_cmdline("rd.rdext.log_level=debug rd.rdext.log_level=loud");
    CHECK(s.log_level == std::optional<std::string>("debug"));
    CHECK(s.warnings.size() == 1);

    s = parse_cmdline("rd.rdext.log_level");
    CHECK_FALSE(s.log_level.has_value());
    CHECK(s.warnings.size() == 1);
}

TEST_CASE("cmdline: unknown keys in our namespaces are warnings") {
    CmdlineSettings s = parse_cmdline("rd.sysext.foo=1 rd.confext.bar rd.rdext.nope=x");
    CHECK(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Confext).enabled);
    REQUIRE(s.warnings.size() == 3);
    CHECK(s.warnings[0] == "unknown option rd.sysext.foo=1, ignored");
    CHECK(s.warnings[1] == "unknown option rd.confext.bar, ignored");
    CHECK(s.warnings[2] == "unknown option rd.rdext.nope=x, ignored");
}

TEST_CASE("cmdline: other people's keys are left alone") {
    CmdlineSettings s = parse_cmdline(
        "rd.sysextra=1 sysext=0 rd.systemd.unit=x systemd.sysext.foo=1 rd.sysext_=1 "
        "systemd.confextfoo=0 rd.sysext.=1 =rd.sysext.x");
    CHECK(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Confext).enabled);
    // "rd.sysext." is inside our namespace (with an empty name).
    REQUIRE(s.warnings.size() == 1);
    CHECK(s.warnings[0] == "unknown option rd.sysext.=1, ignored");
}

TEST_CASE("cmdline: garbage does not crash or change settings") {
    std::string garbage;
    for (int i = 0; i < 2048; i++) garbage += static_cast<char>((i * 7919 + 13) % 256);
    CmdlineSettings s = parse_cmdline(garbage);
    CHECK(s.of(ImageClass::Sysext).enabled);
    CHECK(s.of(ImageClass::Confext).enabled);

    s = parse_cmdline("= == === \"\" '' \"=\" rd.sysext==1");
    CHECK(s.of(ImageClass::Sysext).enabled);  // "=1" is not a boolean
    CHECK(s.warnings.size() == 1);
}

TEST_CASE("cmdline: read_cmdline reads a file") {
    char path[] = "/tmp/rdext-cmdline-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        std::ofstream f(path);
        f << "root=/dev/vda rd.sysext=0 rd.confext.exclude=\"x,y\"\n";
    }
    auto s = read_cmdline(path);
    ::unlink(path);
    REQUIRE(s.has_value());
    CHECK_FALSE(s->of(ImageClass::Sysext).enabled);
    CHECK(s->of(ImageClass::Confext).exclude == std::set<std::string>{"x", "y"});
}

TEST_CASE("cmdline: read_cmdline refuses oversized and missing files") {
    char path[] = "/tmp/rdext-cmdline-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        std::ofstream f(path);
        f << std::string(1024 * 1024, 'x');
    }
    auto big = read_cmdline(path);
    ::unlink(path);
    CHECK_FALSE(big.has_value());

    auto missing = read_cmdline("/nonexistent/cmdline");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code() == ENOENT);
}

TEST_CASE("cmdline: read_cmdline does not wait on a FIFO") {
    char dir[] = "/tmp/rdext-cmdline-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    std::string fifo = std::string(dir) + "/cmdline";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto s = read_cmdline(fifo);  // an O_RDONLY open would wait for a writer
    ::unlink(fifo.c_str());
    ::rmdir(dir);
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().code() == EBADFD);
}

TEST_CASE("cmdline: /proc files, which report size 0, are read to the end") {
    // /proc/self/comm is the one such file a test can write: the name of
    // this (main) thread.
    char name[16] = {};
    REQUIRE(::prctl(PR_GET_NAME, name) == 0);
    REQUIRE(::prctl(PR_SET_NAME, "rd.sysext=0") == 0);
    auto comm = read_cmdline("/proc/self/comm");
    ::prctl(PR_SET_NAME, name);
    REQUIRE(comm.has_value());
    CHECK_FALSE(comm->of(ImageClass::Sysext).enabled);

    // /proc/cmdline gives what reading it by other means gives.
    std::string text;
    std::getline(std::ifstream("/proc/cmdline"), text);
    REQUIRE_FALSE(text.empty());
    auto s = read_cmdline("/proc/cmdline");
    REQUIRE(s.has_value());
    CmdlineSettings want = parse_cmdline(text);
    CHECK(s->of(ImageClass::Sysext).enabled == want.of(ImageClass::Sysext).enabled);
    CHECK(s->of(ImageClass::Confext).enabled == want.of(ImageClass::Confext).enabled);
    CHECK(s->of(ImageClass::Sysext).exclude == want.of(ImageClass::Sysext).exclude);
    CHECK(s->log_level == want.log_level);
    CHECK(s->warnings == want.warnings);
}

TEST_CASE("cmdline: rd.sysext.require and rd.confext.require accumulate names") {
    auto s = rdext::parse_cmdline("rd.sysext.require=a,b rd.sysext.require=c rd.confext.require=conf");
    CHECK(s.of(ImageClass::Sysext).require == std::set<std::string>{"a", "b", "c"});
    CHECK(s.of(ImageClass::Confext).require == std::set<std::string>{"conf"});
    CHECK(s.warnings.empty());
}

TEST_CASE("cmdline: rd.sysext.pin and rd.confext.pin pin versions per name") {
    using Pins = std::map<std::string, std::string>;
    auto s = parse_cmdline("rd.sysext.pin=foo=12 rd.sysext.pin=bar=1.2.3-rc1 rd.confext.pin=cx=7");
    CHECK(s.of(ImageClass::Sysext).pin == Pins{{"foo", "12"}, {"bar", "1.2.3-rc1"}});
    CHECK(s.of(ImageClass::Confext).pin == Pins{{"cx", "7"}});
    CHECK(s.warnings.empty());
    CHECK(parse_cmdline("").of(ImageClass::Sysext).pin.empty());
    // The last pin of a name wins.
    CHECK(parse_cmdline("rd.sysext.pin=foo=1 rd.sysext.pin=foo=2").of(ImageClass::Sysext).pin == Pins{{"foo", "2"}});
    // Everything after the first '=' of the value is the version.
    CHECK(parse_cmdline("rd.sysext.pin=foo=1+git").of(ImageClass::Sysext).pin == Pins{{"foo", "1+git"}});
}

TEST_CASE("cmdline: malformed pins are warned about and ignored") {
    for (const char* word : {"rd.sysext.pin", "rd.sysext.pin=", "rd.sysext.pin=foo", "rd.sysext.pin==12",
                             "rd.sysext.pin=foo=", "rd.sysext.pin=foo=1 2", "rd.sysext.pin=a/b=1",
                             "rd.sysext.pin=foo=1~rc1", "rd.confext.pin=cx=1=2"}) {
        auto s = parse_cmdline(std::string("\"") + word + "\"");
        CHECK_MESSAGE(s.of(ImageClass::Sysext).pin.empty(), word);
        CHECK_MESSAGE(s.of(ImageClass::Confext).pin.empty(), word);
        CHECK_MESSAGE(s.warnings.size() == 1, word);
    }
    CHECK(has_warning_containing(parse_cmdline("rd.sysext.pin=foo"), "expects NAME=VERSION"));
    CHECK(has_warning_containing(parse_cmdline("rd.sysext.pin=foo=a$b"), "invalid version"));
    CHECK(has_warning_containing(parse_cmdline("rd.sysext.pin=.=1"), "invalid image name"));
}

TEST_CASE("cmdline: an image policy key without '=' is kept, as no valid policy") {
    CmdlineSettings s = parse_cmdline("rd.sysext.image_policy rd.confext.image-policy");
    REQUIRE(s.of(ImageClass::Sysext).image_policy.has_value());
    REQUIRE(s.of(ImageClass::Confext).image_policy.has_value());
    CHECK(s.of(ImageClass::Sysext).image_policy->find('=') == std::string::npos);
    CHECK(s.of(ImageClass::Confext).image_policy->find('=') == std::string::npos);
    // Neither parses: the merge refuses every image of the class.
    CHECK_FALSE(parse_image_policy(*s.of(ImageClass::Sysext).image_policy).has_value());
    CHECK_FALSE(parse_image_policy(*s.of(ImageClass::Confext).image_policy).has_value());
    s = parse_cmdline("rd.sysext.image_policy=");
    REQUIRE(s.of(ImageClass::Sysext).image_policy.has_value());
    CHECK(s.of(ImageClass::Sysext).image_policy->empty());
}

TEST_CASE("cmdline: block device images are off unless rd.sysext/confext.block_devices allows them") {
    auto none = parse_cmdline("quiet");
    CHECK_FALSE(none.of(ImageClass::Sysext).block_devices);
    CHECK_FALSE(none.of(ImageClass::Confext).block_devices);
    auto s = parse_cmdline("rd.sysext.block_devices=1 rd.confext.block-devices");
    CHECK(s.of(ImageClass::Sysext).block_devices);
    CHECK(s.of(ImageClass::Confext).block_devices);
    CHECK(s.warnings.empty());
    auto bad = parse_cmdline("rd.sysext.block_devices=maybe");
    CHECK_FALSE(bad.of(ImageClass::Sysext).block_devices);
    CHECK(bad.warnings.size() == 1);
}
