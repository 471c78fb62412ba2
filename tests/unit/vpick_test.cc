// Versioned directories (systemd.v(7)): entry names, ranking, selection with
// an injected "is it usable" check, discovery of NAME.raw.v/ directories and
// the boot counting renames. No mounts: selection is tested through its
// callback.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "boot_count/boot_count.h"
#include "discover/discover.h"
#include "release/release_architecture.h"
#include "state/state_file.h"
#include "target/target.h"
#include "test_util.h"
#include "vpick/vpick.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

const std::vector<std::string> kX86{"x86-64", "x86"};

VersionedDirName raw_dir(const std::string& name) { return VersionedDirName{name, ".raw"}; }

VersionedEntry entry(const std::string& file, const std::vector<std::string>& archs = kX86) {
    auto e = parse_versioned_entry(file, raw_dir("foo"), archs);
    REQUIRE_MESSAGE(e, file << ": " << e.error().what());
    return *e;
}

std::string refusal(const std::string& file, const std::vector<std::string>& archs = kX86) {
    auto e = parse_versioned_entry(file, raw_dir("foo"), archs);
    REQUIRE_MESSAGE(!e, file << " parsed, but should not");
    CHECK(e.error().code() == EINVAL);
    return e.error().what();
}

std::vector<std::string> ranked_files(std::vector<std::string> files) {
    std::vector<VersionedEntry> v;
    for (const auto& f : files) v.push_back(entry(f));
    rank_entries(v);
    std::vector<std::string> out;
    for (const auto& e : v) out.push_back(e.file);
    return out;
}

std::vector<VersionedEntry> ranked(const std::vector<std::string>& files) {
    std::vector<VersionedEntry> v;
    for (const auto& f : files) v.push_back(entry(f));
    rank_entries(v);
    return v;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// A fake "stage and check": refuses the versions in `refused`, records the
// order in which entries were tried.
struct FakeOs {
    const std::vector<VersionedEntry>& entries;
    std::set<std::string> refused;
    std::vector<std::string> tried;
    TryEntry fn() {
        return [this](size_t i) -> Result<void> {
            tried.push_back(entries[i].file);
            if (refused.count(entries[i].version))
                return Error() << "VERSION_ID=" << entries[i].version << " does not match the OS's VERSION_ID=12";
            return {};
        };
    }
};

}  // namespace

TEST_CASE("vpick: versioned directory names") {
    auto raw = parse_versioned_dir_name("foo.raw.v", ImageClass::Sysext);
    REQUIRE(raw);
    CHECK(raw->name == "foo");
    CHECK(raw->suffix == ".raw");
    CHECK(raw->holds_files());

    auto dir = parse_versioned_dir_name("foo.v", ImageClass::Sysext);
    REQUIRE(dir);
    CHECK(dir->name == "foo");
    CHECK(dir->suffix == "");
    CHECK_FALSE(dir->holds_files());

    // The class's own infix is part of every entry's suffix.
    auto infix = parse_versioned_dir_name("foo.sysext.raw.v", ImageClass::Sysext);
    REQUIRE(infix);
    CHECK(infix->name == "foo");
    CHECK(infix->suffix == ".sysext.raw");
    auto other = parse_versioned_dir_name("foo.confext.raw.v", ImageClass::Sysext);
    REQUIRE(other);
    CHECK(other->name == "foo.confext");
    auto conf = parse_versioned_dir_name("foo.confext.v", ImageClass::Confext);
    REQUIRE(conf);
    CHECK(conf->name == "foo");
    CHECK(conf->suffix == ".confext");

    CHECK_FALSE(parse_versioned_dir_name("foo", ImageClass::Sysext));
    CHECK_FALSE(parse_versioned_dir_name(".v", ImageClass::Sysext));
    CHECK_FALSE(parse_versioned_dir_name(".raw.v", ImageClass::Sysext));
    CHECK_FALSE(parse_versioned_dir_name(".#foo.raw.v", ImageClass::Sysext));
}

TEST_CASE("vpick: entry names, versions and architectures") {
    auto plain = entry("foo_12.raw");
    CHECK(plain.version == "12");
    CHECK(plain.architecture == "");
    CHECK(plain.arch_rank == 2);  // after both local architectures
    CHECK_FALSE(plain.tries);

    auto native = entry("foo_1.2.3_x86-64.raw");
    CHECK(native.version == "1.2.3");
    CHECK(native.architecture == "x86-64");
    CHECK(native.arch_rank == 0);
    CHECK(entry("foo_1_x86.raw").arch_rank == 1);

    // systemd's version characters include ',', '_' and '+'.
    CHECK(entry("foo_1.0+git.raw").version == "1.0+git");
    CHECK(entry("foo_1,5.raw").version == "1,5");
    CHECK(entry("foo_1.0-rc1.raw").version == "1.0-rc1");

    // A word after the last '_' that is no architecture is dropped, as
    // systemd does, and said.
    auto odd = entry("foo_1_2.raw");
    CHECK(odd.version == "1");
    CHECK(odd.architecture == "");
    CHECK(contains(odd.note, "'_2'"));
    CHECK(entry("foo_1_x86_64.raw").version == "1_x86");
}

TEST_CASE("vpick: entries not to consider say why") {
    CHECK(contains(refusal("bar_1.raw"), "does not start with 'foo_'"));
    CHECK(contains(refusal("foo-1.raw"), "does not start with 'foo_'"));
    CHECK(contains(refusal("foo_1.img"), "does not end in '.raw'"));
    CHECK(contains(refusal("foo_1.raw.tmp"), "does not end in '.raw'"));
    CHECK(contains(refusal("foo_.raw"), "no version"));
    CHECK(contains(refusal("foo__x86-64.raw"), "no version"));
    CHECK(contains(refusal("foo_1 2.raw"), "is not valid"));
    CHECK(contains(refusal("foo_1~rc1.raw"), "is not valid"));
    CHECK(contains(refusal("foo_1\n.raw"), "\\x0a"));
    CHECK(contains(refusal("foo_12_arm64.raw"), "built for arm64"));
    CHECK(contains(refusal("foo_12_arm64+3-0.raw"), "built for arm64"));
    CHECK(contains(refusal("foo_12+3-.raw"), "boot counter '+3-' does not parse"));
    CHECK(contains(refusal("foo_12+3-1-1.raw"), "does not parse"));
    CHECK(contains(refusal("foo_12+99999999999.raw"), "does not parse"));
    CHECK(contains(refusal("foo_12+3-x.raw"), "does not parse"));
    // On an arm64 machine the same name is fine.
    CHECK(entry("foo_12_arm64.raw", {"arm64", "arm"}).arch_rank == 0);
}

TEST_CASE("vpick: boot counters") {
    auto t = entry("foo_14+3.raw");
    REQUIRE(t.tries);
    CHECK(t.tries->left == 3);
    CHECK(t.tries->done == 0);
    CHECK(t.version == "14");
    CHECK(t.name_with_tries(2, 1) == "foo_14+2-1.raw");
    CHECK(t.good_name() == "foo_14.raw");

    auto full = entry("foo_14_x86-64+0-5.raw");
    REQUIRE(full.tries);
    CHECK(full.tries->left == 0);
    CHECK(full.tries->done == 5);
    CHECK(full.architecture == "x86-64");
    CHECK(full.good_name() == "foo_14_x86-64.raw");

    // The rest of the name is kept byte for byte (leading zeros, odd words).
    auto odd = entry("foo_014_9+04-00.raw");
    CHECK(odd.tries->left == 4);
    CHECK(odd.name_with_tries(3, 1) == "foo_014_9+3-1.raw");
    CHECK(odd.good_name() == "foo_014_9.raw");
    CHECK(entry("foo_12+4294967295.raw").tries->left == 4294967295u);

    auto none = entry("foo_14.raw");
    CHECK(none.name_with_tries(1, 1) == "foo_14.raw");
    CHECK(none.good_name() == "foo_14.raw");
}

TEST_CASE("vpick: ranking follows systemd.v(7)") {
    // The man page's example (mymachine_7.6.0_arm64.raw is dropped earlier).
    CHECK(ranked_files({"foo_7.5.13.raw", "foo_7.5.14_x86-64.raw", "foo_7.7.0_x86-64+0-5.raw"}) ==
          std::vector<std::string>{"foo_7.5.14_x86-64.raw", "foo_7.5.13.raw", "foo_7.7.0_x86-64+0-5.raw"});
    // Newest first, by UAPI version comparison, not by bytes.
    CHECK(ranked_files({"foo_9.raw", "foo_10.raw"}).front() == "foo_10.raw");
    CHECK(ranked_files({"foo_1.9.raw", "foo_1.10.raw"}).front() == "foo_1.10.raw");
    // No tries left ranks below everything, however new.
    CHECK(ranked_files({"foo_14+0-3.raw", "foo_11.raw", "foo_12+1-2.raw"}) ==
          std::vector<std::string>{"foo_12+1-2.raw", "foo_11.raw", "foo_14+0-3.raw"});
    // Equal versions: native architecture, then secondary, then none.
    CHECK(ranked_files({"foo_3.raw", "foo_3_x86.raw", "foo_3_x86-64.raw"}) ==
          std::vector<std::string>{"foo_3_x86-64.raw", "foo_3_x86.raw", "foo_3.raw"});
    // Equal versions: no counter (good) before a trial; more tries left,
    // then fewer done.
    CHECK(ranked_files({"foo_3+1-0.raw", "foo_3.raw", "foo_3+2-5.raw", "foo_3+2-1.raw"}) ==
          std::vector<std::string>{"foo_3.raw", "foo_3+2-1.raw", "foo_3+2-5.raw", "foo_3+1-0.raw"});
    // Equivalent versions: the name that sorts later.
    CHECK(ranked_files({"foo_012.raw", "foo_12.raw"}).front() == "foo_12.raw");
    // The order does not depend on the input order.
    CHECK(ranked_files({"foo_12.raw", "foo_012.raw"}).front() == "foo_12.raw");
}

TEST_CASE("vpick: why an entry ranks below another, and duplicates") {
    auto v = ranked({"foo_13.raw", "foo_12.raw", "foo_14+0-3.raw", "foo_012.raw"});
    CHECK(why_ranked_before(v[0], v[1]) == "older than foo_13.raw");
    CHECK(why_ranked_before(v[0], v[3]) == "no tries left");
    CHECK(contains(why_ranked_before(v[1], v[2]), "same version as foo_12.raw"));
    CHECK(contains(why_ranked_before(v[1], v[2]), "name sorts later"));
    auto dups = duplicate_versions(v);
    REQUIRE(dups.size() == 1);
    CHECK(contains(dups[0], "foo_12.raw and foo_012.raw claim the same version"));

    auto trial = ranked({"foo_5+2-0.raw", "foo_5.raw"});
    CHECK(contains(duplicate_versions(trial).at(0), "more tries left"));
}

TEST_CASE("vpick: selection takes the best ranked entry that is usable, trying no more than needed") {
    auto v = ranked({"foo_11.raw", "foo_12.raw", "foo_13.raw"});
    FakeOs os{v, {"13"}};
    Selection s = select_entry(v, "", os.fn());
    REQUIRE(s.chosen);
    CHECK(v[*s.chosen].file == "foo_12.raw");
    CHECK(os.tried == std::vector<std::string>{"foo_13.raw", "foo_12.raw"});
    CHECK(s.outcomes[0].verdict == EntryVerdict::PassedOver);
    CHECK(s.outcomes[0].tried);
    CHECK(contains(s.outcomes[0].reason, "VERSION_ID=13"));
    CHECK(s.outcomes[1].verdict == EntryVerdict::Chosen);
    CHECK(s.outcomes[1].reason == "the best ranked entry that can be used");
    CHECK_FALSE(s.outcomes[2].tried);
    CHECK(s.outcomes[2].reason == "older than foo_12.raw");
    CHECK(s.pin_note.empty());

    FakeOs newest{v, {}};
    Selection n = select_entry(v, "", newest.fn());
    CHECK(v[*n.chosen].file == "foo_13.raw");
    CHECK(newest.tried.size() == 1);
    CHECK(n.outcomes[0].reason == "the best ranked entry");
}

TEST_CASE("vpick: an OS rolled back picks the entry for the older release") {
    auto v = ranked({"foo_11.raw", "foo_12.raw", "foo_13.raw"});
    FakeOs os{v, {"13", "12"}};
    Selection s = select_entry(v, "", os.fn());
    REQUIRE(s.chosen);
    CHECK(v[*s.chosen].file == "foo_11.raw");
    CHECK(os.tried.size() == 3);
}

TEST_CASE("vpick: nothing usable chooses nothing, every entry says why") {
    auto v = ranked({"foo_13.raw", "foo_14.raw"});
    FakeOs os{v, {"13", "14"}};
    Selection s = select_entry(v, "", os.fn());
    CHECK_FALSE(s.chosen);
    for (const auto& o : s.outcomes) {
        CHECK(o.tried);
        CHECK(o.verdict == EntryVerdict::PassedOver);
        CHECK(contains(o.reason, "does not match"));
    }
    Selection empty = select_entry({}, "", os.fn());
    CHECK_FALSE(empty.chosen);
}

TEST_CASE("vpick: an entry with no tries left is the last resort") {
    auto v = ranked({"foo_14+0-3.raw", "foo_13.raw"});
    FakeOs ok{v, {}};
    CHECK(v[*select_entry(v, "", ok.fn()).chosen].file == "foo_13.raw");
    FakeOs only{v, {"13"}};
    Selection s = select_entry(v, "", only.fn());
    REQUIRE(s.chosen);
    CHECK(v[*s.chosen].file == "foo_14+0-3.raw");
    CHECK(contains(s.outcomes[*s.chosen].reason, "no tries left"));
}

TEST_CASE("vpick: a pinned version goes first") {
    auto v = ranked({"foo_11.raw", "foo_12.raw", "foo_13.raw"});
    FakeOs os{v, {}};
    Selection s = select_entry(v, "11", os.fn());
    REQUIRE(s.chosen);
    CHECK(v[*s.chosen].file == "foo_11.raw");
    CHECK(os.tried == std::vector<std::string>{"foo_11.raw"});
    CHECK(s.outcomes[*s.chosen].reason == "version 11 is pinned");
    CHECK(s.outcomes[0].reason == "version 11 is pinned");
    CHECK(s.pin_note.empty());

    // Pins match the version exactly, counters and architecture aside.
    auto t = ranked({"foo_11_x86-64+2-1.raw", "foo_12.raw"});
    FakeOs trial{t, {}};
    CHECK(t[*select_entry(t, "11", trial.fn()).chosen].file == "foo_11_x86-64+2-1.raw");
}

TEST_CASE("vpick: a pin that cannot be honoured falls back to the usual choice, with a note") {
    auto v = ranked({"foo_11.raw", "foo_12.raw", "foo_13.raw"});
    FakeOs absent{v, {}};
    Selection a = select_entry(v, "10", absent.fn());
    CHECK(v[*a.chosen].file == "foo_13.raw");
    CHECK(contains(a.pin_note, "no entry has the pinned version 10"));

    FakeOs refused{v, {"11", "13"}};
    Selection r = select_entry(v, "11", refused.fn());
    REQUIRE(r.chosen);
    CHECK(v[*r.chosen].file == "foo_12.raw");
    CHECK(refused.tried == std::vector<std::string>{"foo_11.raw", "foo_13.raw", "foo_12.raw"});
    CHECK(contains(r.pin_note, "no entry of the pinned version 11 can be used"));
    CHECK(r.outcomes[*r.chosen].reason == "the best ranked entry that can be used");
}

TEST_CASE("vpick: local architectures start with the native one") {
    auto archs = local_architectures();
    REQUIRE_FALSE(archs.empty());
    CHECK(archs[0] == native_architecture());
    for (const auto& a : archs) CHECK(is_known_architecture(a));
    CHECK(is_known_architecture("x86-64"));
    CHECK_FALSE(is_known_architecture("x86_64"));
    CHECK_FALSE(is_known_architecture("aarch64"));
}

// ---------------------------------------------------------------------------
// Discovery of versioned directories

namespace {

const Candidate* find_name(const std::vector<Candidate>& v, const std::string& name) {
    auto it = std::find_if(v.begin(), v.end(), [&](const Candidate& c) { return c.name == name; });
    return it == v.end() ? nullptr : &*it;
}

std::vector<Candidate> discover_ok(const TempDir& t, ImageClass cls = ImageClass::Sysext) {
    auto root = t.open_root();
    auto r = discover(root.get(), cls);
    REQUIRE(r);
    return std::move(*r);
}

std::string native_suffix() { return "_" + native_architecture(); }

}  // namespace

TEST_CASE("discover: NAME.raw.v is one image NAME with its entries ranked") {
    TempDir t;
    const std::string d = "var/lib/extensions/foo.raw.v/";
    t.write(d + "foo_11.raw", "x");
    t.write(d + "foo_13.raw", "x");
    t.write(d + "foo_12" + native_suffix() + ".raw", "x");
    t.write(d + "foo_14+0-3.raw", "x");
    t.write(d + "foo_15_sparc64.raw", "x");  // foreign (tests do not run on sparc64)
    t.write(d + "bar_1.raw", "x");
    t.write(d + "foo_x.img", "x");
    t.mkdir(d + "foo_16.raw");  // a directory in a .raw.v directory
    auto v = discover_ok(t);
    REQUIRE(v.size() == 1);
    const Candidate& c = v[0];
    CHECK(c.name == "foo");
    CHECK(c.state == EntryState::Available);
    CHECK(c.kind == ImageKind::Raw);
    CHECK(c.path == "/var/lib/extensions/foo.raw.v/foo_13.raw");
    REQUIRE(c.versioned);
    CHECK(c.versioned->path == "/var/lib/extensions/foo.raw.v");
    std::vector<std::string> files;
    for (const auto& img : c.versioned->ranked) files.push_back(img.entry.file);
    CHECK(files == std::vector<std::string>{"foo_13.raw", "foo_12" + native_suffix() + ".raw", "foo_11.raw",
                                            "foo_14+0-3.raw"});
    REQUIRE(c.versioned->ignored.size() == 4);
    std::string all;
    for (const auto& i : c.versioned->ignored) all += i.path + ": " + i.reason + "\n";
    CHECK(contains(all, "foo_15_sparc64.raw: built for sparc64"));
    CHECK(contains(all, "bar_1.raw: the name does not start with 'foo_'"));
    CHECK(contains(all, "foo_x.img: the name does not end in '.raw'"));
    CHECK(contains(all, "foo_16.raw: not a regular file"));

    Candidate second = versioned_entry_candidate(c, 1);
    CHECK(second.path == "/var/lib/extensions/foo.raw.v/foo_12" + native_suffix() + ".raw");
    CHECK(second.name == "foo");
    struct stat st;
    REQUIRE(::stat((t / "var/lib/extensions/foo.raw.v/foo_11.raw").c_str(), &st) == 0);
    CHECK(c.versioned->ranked[2].identity == entry_identity(st));
}

TEST_CASE("discover: NAME.v holds directory trees") {
    TempDir t;
    t.write("etc/extensions/foo.v/foo_1/usr/lib/x", "1");
    t.write("etc/extensions/foo.v/foo_2/usr/lib/x", "2");
    t.write("etc/extensions/foo.v/foo_3.raw", "3");
    auto v = discover_ok(t);
    REQUIRE(v.size() == 1);
    CHECK(v[0].kind == ImageKind::Directory);
    CHECK(v[0].path == "/etc/extensions/foo.v/foo_2");
    REQUIRE(v[0].versioned);
    CHECK(v[0].versioned->ranked.size() == 2);
    REQUIRE(v[0].versioned->ignored.size() == 1);
    CHECK(contains(v[0].versioned->ignored[0].reason, "not a directory"));
}

TEST_CASE("discover: a versioned directory without usable entries holds no name") {
    TempDir t;
    t.write("etc/extensions/foo.raw.v/foo_1_sparc64.raw", "x");
    t.write("etc/extensions/foo.raw.v/foo_2_s390x.raw", "x");
    t.mkdir("etc/extensions/empty.raw.v");
    t.write("var/lib/extensions/foo.raw", "x");
    auto v = discover_ok(t);
    const Candidate* broken = nullptr;
    for (const auto& c : v)
        if (c.path == "/etc/extensions/foo.raw.v") broken = &c;
    REQUIRE(broken);
    CHECK(broken->state == EntryState::Broken);
    CHECK(contains(broken->reason, "no usable entry"));
    CHECK(contains(broken->reason, "built for sparc64"));
    const Candidate* empty = find_name(v, "empty");
    REQUIRE(empty);
    CHECK(empty->state == EntryState::Broken);
    CHECK(contains(empty->reason, "without entries"));
    // So the plain image further down the search path takes the name.
    bool plain_available = false;
    for (const auto& c : v)
        if (c.path == "/var/lib/extensions/foo.raw") plain_available = c.state == EntryState::Available;
    CHECK(plain_available);
}

TEST_CASE("discover: a versioned directory owns its name like any image") {
    TempDir t;
    t.write("etc/extensions/foo.raw.v/foo_1.raw", "x");
    t.write("var/lib/extensions/foo.raw", "x");
    t.write("var/lib/extensions/foo.v/foo_2/usr/x", "x");
    auto v = discover_ok(t);
    int available = 0, shadowed = 0;
    for (const auto& c : v) {
        CHECK(c.name == "foo");
        available += c.state == EntryState::Available;
        shadowed += c.state == EntryState::Shadowed;
    }
    CHECK(available == 1);
    CHECK(shadowed == 2);
}

TEST_CASE("discover: confext versioned directories") {
    TempDir t;
    t.write("run/confexts/cx.confext.raw.v/cx_1.confext.raw", "x");
    t.write("run/confexts/cx.confext.raw.v/cx_2.raw", "x");
    auto v = discover_ok(t, ImageClass::Confext);
    REQUIRE(v.size() == 1);
    CHECK(v[0].name == "cx");
    CHECK(v[0].path == "/run/confexts/cx.confext.raw.v/cx_1.confext.raw");
}

TEST_CASE("discover: entries resolve symlinks inside the root") {
    TempDir t;
    t.write("opt/images/foo-v2.raw", "x");
    t.symlink("/opt/images/foo-v2.raw", "etc/extensions/foo.raw.v/foo_2.raw");
    t.symlink("/nonexistent", "etc/extensions/foo.raw.v/foo_3.raw");
    auto v = discover_ok(t);
    REQUIRE(v.size() == 1);
    CHECK(v[0].path == "/etc/extensions/foo.raw.v/foo_2.raw");
    REQUIRE(v[0].versioned->ignored.size() == 1);
    CHECK(contains(v[0].versioned->ignored[0].reason, "cannot resolve"));
}

// ---------------------------------------------------------------------------
// Boot counting

namespace {

std::string identity_of(const TempDir& t, const std::string& rel) {
    struct stat st;
    REQUIRE(::lstat((t / rel).c_str(), &st) == 0);
    return entry_identity(st);
}

bool exists(const TempDir& t, const std::string& rel) { return std::filesystem::exists(t / rel); }

// Boot counting logs what it renames: keep it for the checks, off stderr.
struct CapturedLogs {
    CapturedLogs() {
        log_set_sink(LogSink::Capture);
        log_captured().clear();
    }
    ~CapturedLogs() { log_set_sink(LogSink::Stderr); }
    bool has(LogLevel level, const std::string& needle) const {
        for (const auto& l : log_captured())
            if (l.level == level && l.text.find(needle) != std::string::npos) return true;
        return false;
    }
};

// The record a merge would write for a merged trial entry.
MergeState merged_trial(const TempDir& t, const std::string& file, const std::string& boot_id = "boot-a") {
    auto dn = parse_versioned_dir_name("foo.raw.v", ImageClass::Sysext);
    VersionedImage img;
    img.entry = *parse_versioned_entry(file, *dn, kX86);
    img.identity = identity_of(t, "var/lib/extensions/foo.raw.v/" + file);
    MergeState s;
    s.boot_id = boot_id;
    ExtensionRecord r;
    r.name = "foo";
    r.cls = ImageClass::Sysext;
    r.result = ExtensionResult::Merged;
    r.path = "/var/lib/extensions/foo.raw.v/" + file;
    r.trial = trial_for("/var/lib/extensions/foo.raw.v", img);
    s.extensions.push_back(r);
    return s;
}

}  // namespace

TEST_CASE("boot counting: trial records") {
    CapturedLogs logs;
    TempDir t;
    t.write("var/lib/extensions/foo.raw.v/foo_14+3-0.raw", "x");
    t.write("var/lib/extensions/foo.raw.v/foo_13+0-2.raw", "x");
    t.write("var/lib/extensions/foo.raw.v/foo_12.raw", "x");
    auto s = merged_trial(t, "foo_14+3-0.raw");
    REQUIRE(s.extensions[0].trial);
    CHECK(s.extensions[0].trial->counted_name == "foo_14+2-1.raw");
    CHECK(s.extensions[0].trial->good_name == "foo_14.raw");
    CHECK(merged_trial(t, "foo_13+0-2.raw").extensions[0].trial->counted_name == "");
    CHECK_FALSE(merged_trial(t, "foo_12.raw").extensions[0].trial);
}

TEST_CASE("boot counting: rename_entry renames only the intended inode, never over another name") {
    CapturedLogs logs;
    TempDir t;
    t.write("v/foo_14+3-0.raw", "x");
    t.write("v/foo_13+1-0.raw", "x");
    t.write("v/foo_13+0-1.raw", "taken");
    UniqueFd dir(::open((t / "v").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    std::string id14 = identity_of(t, "v/foo_14+3-0.raw"), id13 = identity_of(t, "v/foo_13+1-0.raw");

    auto wrong = rename_entry(dir.get(), "foo_14+3-0.raw", "foo_14+2-1.raw", id13);
    CHECK_FALSE(wrong);
    CHECK(wrong.error().code() == ESTALE);
    CHECK(exists(t, "v/foo_14+3-0.raw"));

    auto taken = rename_entry(dir.get(), "foo_13+1-0.raw", "foo_13+0-1.raw", id13);
    CHECK_FALSE(taken);
    CHECK(taken.error().code() == EEXIST);
    CHECK(exists(t, "v/foo_13+1-0.raw"));

    CHECK_FALSE(rename_entry(dir.get(), "foo_14+3-0.raw", "../escape.raw", id14));
    CHECK(rename_entry(dir.get(), "foo_14+3-0.raw", "foo_14+2-1.raw", id14));
    CHECK(exists(t, "v/foo_14+2-1.raw"));
    CHECK_FALSE(exists(t, "v/foo_14+3-0.raw"));
    CHECK(identity_of(t, "v/foo_14+2-1.raw") == id14);
    // Asked again (a record that missed the first rename): done already.
    CHECK(rename_entry(dir.get(), "foo_14+3-0.raw", "foo_14+2-1.raw", id14));
    CHECK_FALSE(rename_entry(dir.get(), "foo_14+3-0.raw", "foo_14+2-1.raw", id13));
}

TEST_CASE("boot counting: count_trials uses up one try, once per boot") {
    CapturedLogs logs;
    TempDir t;
    t.write("var/lib/extensions/foo.raw.v/foo_14+3-0.raw", "x");
    auto root = t.open_root();
    auto first = merged_trial(t, "foo_14+3-0.raw");
    count_trials(root.get(), nullptr, first);
    CHECK(first.extensions[0].trial->status == TrialStatus::Counted);
    CHECK(first.extensions[0].path == "/var/lib/extensions/foo.raw.v/foo_14+2-1.raw");
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+2-1.raw"));

    // A refresh in the same boot picks the renamed entry: not counted again.
    auto again = merged_trial(t, "foo_14+2-1.raw");
    count_trials(root.get(), &first, again);
    CHECK(again.extensions[0].trial->status == TrialStatus::Counted);
    CHECK(again.extensions[0].trial->entry == "foo_14+3-0.raw");
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+2-1.raw"));

    // The next boot counts.
    auto next = merged_trial(t, "foo_14+2-1.raw", "boot-b");
    count_trials(root.get(), &first, next);
    CHECK(next.extensions[0].trial->status == TrialStatus::Counted);
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+1-2.raw"));
}

TEST_CASE("boot counting: no tries left, or a name taken, renames nothing") {
    CapturedLogs logs;
    TempDir t;
    t.write("var/lib/extensions/foo.raw.v/foo_14+0-3.raw", "x");
    t.write("var/lib/extensions/foo.raw.v/foo_13+1-0.raw", "x");
    t.write("var/lib/extensions/foo.raw.v/foo_13+0-1.raw", "x");
    auto root = t.open_root();
    auto exhausted = merged_trial(t, "foo_14+0-3.raw");
    count_trials(root.get(), nullptr, exhausted);
    CHECK(exhausted.extensions[0].trial->status == TrialStatus::Exhausted);
    CHECK(logs.has(LogLevel::Warning, "no tries left"));
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+0-3.raw"));

    auto taken = merged_trial(t, "foo_13+1-0.raw");
    count_trials(root.get(), nullptr, taken);
    CHECK(taken.extensions[0].trial->status == TrialStatus::Failed);
    CHECK(contains(taken.extensions[0].trial->reason, "already exists"));
    CHECK(logs.has(LogLevel::Warning, "not renaming"));
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_13+1-0.raw"));
}

TEST_CASE("boot counting: a pending rename is done by the next merge") {
    CapturedLogs logs;
    TempDir t;
    t.write("var/lib/extensions/foo.raw.v/foo_14+3-0.raw", "x");
    auto root = t.open_root();
    auto previous = merged_trial(t, "foo_14+3-0.raw");
    previous.extensions[0].trial->status = TrialStatus::Pending;
    retry_pending_trials(root.get(), previous);
    CHECK(previous.extensions[0].trial->status == TrialStatus::Counted);
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+2-1.raw"));
    // The merge after it, same boot, finds the entry already counted.
    auto now = merged_trial(t, "foo_14+2-1.raw");
    count_trials(root.get(), &previous, now);
    CHECK(now.extensions[0].trial->status == TrialStatus::Counted);
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14+2-1.raw"));
}

TEST_CASE("boot counting: mark-good renames the merged trial entries to their plain names") {
    CapturedLogs logs;
    TempDir t;
    t.write("var/lib/extensions/foo.raw.v/foo_14+3-0.raw", "x");
    t.mkdir("run");
    auto target = Target::open(t.path());
    REQUIRE(target);
    auto none = mark_good(*target);  // nothing merged: nothing to do
    CHECK(none.failure.empty());
    CHECK(none.operation == "mark-good");
    CHECK(none.extensions.empty());

    auto state = merged_trial(t, "foo_14+3-0.raw");
    count_trials(target->root_fd.get(), nullptr, state);
    auto runtime = target->runtime_dir(true);
    REQUIRE(runtime);
    REQUIRE(write_state(runtime->get(), state));
    auto marked = mark_good(*target);
    CHECK(marked.failure.empty());
    REQUIRE(marked.extensions.size() == 1);  // the record says what was marked good
    CHECK(marked.extensions[0].trial->status == TrialStatus::Good);
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_14.raw"));
    CHECK_FALSE(exists(t, "var/lib/extensions/foo.raw.v/foo_14+2-1.raw"));
    auto after = read_state(runtime->get());
    REQUIRE(after);
    CHECK(after->extensions[0].trial->status == TrialStatus::Good);
    CHECK(after->extensions[0].path == "/var/lib/extensions/foo.raw.v/foo_14.raw");
    auto again = mark_good(*target);  // again: nothing left to do
    CHECK(again.failure.empty());
    CHECK(again.extensions.empty());

    // A plain name that exists already is not overwritten.
    t.write("var/lib/extensions/foo.raw.v/foo_15+1-0.raw", "trial");
    t.write("var/lib/extensions/foo.raw.v/foo_15.raw", "other");
    auto clash = merged_trial(t, "foo_15+1-0.raw");
    REQUIRE(write_state(runtime->get(), clash));
    auto r = mark_good(*target);
    CHECK(contains(r.failure, "already exists"));
    CHECK(exists(t, "var/lib/extensions/foo.raw.v/foo_15+1-0.raw"));
}

TEST_CASE("state: versioned records survive state.json, and old files still read") {
    MergeState s;
    s.root = "/sysroot";
    s.boot_id = "b";
    ExtensionRecord r;
    r.name = "foo";
    r.result = ExtensionResult::Merged;
    r.versioned_dir = "/var/lib/extensions/foo.raw.v";
    r.candidates = {{"/x/foo_13.raw", "13", "", "passed over", "VERSION_ID=13 does not match"},
                    {"/x/foo_12_x86-64.raw", "12", "x86-64", "chosen", "the best ranked entry that can be used"},
                    {"/x/bar.raw", "", "", "ignored", "the name does not start with 'foo_'"}};
    r.notes = {"a note"};
    r.trial = TrialRecord{"/x", "foo_12+3-0.raw", "foo_12+2-1.raw", "foo_12.raw", "1:2:3", TrialStatus::Pending, "ro"};
    s.extensions.push_back(r);
    auto back = state_from_json(state_to_json(s, true));
    REQUIRE(back);
    CHECK(back->boot_id == "b");
    const auto& b = back->extensions.at(0);
    CHECK(b.versioned_dir == r.versioned_dir);
    REQUIRE(b.candidates.size() == 3);
    CHECK(b.candidates[1].architecture == "x86-64");
    CHECK(b.candidates[1].verdict == "chosen");
    CHECK(b.candidates[2].reason == r.candidates[2].reason);
    CHECK(b.notes == r.notes);
    REQUIRE(b.trial);
    CHECK(b.trial->counted_name == "foo_12+2-1.raw");
    CHECK(b.trial->status == TrialStatus::Pending);

    auto old = state_from_json(R"({"root":"/","time":"t","extensions":[{"name":"a","result":"merged"}]})");
    REQUIRE(old);
    CHECK(old->extensions.at(0).candidates.empty());
    CHECK_FALSE(old->extensions.at(0).trial);
    // Plain records do not grow the new keys.
    ExtensionRecord plain;
    plain.name = "a";
    MergeState p;
    p.extensions.push_back(plain);
    CHECK_FALSE(contains(state_to_json(p, false), "candidates"));
    CHECK_FALSE(contains(state_to_json(p, false), "trial"));
}

TEST_CASE("vpick: at most max_tries entries are tried, the rest are passed over untried") {
    std::vector<std::string> files;
    for (int i = 1; i <= 20; i++) files.push_back("foo_" + std::to_string(i) + ".raw");
    auto v = ranked(files);
    std::set<std::string> all;
    for (const auto& e : v) all.insert(e.version);
    FakeOs none{v, all};
    Selection s = select_entry(v, "", none.fn());
    CHECK_FALSE(s.chosen);
    CHECK(none.tried.size() == kMaxVersionedTries);
    CHECK(s.not_tried == 20 - kMaxVersionedTries);
    for (size_t i = 0; i < v.size(); i++) {
        CHECK(s.outcomes[i].tried == (i < kMaxVersionedTries));
        CHECK(s.outcomes[i].verdict == EntryVerdict::PassedOver);
        if (i >= kMaxVersionedTries) CHECK(starts_with(s.outcomes[i].reason, "not tried: at most 16"));
    }

    // A pinned entry's try counts too; the cap holds across pin and rest.
    FakeOs pinned{v, all};
    Selection p = select_entry(v, "3", pinned.fn(), 4);
    CHECK(pinned.tried == std::vector<std::string>{"foo_3.raw", "foo_20.raw", "foo_19.raw", "foo_18.raw"});
    CHECK(p.not_tried == 16);

    // The one that fits, within the cap, is chosen as before.
    FakeOs fits{v, {"20", "19"}};
    Selection f = select_entry(v, "", fits.fn(), 3);
    REQUIRE(f.chosen);
    CHECK(v[*f.chosen].file == "foo_18.raw");
    CHECK(f.not_tried == 0);
}
