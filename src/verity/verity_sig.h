// The verity-sig partition of a GPT image (Discoverable Partitions
// Specification): NUL-padded JSON
//   {"rootHash": "<hex>", "signature": "<base64 PKCS#7 DER>",
//    "certificateFingerprint": "<hex sha256>"}
// systemd-repart writes all three fields; systemd reads rootHash and
// signature only, so certificateFingerprint is optional here too (but
// checked when present). Unknown fields are ignored, as systemd does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "verity/root_hash.h"

namespace rdext {

// Anything larger than this cannot be a signature partition (systemd's limit).
inline constexpr size_t kVeritySigMaxBytes = 4 * 1024 * 1024;

struct VeritySig {
    RootHash root_hash;
    std::vector<uint8_t> signature;  // DER PKCS#7, detached, over root_hash.hex
    // SHA-256 of the signing certificate's DER as the image claims it; a
    // hint only: trust comes from verifying `signature`.
    std::optional<std::vector<uint8_t>> certificate_fingerprint;
};

// Parses the partition's raw bytes. Refuses more than 4 MiB, bytes other
// than NUL after the first NUL, text that is not exactly one JSON object
// (trailing whitespace aside), and missing or ill-typed fields.
Result<VeritySig> parse_verity_sig(std::string_view raw);

// The root hash the signature partition vouches for must be the one the
// image is being activated with (from the caller's sidecar, command line or
// partition UUIDs).
Result<void> check_verity_sig_root_hash(const VeritySig& sig, const RootHash& expected);

// The verity-sig must name the verity partition it sits beside: by the
// Discoverable Partitions Specification the verity partition's UUID is the
// last 128 bits of the root hash (and the data partition's the first 128
// bits). Pass an empty data_uuid to check the verity partition only.
Result<void> check_verity_sig_partition_uuids(const VeritySig& sig, const std::string& verity_uuid,
                                              const std::string& data_uuid = {});

// Strict base64 (RFC 4648 alphabet, '=' padding required for partial
// groups, no whitespace). Exposed for tests.
Result<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace rdext
