// os-release parsing (systemd's env-file syntax) and reading the target's
// os-release.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "release/os_release.h"
#include "release/release_utf8.h"
#include "release_test_util.h"

using rdext::parse_os_release;
using rdext::ReleaseFields;
using rdext::read_host_os_release;
using rdext::testing::TempTree;

namespace {

ReleaseFields parse_ok(const std::string& text) {
    auto r = parse_os_release(text);
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
    return *r;
}

bool mentions(const rdext::Error& e, const std::string& what) {
    return e.what().find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("os-release: plain KEY=VALUE lines") {
    auto f = parse_ok("ID=debian\nVERSION_ID=12\n");
    CHECK(f == ReleaseFields{{"ID", "debian"}, {"VERSION_ID", "12"}});
}

TEST_CASE("os-release: the last line needs no newline") {
    CHECK(parse_ok("ID=debian")["ID"] == "debian");
}

TEST_CASE("os-release: double quotes keep spaces") {
    CHECK(parse_ok("NAME=\"Debian GNU/Linux\"\n")["NAME"] == "Debian GNU/Linux");
}

TEST_CASE("os-release: single quotes take everything literally") {
    CHECK(parse_ok("A='x \\\" $y'\n")["A"] == "x \\\" $y");
}

TEST_CASE("os-release: in double quotes only a double quote, backslash, backtick or dollar loses its backslash") {
    auto f = parse_ok("A=\"q\\\" b\\\\ t\\` d\\$ n\\n\"\n");
    CHECK(f["A"] == "q\" b\\ t` d$ n\\n");
}

TEST_CASE("os-release: a backslash outside quotes escapes any character") {
    auto f = parse_ok("A=a\\ b\nB=c\\\\d\nC=e\\nf\n");
    CHECK(f["A"] == "a b");
    CHECK(f["B"] == "c\\d");
    CHECK(f["C"] == "enf");
}

TEST_CASE("os-release: backslash-newline continues the value") {
    auto f = parse_ok("A=foo\\\nbar\nB=\"one\\\ntwo\"\n");
    CHECK(f["A"] == "foobar");
    CHECK(f["B"] == "onetwo");
}

TEST_CASE("os-release: quoted values may span lines") {
    CHECK(parse_ok("A=\"x\ny\"\nB=1\n") == ReleaseFields{{"A", "x\ny"}, {"B", "1"}});
}

TEST_CASE("os-release: adjacent quoted and unquoted parts are joined") {
    CHECK(parse_ok("A=\"foo\"'bar'baz\n")["A"] == "foobarbaz");
}

TEST_CASE("os-release: comments start with # or semicolon at the beginning of a line") {
    auto f = parse_ok("# comment\n  ; indented comment\nID=debian\n#ID=fedora\n");
    CHECK(f == ReleaseFields{{"ID", "debian"}});
}

TEST_CASE("os-release: # inside a value is not a comment") {
    CHECK(parse_ok("A=b#c\n")["A"] == "b#c");
}

TEST_CASE("os-release: a comment ending in a backslash does not swallow the next line") {
    CHECK(parse_ok("# comment \\\nID=debian\n")["ID"] == "debian");
}

TEST_CASE("os-release: blank lines and surrounding whitespace are ignored") {
    CHECK(parse_ok("\n\n   \n\tID=debian\n\n")["ID"] == "debian");
}

TEST_CASE("os-release: whitespace around '=' is dropped, as systemd does") {
    CHECK(parse_ok("ID = debian\n")["ID"] == "debian");
}

TEST_CASE("os-release: trailing whitespace of an unquoted value is dropped") {
    auto f = parse_ok("A=a b  \nB=\"c \"  \nC=d\\ \n");
    CHECK(f["A"] == "a b");
    CHECK(f["B"] == "c ");
    CHECK(f["C"] == "d ");
}

TEST_CASE("os-release: CRLF line endings") {
    CHECK(parse_ok("ID=debian\r\nVERSION_ID=12\r\n") == ReleaseFields{{"ID", "debian"}, {"VERSION_ID", "12"}});
}

TEST_CASE("os-release: an empty value is present and empty") {
    auto f = parse_ok("VERSION_ID=\nA=\"\"\n");
    REQUIRE(f.count("VERSION_ID") == 1);
    CHECK(f["VERSION_ID"] == "");
    CHECK(f["A"] == "");
}

TEST_CASE("os-release: the last assignment of a key wins") {
    CHECK(parse_ok("ID=a\nID=b\n")["ID"] == "b");
}

TEST_CASE("os-release: lines without '=' are ignored") {
    CHECK(parse_ok("garbage line\nID=debian\n") == ReleaseFields{{"ID", "debian"}});
}

TEST_CASE("os-release: keys that are not variable names are ignored, 'export' included") {
    auto f = parse_ok("export ID=fedora\n1A=x\nA-B=y\nA B=z\nID=debian\n_OK=1\n");
    CHECK(f == ReleaseFields{{"ID", "debian"}, {"_OK", "1"}});
}

TEST_CASE("os-release: an unterminated quote runs to the end of the file") {
    CHECK(parse_ok("ID=\"debian\nX=1")["ID"] == "debian\nX=1");
}

TEST_CASE("os-release: UTF-8 text is accepted") {
    CHECK(parse_ok("NAME=\"D\xC3\xA9" "bian \xE2\x98\x83\"\n")["NAME"] == "D\xC3\xA9" "bian \xE2\x98\x83");
}

TEST_CASE("os-release: a NUL byte is binary content") {
    auto r = parse_os_release(std::string("ID=deb\0ian\n", 11));
    REQUIRE_FALSE(r.has_value());
    CHECK(mentions(r.error(), "binary content"));
}

TEST_CASE("os-release: invalid UTF-8 in a value is binary content") {
    for (std::string bad : {"\xFF", "\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xEF\xBF\xBE", "\xF4\x90\x80\x80"}) {
        CAPTURE(bad);
        auto r = parse_os_release("ID=a" + bad + "\n");
        REQUIRE_FALSE(r.has_value());
        CHECK(mentions(r.error(), "binary content"));
    }
}

TEST_CASE("os-release: invalid UTF-8 in a key is binary content") {
    auto r = parse_os_release("I\xFF" "D=a\n");
    REQUIRE_FALSE(r.has_value());
    CHECK(mentions(r.error(), "binary content"));
}

TEST_CASE("os-release: invalid UTF-8 in a comment is tolerated, as by systemd") {
    CHECK(parse_ok("# caf\xE9\nID=debian\n")["ID"] == "debian");
}

TEST_CASE("os-release: huge input parses in linear time") {
    std::string text;
    for (int i = 0; i < 50000; i++) text += "# filler line " + std::to_string(i) + "\nK" + std::to_string(i) + "=v\n";
    text += "BIG=\"" + std::string(1 << 20, 'x') + "\"\n";
    auto f = parse_ok(text);
    CHECK(f.size() == 50001);
    CHECK(f["BIG"].size() == (1u << 20));
}

TEST_CASE("host os-release: /etc/os-release is preferred") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("etc/os-release", "ID=etc\n");
    t.write("usr/lib/os-release", "ID=usr\n");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
    CHECK((*r)["ID"] == "etc");
}

TEST_CASE("host os-release: /usr/lib/os-release when /etc has none") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("usr/lib/os-release", "ID=usr\n");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
    CHECK((*r)["ID"] == "usr");
}

TEST_CASE("host os-release: an absolute symlink resolves inside the root") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("usr/lib/os-release", "ID=inside\n");
    t.symlink("/usr/lib/os-release", "etc/os-release");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
    CHECK((*r)["ID"] == "inside");
}

TEST_CASE("host os-release: a dangling /etc/os-release link falls back to /usr/lib") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("usr/lib/os-release", "ID=usr\n");
    t.symlink("/nowhere", "etc/os-release");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
    CHECK((*r)["ID"] == "usr");
}

TEST_CASE("host os-release: missing everywhere is ENOENT") {
    TempTree t;
    REQUIRE(t.ok());
    auto r = read_host_os_release(t.open().get());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ENOENT);
}

TEST_CASE("host os-release: a directory is refused, not skipped") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir("etc/os-release");
    t.write("usr/lib/os-release", "ID=usr\n");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_FALSE(r.has_value());
    CHECK(mentions(r.error(), "not a regular file"));
}

TEST_CASE("host os-release: a FIFO is refused without blocking") {
    TempTree t;
    REQUIRE(t.ok());
    t.mkdir("etc");
    REQUIRE(::mkfifo(t.path("etc/os-release").c_str(), 0644) == 0);
    auto r = read_host_os_release(t.open().get());
    REQUIRE_FALSE(r.has_value());
    CHECK(mentions(r.error(), "not a regular file"));
}

TEST_CASE("host os-release: more than 64 KiB is refused with E2BIG") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("etc/os-release", "ID=x\n# " + std::string(64 * 1024, 'x') + "\n");
    auto r = read_host_os_release(t.open().get());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == E2BIG);
    CHECK(mentions(r.error(), "too large"));
}

TEST_CASE("host os-release: binary content is refused") {
    TempTree t;
    REQUIRE(t.ok());
    t.write("etc/os-release", std::string("ID=a\0b\n", 7));
    auto r = read_host_os_release(t.open().get());
    REQUIRE_FALSE(r.has_value());
    CHECK(mentions(r.error(), "binary content"));
}

TEST_CASE("cescape: control characters, backslashes and invalid UTF-8 are escaped, valid UTF-8 stays") {
    using rdext::cescape;
    CHECK(cescape("plain-name_1.2") == "plain-name_1.2");
    CHECK(cescape("a\nb\rc\td\\e") == "a\\nb\\rc\\td\\\\e");
    CHECK(cescape("\x1b[2J\x7f") == "\\x1b[2J\\x7f");
    CHECK(cescape(std::string("nul\0x", 5)) == "nul\\x00x");
    CHECK(cescape("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");  // é €
    CHECK(cescape("c1\xc2\x9b") == "c1\\xc2\\x9b");                          // U+009B, a CSI
    CHECK(cescape("bad\xff\xc3") == "bad\\xff\\xc3");
    CHECK(rdext::json_text("caf\xc3\xa9\n") == "caf\xc3\xa9\n");
    CHECK(rdext::json_text("bad\xff") == "bad\\xff");
}
