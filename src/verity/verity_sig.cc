#include "verity/verity_sig.h"

#include <json-c/json.h>
#include <strings.h>

#include <algorithm>
#include <memory>

namespace rdext {
namespace {

struct TokenerFree {
    void operator()(json_tokener* t) const { json_tokener_free(t); }
};
struct JsonPut {
    void operator()(json_object* o) const { json_object_put(o); }
};

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// The string field `key` of `obj`: missing and non-string are both errors.
Result<std::string_view> string_field(json_object* obj, const char* key) {
    json_object* v = nullptr;
    if (!json_object_object_get_ex(obj, key, &v)) return Error(EBADMSG) << "no '" << key << "' field";
    if (!json_object_is_type(v, json_type_string))
        return Error(EBADMSG) << "'" << key << "' is not a string";
    return std::string_view(json_object_get_string(v), static_cast<size_t>(json_object_get_string_len(v)));
}

bool uuid_equal(const std::string& a, const std::string& b) {
    return a.size() == b.size() && strcasecmp(a.c_str(), b.c_str()) == 0;
}

}  // namespace

Result<std::vector<uint8_t>> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return Error(EBADMSG) << "base64 length is not a multiple of 4";
    std::vector<uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            if (c == '=' && last && k >= 2) {
                pad++;
                v[k] = 0;
                continue;
            }
            if (pad > 0) return Error(EBADMSG) << "base64 data after padding";
            v[k] = base64_value(c);
            if (v[k] < 0) return Error(EBADMSG) << "invalid base64 character at position " << i + k;
        }
        uint32_t n = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        out.push_back(static_cast<uint8_t>(n >> 16));
        if (pad < 2) out.push_back(static_cast<uint8_t>(n >> 8));
        if (pad < 1) out.push_back(static_cast<uint8_t>(n));
    }
    return out;
}

Result<VeritySig> parse_verity_sig(std::string_view raw) {
    if (raw.size() > kVeritySigMaxBytes)
        return Error(EFBIG) << "signature partition is " << raw.size() << " bytes, limit is "
                            << kVeritySigMaxBytes;
    std::string_view text = raw;
    if (size_t nul = raw.find('\0'); nul != std::string_view::npos) {
        text = raw.substr(0, nul);
        if (!std::all_of(raw.begin() + nul, raw.end(), [](char c) { return c == '\0'; }))
            return Error(EBADMSG) << "data after the NUL padding";
    }
    if (text.empty()) return Error(EBADMSG) << "signature partition is empty";

    std::unique_ptr<json_tokener, TokenerFree> tok(json_tokener_new_ex(16));
    if (!tok) return Error(ENOMEM) << "json_tokener_new_ex";
    json_tokener_set_flags(tok.get(), JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    std::unique_ptr<json_object, JsonPut> root(
        json_tokener_parse_ex(tok.get(), text.data(), static_cast<int>(text.size())));
    json_tokener_error jerr = json_tokener_get_error(tok.get());
    if (jerr == json_tokener_continue) return Error(EBADMSG) << "truncated JSON";
    if (!root || jerr != json_tokener_success)
        return Error(EBADMSG) << "not JSON: " << json_tokener_error_desc(jerr);
    std::string_view rest = text.substr(json_tokener_get_parse_end(tok.get()));
    if (rest.find_first_not_of(" \t\r\n") != std::string_view::npos)
        return Error(EBADMSG) << "trailing data after the JSON object";
    if (!json_object_is_type(root.get(), json_type_object)) return Error(EBADMSG) << "JSON is not an object";

    VeritySig sig;
    auto rh = string_field(root.get(), "rootHash");
    if (!rh) return rh.error();
    // Whitespace inside a JSON string is not a root hash, so no trimming here.
    if (rh->find_first_of(" \t\r\n") != std::string_view::npos)
        return Error(EBADMSG) << "'rootHash' contains whitespace";
    auto hash = parse_root_hash(*rh);
    if (!hash) return Error(EBADMSG) << "'rootHash': " << hash.error().message();
    sig.root_hash = std::move(*hash);

    auto s = string_field(root.get(), "signature");
    if (!s) return s.error();
    auto der = base64_decode(*s);
    if (!der) return Error(EBADMSG) << "'signature': " << der.error().message();
    if (der->empty()) return Error(EBADMSG) << "'signature' is empty";
    sig.signature = std::move(*der);

    if (json_object_object_get_ex(root.get(), "certificateFingerprint", nullptr)) {
        auto fp = string_field(root.get(), "certificateFingerprint");
        if (!fp) return fp.error();
        auto bytes = hex_decode(*fp);
        if (!bytes || bytes->size() != 32)
            return Error(EBADMSG) << "'certificateFingerprint' is not a hex SHA-256 digest";
        sig.certificate_fingerprint = std::move(*bytes);
    }
    return sig;
}

Result<void> check_verity_sig_root_hash(const VeritySig& sig, const RootHash& expected) {
    if (sig.root_hash == expected) return {};
    return Error(EBADMSG) << "signature partition names root hash " << sig.root_hash.hex
                          << ", expected " << expected.hex;
}

Result<void> check_verity_sig_partition_uuids(const VeritySig& sig, const std::string& verity_uuid,
                                              const std::string& data_uuid) {
    PartitionUuids want = expected_partition_uuids_from_root_hash(sig.root_hash);
    if (!uuid_equal(want.verity, verity_uuid))
        return Error(EBADMSG) << "signature partition names root hash " << sig.root_hash.hex
                              << ", which belongs to verity partition " << want.verity
                              << ", not " << verity_uuid;
    if (!data_uuid.empty() && !uuid_equal(want.data, data_uuid))
        return Error(EBADMSG) << "signature partition names root hash " << sig.root_hash.hex
                              << ", which belongs to data partition " << want.data << ", not "
                              << data_uuid;
    return {};
}

}  // namespace rdext
