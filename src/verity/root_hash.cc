#include "verity/root_hash.h"

#include <cctype>

namespace rdext {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string_view trim(std::string_view s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

std::string uuid_text(const uint8_t* b) {
    std::string hex = hex_encode(b, 16);
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
           hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

}  // namespace

std::string hex_encode(const uint8_t* data, size_t size) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (size_t i = 0; i < size; i++) {
        out += digits[data[i] >> 4];
        out += digits[data[i] & 0xf];
    }
    return out;
}

Result<std::vector<uint8_t>> hex_decode(std::string_view text) {
    if (text.size() % 2 != 0) return Error(EBADMSG) << "odd number of hex digits";
    std::vector<uint8_t> out;
    out.reserve(text.size() / 2);
    for (size_t i = 0; i < text.size(); i += 2) {
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) return Error(EBADMSG) << "not a hex digit at position " << (hi < 0 ? i : i + 1);
        out.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
    return out;
}

Result<RootHash> parse_root_hash(std::string_view text) {
    std::string_view t = trim(text);
    if (t.empty()) return Error(EBADMSG) << "empty root hash";
    auto bytes = hex_decode(t);
    if (!bytes) return Error(EBADMSG) << "invalid root hash: " << bytes.error().message();
    if (bytes->size() < kRootHashMinBytes || bytes->size() > kRootHashMaxBytes)
        return Error(EBADMSG) << "root hash is " << bytes->size() << " bytes, expected "
                              << kRootHashMinBytes << " to " << kRootHashMaxBytes;
    RootHash h;
    h.hex = hex_encode(*bytes);
    h.bytes = std::move(*bytes);
    return h;
}

PartitionUuids expected_partition_uuids_from_root_hash(const RootHash& hash) {
    // parse_root_hash guarantees at least 32 bytes, so the halves never overlap.
    PartitionUuids u;
    if (hash.bytes.size() < 16) return u;
    u.data = uuid_text(hash.bytes.data());
    u.verity = uuid_text(hash.bytes.data() + hash.bytes.size() - 16);
    return u;
}

}  // namespace rdext
