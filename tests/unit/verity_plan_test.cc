// verity/plan.h: one image's plan, the one merge stages by and inspect
// verifies: which file systems are mounted how, which verity plan protects
// each (and where its parts come from), and what the policy is offered.
// Layouts are built by hand; no image is read except a verity-sig partition.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include "base/fd.h"
#include "verity/plan.h"

using namespace rdext;

namespace {

ImagePartition partition(PartitionRole role, const char* fstype, uint64_t offset, uint64_t size) {
    ImagePartition p;
    p.role = role;
    p.fstype = fstype;
    p.offset = offset;
    p.size = size;
    return p;
}

ImageLayout bare(const char* fstype) {
    ImageLayout l;
    l.root = partition(PartitionRole::Root, fstype, 0, 1 << 20);
    return l;
}

ImageLayout gpt_usr_with_verity() {
    ImageLayout l;
    l.kind = ImageLayoutKind::Gpt;
    l.usr = partition(PartitionRole::Usr, "erofs", 1 << 20, 1 << 20);
    l.usr_verity = partition(PartitionRole::UsrVerity, "", 2 << 20, 1 << 16);
    return l;
}

SidecarHash hash_of(const char* source) {
    auto h = parse_root_hash(std::string(64, 'a'));
    REQUIRE(h);
    return {*h, source};
}

std::string why_not(const Result<ImagePlan>& r) { return r ? std::string() : r.error().what(); }

}  // namespace

TEST_CASE("plan: a bare erofs file without sidecars is mounted from the file, unprotected") {
    auto plan = plan_image(7, true, bare("erofs"), {});
    REQUIRE_MESSAGE(plan, why_not(plan));
    REQUIRE(plan->partitions.size() == 1);
    const PartitionPlan& root = plan->partitions.front();
    CHECK(root.designator == Designator::Root);
    CHECK(root.data.fd == 7);
    CHECK(root.data.size == 0);  // the whole file
    CHECK_FALSE(root.verity);
    CHECK(root.from_file);
    auto offer = plan->best_case_offer();
    REQUIRE(offer.size() == 1);
    CHECK(offer[0].state == ImageState::Unprotected);
    CHECK(offer[0].fstype == "erofs");

    // Only a regular file can be given to erofs; other file systems always
    // take a loop device.
    CHECK_FALSE(plan_image(7, false, bare("erofs"), {})->partitions.front().from_file);
    CHECK_FALSE(plan_image(7, true, bare("squashfs"), {})->partitions.front().from_file);
}

TEST_CASE("plan: a .verity sidecar protects a bare file system, and is offered as root-verity") {
    UniqueFd tree(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(tree);
    int tree_fd = tree.get();
    VeritySidecars sc;
    sc.hash_tree = SidecarHashTree{std::move(tree), "img.verity", 0};
    sc.root_hash = hash_of("img.roothash");
    sc.root_hash_sig = SidecarSignature{{1, 2, 3}, "img.roothash.p7s"};
    auto plan = plan_image(7, true, bare("erofs"), std::move(sc));
    REQUIRE_MESSAGE(plan, why_not(plan));
    const PartitionPlan& root = plan->partitions.front();
    REQUIRE(root.verity);
    CHECK_FALSE(root.from_file);  // it would bypass dm-verity
    CHECK(root.hash_tree_source == "img.verity");
    CHECK(root.verity->hash.fd == tree_fd);
    CHECK(root.verity->root_hash_source == "img.roothash");
    CHECK(root.verity->signature_source == "img.roothash.p7s");
    auto offer = plan->best_case_offer();
    REQUIRE(offer.size() == 2);
    CHECK(offer[0].state == ImageState::Signed);
    CHECK(offer[1].designator == Designator::RootVerity);
    auto verity_only = plan->offer({ImageState::Verity});
    CHECK(verity_only[0].state == ImageState::Verity);
}

TEST_CASE("plan: sidecars that cannot be used the way systemd would are an error") {
    VeritySidecars hash_only;
    hash_only.root_hash = hash_of("img.roothash");
    auto r = plan_image(7, true, bare("erofs"), std::move(hash_only));
    REQUIRE_FALSE(r);
    CHECK(r.error().what() == "img.roothash without a .verity hash tree");

    VeritySidecars tree_only;
    tree_only.hash_tree = SidecarHashTree{UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), "img.verity", 0};
    r = plan_image(7, true, bare("erofs"), std::move(tree_only));
    REQUIRE_FALSE(r);
    CHECK(r.error().what().find("img.verity without a root hash") == 0);

    VeritySidecars beside_gpt;
    beside_gpt.hash_tree = SidecarHashTree{UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), "img.verity", 0};
    r = plan_image(7, true, gpt_usr_with_verity(), std::move(beside_gpt));
    REQUIRE_FALSE(r);
    CHECK(r.error().what() == "img.verity next to a GPT disk image");
}

TEST_CASE("plan: a GPT verity partition protects its data partition only with a root hash") {
    SUBCASE("no verity-sig partition, no sidecar: unprotected, the hash tree named") {
        auto plan = plan_image(7, true, gpt_usr_with_verity(), {});
        REQUIRE_MESSAGE(plan, why_not(plan));
        REQUIRE(plan->partitions.size() == 1);
        const PartitionPlan& usr = plan->partitions.front();
        CHECK(usr.designator == Designator::Usr);
        CHECK(usr.data.offset == (1 << 20));
        CHECK(usr.data.size == (1 << 20));
        CHECK_FALSE(usr.from_file);
        CHECK_FALSE(usr.verity);
        CHECK(usr.hash_tree_source == "usr-verity partition");
        auto offer = plan->best_case_offer();
        REQUIRE(offer.size() == 2);
        CHECK(offer[0].state == ImageState::Unprotected);
        CHECK(offer[1].designator == Designator::UsrVerity);
    }
    SUBCASE("a .usrhash sidecar: verity over the partition, its hash region") {
        VeritySidecars sc;
        sc.usr_hash = hash_of("img.usrhash");
        auto plan = plan_image(7, true, gpt_usr_with_verity(), std::move(sc));
        REQUIRE_MESSAGE(plan, why_not(plan));
        const PartitionPlan& usr = plan->partitions.front();
        REQUIRE(usr.verity);
        CHECK(usr.verity->hash.fd == 7);
        CHECK(usr.verity->hash.offset == (2 << 20));
        CHECK(usr.verity->hash.size == (1 << 16));
        CHECK(usr.verity->root_hash_source == "img.usrhash");
        CHECK_FALSE(usr.verity->signature);
    }
    SUBCASE("a verity-sig partition past the end of the file is truncated") {
        ImageLayout l = gpt_usr_with_verity();
        l.usr_verity_sig = partition(PartitionRole::UsrVeritySig, "", 0, 4096);
        UniqueFd empty(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        auto r = plan_image(empty.get(), true, l, {});
        REQUIRE_FALSE(r);
        CHECK(r.error().what() == "usr-verity-sig partition is truncated");
    }
}
