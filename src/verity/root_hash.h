// dm-verity root hashes as rdext receives them: hex text from a sidecar, an
// xattr or a verity-sig partition. One parser for all of them, so every
// source is held to the same rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace rdext {

struct RootHash {
    std::vector<uint8_t> bytes;
    std::string hex;  // lower case, what the kernel and the signature see

    bool operator==(const RootHash& o) const { return bytes == o.bytes; }
};

// Shortest and longest root hash accepted: sha256 .. sha512 digests.
// (systemd only insists on 16 bytes; shorter digests than sha256 are not
// worth trusting with an early-boot mount.)
inline constexpr size_t kRootHashMinBytes = 32;
inline constexpr size_t kRootHashMaxBytes = 64;

// Hex text (either case) with surrounding whitespace trimmed; refuses
// non-hex characters, odd length and sizes outside the limits above.
Result<RootHash> parse_root_hash(std::string_view text);

// Lower case hex of arbitrary bytes.
std::string hex_encode(const uint8_t* data, size_t size);
inline std::string hex_encode(const std::vector<uint8_t>& v) { return hex_encode(v.data(), v.size()); }

// Strict hex decoding (either case, no whitespace, even length).
Result<std::vector<uint8_t>> hex_decode(std::string_view text);

// The GPT partition UUIDs the Discoverable Partitions Specification derives
// from a root hash (systemd-repart writes them unless told otherwise): the
// data partition's is the first 128 bits, the verity partition's the last
// 128 bits, taken as raw bytes in UUID text order (no version bits set).
struct PartitionUuids {
    std::string data;    // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case
    std::string verity;
};
PartitionUuids expected_partition_uuids_from_root_hash(const RootHash& hash);

}  // namespace rdext
