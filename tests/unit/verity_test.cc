// Verification building blocks: the verity-sig partition parser, sidecar
// discovery next to a raw image, and the user-space PKCS#7 check. Keys,
// certificates and signatures are made at test time with the openssl
// command, signed the way systemd-repart and veritysetup sign: a detached
// PKCS#7 without attributes over the lower-case hex root hash, no newline.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/fd.h"
#include "prerequisite.h"
#include "test_util.h"
#include "verity/pkcs7.h"
#include "verity/root_hash.h"
#include "verity/sidecar.h"
#include "verity/verity_sig.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

const std::string kHash = "5a3e2b1f0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
const std::string kOtherHash = "0000000000000000000000000000000000000000000000000000000000000001";

// The error of a failed Result, for messages (doctest may evaluate a
// message even when the check passes).
template <typename T>
std::string why_not(const Result<T>& r) {
    return r ? std::string() : r.error().what();
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::string s = read_file(path);
    return std::vector<uint8_t>(s.begin(), s.end());
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
}

// Two self-signed certificates, A and B, and signatures over kHash.
struct Fixtures {
    TempDir dir;
    bool ok = false;

    Fixtures() {
        const std::string d = dir.path();
        std::string cmd = "cd " + d + " && (";
        for (const char* n : {"a", "b"})
            cmd += std::string("openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=rdext test ") + n +
                   "/O=rdext' -keyout " + n + ".key -out " + n + ".crt && ";
        cmd += "printf '%s' " + kHash + " > hash.txt && printf '%s\\n' " + kHash + " > hash-nl.txt && " +
               sign("a", "hash.txt", "a.p7s") + " && " + sign("b", "hash.txt", "b.p7s") + " && " +
               sign("a", "hash-nl.txt", "a-nl.p7s") + " && " +
               "openssl smime -sign -nodetach -binary -noattr -outform DER -in hash.txt -signer a.crt "
               "-inkey a.key -out a-attached.p7s && "
               "openssl x509 -in a.crt -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f > a.fp"
               ") >/dev/null 2>&1";
        ok = sh(cmd) == 0;
    }

    static std::string sign(const std::string& who, const std::string& in, const std::string& out) {
        return "openssl smime -sign -binary -noattr -outform DER -in " + in + " -signer " + who +
               ".crt -inkey " + who + ".key -out " + out;
    }

    std::string path(const std::string& n) const { return dir / n; }
    std::vector<uint8_t> bytes(const std::string& n) const { return read_bytes(path(n)); }
    std::string fingerprint_a() const {
        std::string s = read_file(path("a.fp"));
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s;
    }
    TrustStore trust(std::initializer_list<const char*> names) const {
        TrustStore t;
        for (const char* n : names) {
            auto c = parse_pem_certificate(read_file(path(std::string(n) + ".crt")), n);
            REQUIRE(c);
            t.certificates.push_back(std::move(*c));
        }
        return t;
    }
};

Fixtures& fixtures() {
    static Fixtures f;
    REQUIRE_MESSAGE(f.ok, "openssl could not make the test keys and signatures");
    return f;
}

std::string base64(const std::vector<uint8_t>& der) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < der.size(); i += 3) {
        uint32_t n = der[i] << 16 | der[i + 1] << 8 | der[i + 2];
        out += {a[n >> 18], a[n >> 12 & 63], a[n >> 6 & 63], a[n & 63]};
    }
    if (der.size() - i == 1) {
        uint32_t n = der[i] << 16;
        out += {a[n >> 18], a[n >> 12 & 63], '=', '='};
    } else if (der.size() - i == 2) {
        uint32_t n = der[i] << 16 | der[i + 1] << 8;
        out += {a[n >> 18], a[n >> 12 & 63], a[n >> 6 & 63], '='};
    }
    return out;
}

std::string sig_json(const std::string& hash, const std::string& sig_b64, const std::string& extra = "") {
    return "{\"rootHash\":\"" + hash + "\",\"signature\":\"" + sig_b64 + "\"" + extra + "}";
}

}  // namespace

// --- root hashes and partition UUIDs ---------------------------------------

TEST_CASE("root hash: hex text is trimmed and validated and lower-cased") {
    auto h = parse_root_hash("  " + std::string("5A3E2B1F0C9D8E7F6A5B4C3D2E1F0A9B8C7D6E5F4A3B2C1D0E9F8A7B6C5D4E3F") + "\n");
    REQUIRE(h);
    CHECK(h->hex == kHash);
    CHECK(h->bytes.size() == 32);
    CHECK_FALSE(parse_root_hash(""));
    CHECK_FALSE(parse_root_hash(kHash.substr(1)));            // odd length
    CHECK_FALSE(parse_root_hash(kHash.substr(0, 32)));        // 16 bytes: too short
    CHECK_FALSE(parse_root_hash(kHash + kHash + "00"));       // 65 bytes: too long
    CHECK(parse_root_hash(kHash + kHash));                    // sha512
    CHECK_FALSE(parse_root_hash("zz" + kHash.substr(2)));
    CHECK_FALSE(parse_root_hash(kHash.substr(0, 32) + " " + kHash.substr(32)));
}

TEST_CASE("partition UUIDs from a root hash: first and last 128 bits as systemd-repart writes them") {
    auto h = parse_root_hash("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    REQUIRE(h);
    auto u = expected_partition_uuids_from_root_hash(*h);
    CHECK(u.data == "00010203-0405-0607-0809-0a0b0c0d0e0f");
    CHECK(u.verity == "10111213-1415-1617-1819-1a1b1c1d1e1f");
}

// --- verity-sig partition --------------------------------------------------

TEST_CASE("verity-sig: valid JSON with NUL padding") {
    std::string json = sig_json(kHash, base64({1, 2, 3, 4, 5}),
                                ",\"certificateFingerprint\":\"" + std::string(64, 'a') + "\"");
    std::string raw = json + std::string(4096 - json.size(), '\0');
    auto s = parse_verity_sig(raw);
    REQUIRE_MESSAGE(s, why_not(s));
    CHECK(s->root_hash.hex == kHash);
    CHECK(s->signature == std::vector<uint8_t>{1, 2, 3, 4, 5});
    REQUIRE(s->certificate_fingerprint);
    CHECK(s->certificate_fingerprint->size() == 32);

    // systemd reads only rootHash and signature: the fingerprint is optional,
    // unknown fields are ignored, whitespace around the object is fine.
    auto t = parse_verity_sig(" \n" + sig_json(kHash, "AQID", ",\"comment\":1") + "\n");
    REQUIRE(t);
    CHECK_FALSE(t->certificate_fingerprint);
    CHECK(t->signature == std::vector<uint8_t>{1, 2, 3});
}

TEST_CASE("verity-sig: refusals") {
    auto refused = [](const std::string& raw, const char* why) {
        auto r = parse_verity_sig(raw);
        CHECK_MESSAGE(!r, "accepted: " << std::string(why));
        return !r ? r.error().what() : std::string();
    };
    refused("", "empty");
    refused(std::string(512, '\0'), "only padding");
    refused("this is not JSON", "not JSON");
    refused(sig_json(kHash, "AQID").substr(0, 30), "truncated JSON");
    refused(sig_json(kHash, "AQID") + "garbage", "trailing garbage inside the text");
    refused(sig_json(kHash, "AQID") + std::string(10, '\0') + "x" + std::string(10, '\0'),
            "non-NUL byte after the padding");
    refused("[" + sig_json(kHash, "AQID") + "]", "array");
    refused("{\"signature\":\"AQID\"}", "no rootHash");
    refused("{\"rootHash\":12,\"signature\":\"AQID\"}", "rootHash not a string");
    refused(sig_json("xyz", "AQID"), "rootHash not hex");
    refused(sig_json(kHash.substr(0, 20), "AQID"), "rootHash too short");
    refused("{\"rootHash\":\"" + kHash + "\"}", "no signature");
    refused("{\"rootHash\":\"" + kHash + "\",\"signature\":[1]}", "signature not a string");
    refused(sig_json(kHash, "AQI"), "bad base64 length");
    refused(sig_json(kHash, "AQ!D"), "bad base64 character");
    refused(sig_json(kHash, ""), "empty signature");
    refused(sig_json(kHash, "AQID", ",\"certificateFingerprint\":5"), "fingerprint not a string");
    refused(sig_json(kHash, "AQID", ",\"certificateFingerprint\":\"abcd\""), "fingerprint not sha256");
    std::string big = sig_json(kHash, "AQID");
    big.resize(kVeritySigMaxBytes + 1, '\0');
    CHECK(refused(big, "larger than 4 MiB").find("limit") != std::string::npos);
}

TEST_CASE("verity-sig: must name the root hash and partitions it sits beside") {
    auto s = parse_verity_sig(sig_json(kHash, "AQID"));
    REQUIRE(s);
    CHECK(check_verity_sig_root_hash(*s, *parse_root_hash(kHash)));
    auto other = check_verity_sig_root_hash(*s, *parse_root_hash(kOtherHash));
    REQUIRE_FALSE(other);
    CHECK(other.error().what().find(kOtherHash) != std::string::npos);

    auto uuids = expected_partition_uuids_from_root_hash(s->root_hash);
    CHECK(check_verity_sig_partition_uuids(*s, uuids.verity));
    CHECK(check_verity_sig_partition_uuids(*s, uuids.verity, uuids.data));
    std::string upper = uuids.verity;
    for (auto& c : upper) c = static_cast<char>(toupper(c));
    CHECK(check_verity_sig_partition_uuids(*s, upper));
    auto wrong = expected_partition_uuids_from_root_hash(*parse_root_hash(kOtherHash));
    CHECK_FALSE(check_verity_sig_partition_uuids(*s, wrong.verity));
    CHECK_FALSE(check_verity_sig_partition_uuids(*s, uuids.verity, wrong.data));
}

// --- PKCS#7 --------------------------------------------------------------

TEST_CASE("pkcs7: a signature by a trusted certificate is accepted and its signer named") {
    auto& f = fixtures();
    auto r = verify_root_hash_signature(kHash, f.bytes("a.p7s"), f.trust({"b", "a"}));
    REQUIRE_MESSAGE(r, why_not(r));
    CHECK(r->subject == "O=rdext,CN=rdext test a");
    CHECK(r->fingerprint == f.fingerprint_a());
    CHECK(r->source == "a");
    // The root hash as the kernel sees it is lower case; upper-case input
    // means the same hash.
    std::string upper = kHash;
    for (auto& c : upper) c = static_cast<char>(toupper(c));
    CHECK(verify_root_hash_signature(upper, f.bytes("a.p7s"), f.trust({"a"})));
}

TEST_CASE("pkcs7: verity-sig JSON round trip") {
    auto& f = fixtures();
    auto s = parse_verity_sig(sig_json(kHash, base64(f.bytes("a.p7s"))) + std::string(100, '\0'));
    REQUIRE(s);
    CHECK(verify_root_hash_signature(s->root_hash.hex, s->signature, f.trust({"a"})));
}

TEST_CASE("pkcs7: every truncation of a good signature is refused") {
    auto& f = fixtures();
    auto a = f.trust({"a"});
    auto der = f.bytes("a.p7s");
    for (size_t n = 0; n < der.size(); n++)
        CHECK_FALSE(verify_root_hash_signature(kHash, std::vector<uint8_t>(der.begin(), der.begin() + n), a));
}

TEST_CASE("verity-sig: every truncation of good JSON is refused") {
    std::string json = sig_json(kHash, "AQID");
    for (size_t n = 0; n < json.size(); n++) CHECK_FALSE(parse_verity_sig(json.substr(0, n)));
    CHECK(parse_verity_sig(json));
}

TEST_CASE("pkcs7: refusals") {
    auto& f = fixtures();
    auto a = f.trust({"a"});
    auto why = [&](const std::string& hash, const std::vector<uint8_t>& der, const TrustStore& t) {
        auto r = verify_root_hash_signature(hash, der, t);
        CHECK_FALSE(r);
        return r ? std::string("(accepted)") : r.error().what();
    };
    // Signed by B, only A trusted (B's certificate travels inside the
    // signature and must not count).
    CHECK(why(kHash, f.bytes("b.p7s"), a).find("not in verity.d") != std::string::npos);
    // Wrong root hash.
    CHECK(why(kOtherHash, f.bytes("a.p7s"), a).find("does not match") != std::string::npos);
    // Signed over "HEX\n": systemd signs the hex string exactly.
    CHECK(why(kHash, f.bytes("a-nl.p7s"), a).find("does not match") != std::string::npos);
    // Truncated, garbage, trailing bytes, empty.
    auto der = f.bytes("a.p7s");
    CHECK(why(kHash, std::vector<uint8_t>(der.begin(), der.begin() + der.size() / 2), a).find("PKCS#7") !=
          std::string::npos);
    CHECK(why(kHash, std::vector<uint8_t>(200, 0x42), a).find("PKCS#7") != std::string::npos);
    auto trailing = der;
    trailing.push_back(0);
    CHECK(why(kHash, trailing, a).find("trailing") != std::string::npos);
    why(kHash, {}, a);
    // A bit flipped near the end (inside the signature value).
    auto flipped = der;
    flipped[flipped.size() - 10] ^= 1;
    why(kHash, flipped, a);
    // Not detached.
    CHECK(why(kHash, f.bytes("a-attached.p7s"), a).find("detached") != std::string::npos);
    // Nothing trusted at all.
    CHECK(why(kHash, der, TrustStore{}).find("no trusted") != std::string::npos);
    // Not a root hash.
    why("not-hex", der, a);
}

TEST_CASE("pkcs7: verity.d loading from the initrd root with shadowing and masking") {
    auto& f = fixtures();
    TempDir root;
    root.mkdir("etc/verity.d");
    root.mkdir("usr/lib/verity.d");
    root.mkdir("run/verity.d");
    std::string a = read_file(f.path("a.crt")), b = read_file(f.path("b.crt"));
    write_file(root / "etc/verity.d/vendor.crt", a);
    write_file(root / "usr/lib/verity.d/vendor.crt", b);  // shadowed by /etc
    write_file(root / "usr/lib/verity.d/masked.crt", b);
    root.symlink("/dev/null", "etc/verity.d/masked.crt");
    write_file(root / "run/verity.d/empty.crt", "");      // masks nothing below, loads nothing
    write_file(root / "run/verity.d/broken.crt", "-----BEGIN CERTIFICATE-----\nnope\n");
    write_file(root / "run/verity.d/other.pem", b);        // not *.crt
    root.symlink("/etc/shadow", "run/verity.d/escape.crt");

    UniqueFd root_fd = root.open_root();
    auto dirs = open_verity_dirs(root_fd.get());
    REQUIRE(dirs);
    CHECK(dirs->size() == 3);  // no /usr/local/lib/verity.d
    auto store = load_trusted_certificates(*dirs);
    REQUIRE(store);
    REQUIRE(store->certificates.size() == 1);
    CHECK(store->certificates[0].source == "/etc/verity.d/vendor.crt");
    CHECK(store->certificates[0].fingerprint == f.fingerprint_a());
    CHECK(store->warnings.size() == 2);  // broken.crt, escape.crt
    auto r = verify_root_hash_signature(kHash, f.bytes("a.p7s"), *store);
    REQUIRE(r);
    CHECK(r->source == "/etc/verity.d/vendor.crt");
    CHECK_FALSE(verify_root_hash_signature(kHash, f.bytes("b.p7s"), *store));
}

// --- sidecars --------------------------------------------------------------

namespace {

struct ImageDir {
    TempDir dir;
    UniqueFd dir_fd;
    UniqueFd image_fd;
    ImageDir() {
        write_file(dir / "foo.raw", "not really a file system");
        dir_fd = UniqueFd(::open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        image_fd = UniqueFd(::open((dir / "foo.raw").c_str(), O_PATH | O_CLOEXEC));
    }
    Result<VeritySidecars> find() { return find_verity_sidecars(dir_fd.get(), "foo.raw", image_fd.get()); }
    bool set_xattr(const char* name, const std::string& v) {
        return ::setxattr((dir / "foo.raw").c_str(), name, v.data(), v.size(), 0) == 0;
    }
};

std::string error_of(const Result<VeritySidecars>& r) { return r ? std::string("(found)") : r.error().what(); }

}  // namespace

TEST_CASE("sidecars: none present") {
    ImageDir d;
    auto r = d.find();
    REQUIRE(r);
    CHECK(r->designator() == VerityDesignator::None);
    CHECK_FALSE(r->root_hash);
    CHECK_FALSE(r->usr_hash);
    CHECK_FALSE(r->root_hash_sig);
    CHECK_FALSE(r->hash_tree);
    CHECK(r->hash() == nullptr);
    CHECK(r->signature() == nullptr);
}

TEST_CASE("sidecars: files found and validated") {
    ImageDir d;
    write_file(d.dir / "foo.roothash", "  " + kHash + "\n");
    write_file(d.dir / "foo.roothash.p7s", "\x30\x82");
    write_file(d.dir / "foo.usrhash.p7s", "\x30\x83");
    write_file(d.dir / "foo.verity", std::string(8192, 'h'));
    write_file(d.dir / "foo.sysext.roothash", "not even hex");  // another stem: ignored
    auto r = d.find();
    REQUIRE_MESSAGE(r, error_of(r));
    REQUIRE(r->root_hash);
    CHECK(r->root_hash->hash.hex == kHash);
    CHECK(r->root_hash->source == "foo.roothash");
    CHECK(r->designator() == VerityDesignator::Root);
    REQUIRE(r->signature());
    CHECK(r->signature()->source == "foo.roothash.p7s");
    CHECK(r->usr_hash_sig);
    REQUIRE(r->hash_tree);
    CHECK(r->hash_tree->size == 8192);
    CHECK(r->hash_tree->fd.valid());
    CHECK(sidecar_stem("foo.sysext.raw") == "foo.sysext");
    CHECK(sidecar_stem("bar") == "bar");
}

TEST_CASE("sidecars: xattrs are read through an O_RDONLY image fd too") {
    ImageDir d;
    if (!test::can_run(d.set_xattr("user.verity.usrhash", kHash), "no user xattrs on " + d.dir.path())) return;
    d.image_fd = UniqueFd(::open((d.dir / "foo.raw").c_str(), O_RDONLY | O_CLOEXEC));
    auto r = d.find();
    REQUIRE(r);
    REQUIRE(r->usr_hash);
    CHECK(r->usr_hash->source == "xattr user.verity.usrhash");
}

TEST_CASE("sidecars: /usr hash is used only without a root hash") {
    ImageDir d;
    write_file(d.dir / "foo.usrhash", kOtherHash);
    write_file(d.dir / "foo.usrhash.p7s", "x");
    auto r = d.find();
    REQUIRE(r);
    CHECK(r->designator() == VerityDesignator::Usr);
    REQUIRE(r->hash());
    CHECK(r->hash()->hash.hex == kOtherHash);
    REQUIRE(r->signature());
    CHECK(r->signature()->source == "foo.usrhash.p7s");
}

TEST_CASE("sidecars: the xattr wins over the file as in systemd") {
    ImageDir d;
    if (!test::can_run(d.set_xattr("user.verity.roothash", kOtherHash), "no user xattrs on " + d.dir.path()))
        return;
    write_file(d.dir / "foo.roothash", kHash);
    auto r = d.find();
    REQUIRE(r);
    REQUIRE(r->root_hash);
    CHECK(r->root_hash->hash.hex == kOtherHash);
    CHECK(r->root_hash->source == "xattr user.verity.roothash");

    // An invalid xattr is an error, not a fall back to the file.
    REQUIRE(d.set_xattr("user.verity.roothash", "nope"));
    CHECK(error_of(d.find()).find("xattr user.verity.roothash") != std::string::npos);
    REQUIRE(d.set_xattr("user.verity.roothash", kHash));
    REQUIRE(d.set_xattr("user.verity.usrhash", kOtherHash));
    auto u = d.find();
    REQUIRE(u);
    CHECK(u->usr_hash->source == "xattr user.verity.usrhash");
    CHECK(u->designator() == VerityDesignator::Root);
}

TEST_CASE("sidecars: refusals name the file and the reason") {
    SUBCASE("invalid hex") {
        ImageDir d;
        write_file(d.dir / "foo.roothash", "xyz");
        std::string e = error_of(d.find());
        CHECK(e.find("foo.roothash") != std::string::npos);
        CHECK(e.find("hex") != std::string::npos);
    }
    SUBCASE("too short") {
        ImageDir d;
        write_file(d.dir / "foo.usrhash", kHash.substr(0, 32));
        CHECK(error_of(d.find()).find("foo.usrhash: root hash is 16 bytes") != std::string::npos);
    }
    SUBCASE("too large") {
        ImageDir d;
        write_file(d.dir / "foo.roothash", std::string(kRootHashFileMaxBytes + 1, 'a'));
        CHECK(error_of(d.find()).find("foo.roothash") != std::string::npos);
        ImageDir e;
        write_file(e.dir / "foo.roothash.p7s", std::string(kSignatureFileMaxBytes + 1, 'a'));
        CHECK(error_of(e.find()).find("foo.roothash.p7s") != std::string::npos);
    }
    SUBCASE("empty signature") {
        ImageDir d;
        write_file(d.dir / "foo.roothash.p7s", "");
        CHECK(error_of(d.find()).find("foo.roothash.p7s: empty") != std::string::npos);
    }
    SUBCASE("symlink to outside the directory") {
        ImageDir d;
        TempDir outside;
        write_file(outside / "hash", kHash);
        d.dir.symlink(outside / "hash", "foo.roothash");
        std::string e = error_of(d.find());
        CHECK(e.find("foo.roothash") != std::string::npos);
        CHECK(e.find("outside") != std::string::npos);
        ImageDir r;
        r.dir.symlink("../" + std::string(outside.path()).substr(5) + "/hash", "foo.verity");
        CHECK(error_of(r.find()).find("foo.verity") != std::string::npos);
    }
    SUBCASE("symlink inside the directory is fine") {
        ImageDir d;
        write_file(d.dir / "hash.txt", kHash);
        d.dir.symlink("hash.txt", "foo.roothash");
        auto r = d.find();
        REQUIRE(r);
        CHECK(r->root_hash->hash.hex == kHash);
    }
    SUBCASE("FIFO instead of a file (must not block)") {
        ImageDir d;
        REQUIRE(::mkfifo((d.dir / "foo.roothash.p7s").c_str(), 0644) == 0);
        std::string e = error_of(d.find());
        CHECK(e.find("foo.roothash.p7s") != std::string::npos);
        CHECK(e.find("not a regular file") != std::string::npos);
    }
    SUBCASE("directory instead of a hash tree") {
        ImageDir d;
        d.dir.mkdir("foo.verity");
        CHECK(error_of(d.find()).find("foo.verity: not a regular file") != std::string::npos);
    }
}
