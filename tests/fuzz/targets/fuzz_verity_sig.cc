// The verity-sig partition of a GPT image (parse_verity_sig): NUL-padded
// JSON from the image, read before anything is verified, so its bytes are
// the attacker's. A signature that parses must vouch for its own root hash
// and for the partition UUIDs derived from it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "verity/root_hash.h"
#include "verity/verity_sig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view raw(reinterpret_cast<const char*>(data), size);
    auto sig = rdext::parse_verity_sig(raw);
    if (!sig) return 0;
    FUZZ_CHECK(sig->root_hash.bytes.size() >= rdext::kRootHashMinBytes);
    FUZZ_CHECK(sig->root_hash.bytes.size() <= rdext::kRootHashMaxBytes);
    FUZZ_CHECK(sig->root_hash.hex == rdext::hex_encode(sig->root_hash.bytes));
    FUZZ_CHECK(rdext::check_verity_sig_root_hash(*sig, sig->root_hash).has_value());
    auto uuids = rdext::expected_partition_uuids_from_root_hash(sig->root_hash);
    FUZZ_CHECK(rdext::check_verity_sig_partition_uuids(*sig, uuids.verity, uuids.data).has_value());
    FUZZ_CHECK(rdext::check_verity_sig_partition_uuids(*sig, uuids.verity).has_value());
    return 0;
}
