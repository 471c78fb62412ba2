#include "release/release_utf8.h"

#include <cstdint>

namespace rdext {
namespace {

size_t expected_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 0;  // continuation byte, or a 5/6-byte form that can only be invalid
}

bool code_point_is_valid(uint32_t cp, size_t len) {
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp >= 0x110000) return false;  // overlong / beyond Unicode
    if ((cp & 0xFFFFF800) == 0xD800) return false;                // UTF-16 surrogates
    return !(cp >= 0xFDD0 && cp <= 0xFDEF) && (cp & 0xFFFE) != 0xFFFE;
}

// Length of the valid sequence starting at s[i], 0 when invalid.
size_t sequence_length(std::string_view s, size_t i) {
    auto lead = static_cast<unsigned char>(s[i]);
    size_t len = expected_length(lead);
    if (len == 0 || i + len > s.size()) return 0;
    if (len == 1) return 1;
    uint32_t cp = lead & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        auto cont = static_cast<unsigned char>(s[i + k]);
        if ((cont & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cont & 0x3F);
    }
    return code_point_is_valid(cp, len) ? len : 0;
}

const char* named_escape(unsigned char c) {
    switch (c) {
        case '\a': return "\\a";
        case '\b': return "\\b";
        case '\f': return "\\f";
        case '\n': return "\\n";
        case '\r': return "\\r";
        case '\t': return "\\t";
        case '\v': return "\\v";
        case '\\': return "\\\\";
        default: return nullptr;
    }
}

void append_hex(std::string& out, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
}

}  // namespace

bool utf8_is_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string cescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n = sequence_length(s, i);
        if (const char* named = named_escape(c)) {
            out += named;
        } else if (n == 0 || c < 0x20 || c == 0x7f) {
            append_hex(out, c);
        } else if (c == 0xC2 && n == 2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {
            append_hex(out, c);  // U+0080..U+009F: C1 controls (0x9B starts an escape sequence)
            append_hex(out, static_cast<unsigned char>(s[i + 1]));
        } else {
            out.append(s.substr(i, n));
        }
        i += n == 0 ? 1 : n;
    }
    return out;
}

std::string json_text(std::string_view s) { return utf8_is_valid(s) ? std::string(s) : cescape(s); }

}  // namespace rdext
