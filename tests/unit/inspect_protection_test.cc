// rdext inspect's protection check without device-mapper: the whole hash
// tree is verified in user space, signatures against the given anchors,
// and the state the image policy sees follows from both. Data, hash trees
// and signatures are made at test time with veritysetup and openssl.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "base/fd.h"
#include "inspect/protection.h"
#include "prerequisite.h"
#include "test_util.h"
#include "verity/sidecar.h"

using namespace rdext;
using rdext::test::TempDir;

namespace {

template <typename T>
std::string why_not(const Result<T>& r) {
    return r ? std::string() : r.error().what();
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// img.raw (256 KiB of random data) with img.verity and img.roothash, a
// trusted key "a" signing it (img.roothash.p7s) and an untrusted key "b".
struct VerityFixture {
    TempDir dir;
    bool ok = false;
    std::string root_hash;

    VerityFixture() {
        std::string cmd = "cd " + dir.path() + " && (head -c 262144 /dev/urandom > img.raw && " +
                          "veritysetup format img.raw img.verity | awk '/^Root hash:/ { print $3 }' > img.roothash";
        for (const char* n : {"a", "b"})
            cmd += std::string(" && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=rdext inspect ") +
                   n + "' -keyout " + n + ".key -out " + n + ".crt";
        cmd += " && openssl x509 -in a.crt -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f > a.fp";
        cmd += ") >/dev/null 2>&1";
        ok = std::system(cmd.c_str()) == 0;
        root_hash = trimmed(read_file(dir / "img.roothash"));
    }
    void sign(const char* who) const {
        std::string cmd = "cd " + dir.path() + " && printf '%s' " + root_hash +
                          " | openssl smime -sign -binary -noattr -nocerts -outform DER -inkey " + who +
                          ".key -signer " + who + ".crt -out img.roothash.p7s 2>/dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
    }
    TrustStore trust() const {
        TrustStore t;
        auto c = parse_pem_certificate(read_file(dir / "a.crt"), "a.crt");
        REQUIRE(c);
        t.certificates.push_back(std::move(*c));
        return t;
    }
    UniqueFd open(const std::string& name, int flags = O_RDONLY) const {
        return UniqueFd(::open((dir / name).c_str(), flags | O_CLOEXEC));
    }
    // The image as probe_image() reports a bare file system.
    ImageLayout layout() const {
        ImageLayout l;
        l.root = ImagePartition{};
        l.root->fstype = "erofs";
        l.root->size = 262144;
        return l;
    }
    Result<std::vector<Protection>> assess() const {
        auto img = open("img.raw");
        auto dir_fd = dir.open_root();
        auto sc = find_verity_sidecars(dir_fd.get(), "img.raw", img.get());
        REQUIRE_MESSAGE(sc, why_not(sc));
        auto plan = plan_image(img.get(), true, layout(), std::move(*sc));
        if (!plan) return plan.error();
        return assess_protection(*plan, trust());
    }
    void flip_data_byte(off_t at) const {
        auto fd = open("img.raw", O_RDWR);
        unsigned char c;
        REQUIRE(::pread(fd.get(), &c, 1, at) == 1);
        c ^= 0xff;
        REQUIRE(::pwrite(fd.get(), &c, 1, at) == 1);
    }
};

bool have_veritysetup() { return std::system("command -v veritysetup >/dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("inspect: the policy sees signed, verity, signature-failed or unprotected") {
    Protection p;
    CHECK(p.state() == ImageState::Unprotected);
    p.root_hash = RootHash{};
    CHECK(p.state() == ImageState::Unprotected);  // not checked: nothing established
    p.hash_tree = HashTreeCheck::Verified;
    CHECK(p.state() == ImageState::Verity);
    p.signature = SignatureCheck::Valid;
    CHECK(p.state() == ImageState::Signed);
    p.hash_tree = HashTreeCheck::Failed;
    CHECK(p.state() == ImageState::Unprotected);
    p.signature = SignatureCheck::Invalid;
    CHECK(p.state() == ImageState::SignatureFailed);  // never a downgrade
    p.hash_tree = HashTreeCheck::Verified;
    CHECK(p.state() == ImageState::SignatureFailed);
}

TEST_CASE("inspect: the hash tree is verified in user space, signature and signer reported") {
    if (!rdext::test::can_run(have_veritysetup(), "veritysetup missing")) return;
    VerityFixture f;
    REQUIRE_MESSAGE(f.ok, "veritysetup/openssl could not make the fixtures");
    REQUIRE(f.root_hash.size() == 64);

    SUBCASE("verity, no signature") {
        auto r = f.assess();
        REQUIRE_MESSAGE(r, why_not(r));
        REQUIRE(r->size() == 1);
        const Protection& p = r->front();
        CHECK(p.hash_tree_source == "img.verity");
        CHECK(p.root_hash_source == "img.roothash");
        CHECK(p.root_hash->hex == f.root_hash);
        CHECK(p.hash_tree == HashTreeCheck::Verified);
        CHECK(p.signature == SignatureCheck::None);
        CHECK(p.state() == ImageState::Verity);
    }
    SUBCASE("signed by the trusted key") {
        f.sign("a");
        auto r = f.assess();
        REQUIRE_MESSAGE(r, why_not(r));
        const Protection& p = r->front();
        CHECK(p.signature == SignatureCheck::Valid);
        REQUIRE(p.signer);
        CHECK(p.signer->subject == "CN=rdext inspect a");
        CHECK(p.signer->fingerprint == trimmed(read_file(f.dir / "a.fp")));
        CHECK(p.signature_source == "img.roothash.p7s");
        CHECK(p.state() == ImageState::Signed);
    }
    SUBCASE("signed by an untrusted key") {
        f.sign("b");
        auto r = f.assess();
        REQUIRE_MESSAGE(r, why_not(r));
        const Protection& p = r->front();
        CHECK(p.signature == SignatureCheck::Invalid);
        CHECK_FALSE(p.signature_error.empty());
        CHECK(p.state() == ImageState::SignatureFailed);
    }
    SUBCASE("a data byte changed after the hash tree was made") {
        f.sign("a");
        f.flip_data_byte(200000);
        auto r = f.assess();
        REQUIRE_MESSAGE(r, why_not(r));
        const Protection& p = r->front();
        CHECK(p.hash_tree == HashTreeCheck::Failed);
        CHECK(p.hash_tree_detail.find("does not match") != std::string::npos);
        CHECK(p.state() == ImageState::Unprotected);
    }
    SUBCASE("another root hash") {
        auto img = f.open("img.raw");
        auto tree = f.open("img.verity");
        auto other = parse_root_hash(std::string(64, '7'));
        REQUIRE(other);
        auto r = verify_hash_tree({img.get(), 0, 0}, {tree.get(), 0, 0}, *other);
        CHECK_FALSE(r);
        auto good = parse_root_hash(f.root_hash);
        REQUIRE(good);
        auto ok = verify_hash_tree({img.get(), 0, 0}, {tree.get(), 0, 0}, *good);
        CHECK_MESSAGE(ok, why_not(ok));
    }
    SUBCASE("a root hash sidecar without a hash tree is an error, as for merge") {
        REQUIRE(::unlink((f.dir / "img.verity").c_str()) == 0);
        auto r = f.assess();
        REQUIRE_FALSE(r);
        CHECK(r.error().what().find("without a .verity hash tree") != std::string::npos);
    }
}
