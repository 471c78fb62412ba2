// Root hashes as text (parse_root_hash: .roothash/.usrhash sidecars,
// user.verity.roothash xattrs, the rootHash of a verity-sig partition) and
// the strict hex and base64 decoders they and the signatures go through.
// Whatever parses must encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "verity/root_hash.h"
#include "verity/verity_sig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 64 * 1024) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto h = rdext::parse_root_hash(text)) {
        FUZZ_CHECK(h->bytes.size() >= rdext::kRootHashMinBytes && h->bytes.size() <= rdext::kRootHashMaxBytes);
        FUZZ_CHECK(h->hex == rdext::hex_encode(h->bytes));
        auto again = rdext::parse_root_hash(h->hex);
        FUZZ_CHECK(again.has_value() && *again == *h);
        auto uuids = rdext::expected_partition_uuids_from_root_hash(*h);
        FUZZ_CHECK(uuids.data.size() == 36 && uuids.verity.size() == 36);
    }
    if (auto bytes = rdext::hex_decode(text)) {
        FUZZ_CHECK(bytes->size() * 2 == text.size());
        auto hex = rdext::hex_encode(*bytes);
        auto again = rdext::hex_decode(hex);
        FUZZ_CHECK(again.has_value() && *again == *bytes);
    }
    if (auto bytes = rdext::base64_decode(text)) FUZZ_CHECK(bytes->size() <= text.size() * 3 / 4);
    return 0;
}
