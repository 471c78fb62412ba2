#include "fetch/pattern.h"

#include <cctype>
#include <cstdlib>

#include "vpick/vpick.h"

namespace rdext {
namespace {

constexpr std::string_view kFields = "vuftmsdlargh";

// sysupdate reserves these for a pattern language of its own later.
bool valid_char(char c) {
    if (static_cast<unsigned char>(c) < ' ' || static_cast<unsigned char>(c) >= 127) return false;
    return std::string_view("$*?[]!\\|").find(c) == std::string_view::npos;
}

std::optional<uint64_t> parse_number(const std::string& s, int base) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    for (char c : s)
        if (!(base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c))))
            return std::nullopt;
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, base);
    if (errno || *end || v == UINT64_MAX) return std::nullopt;
    return v;
}


bool is_uuid(std::string& s) {
    std::string hex;
    for (char c : s)
        if (c != '-') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (hex.size() != 32) return false;
    for (char c : hex)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    if (s.size() != 32 && !(s.size() == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-'))
        return false;
    s = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
        hex.substr(20);
    return true;
}

// Takes one field's text into `f`; false when it is not a valid value.
bool take_field(char field, std::string t, PatternFields& f) {
    switch (field) {
        case 'v':
            if (!version_is_valid(t)) return false;
            f.version = t;
            return true;
        case 'u':
            if (!is_uuid(t)) return false;
            f.uuid = t;
            return true;
        case 'f': return (f.flags = parse_number(t, 16)).has_value();
        case 't': return (f.mtime = parse_number(t, 10)).has_value();
        case 's': return (f.size = parse_number(t, 10)).has_value();
        case 'd': return (f.tries_done = parse_number(t, 10)).has_value();
        case 'l': return (f.tries_left = parse_number(t, 10)).has_value();
        case 'm': {
            if (t.empty() || t.size() > 4 || t.find_first_not_of("01234567") != std::string::npos) return false;
            mode_t m = static_cast<mode_t>(std::strtoul(t.c_str(), nullptr, 8));
            if (m & ~0775) return false;  // never world-writable or setuid, as sysupdate
            f.mode = m;
            return true;
        }
        case 'a': return (f.no_auto = parse_boolean(t)).has_value();
        case 'r': return (f.read_only = parse_boolean(t)).has_value();
        case 'g': return (f.growfs = parse_boolean(t)).has_value();
        case 'h':
            if (t.size() != 64 || t.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return false;
            for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            f.sha256 = t;
            return true;
    }
    return false;
}

template <typename T>
Result<void> put(std::string& out, const std::optional<T>& v, char field) {
    if (!v) return Error(ENXIO) << "no value for @" << field;
    out += std::to_string(*v);
    return {};
}

}  // namespace

std::optional<bool> parse_boolean(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "1" || s == "yes" || s == "y" || s == "true" || s == "t" || s == "on") return true;
    if (s == "0" || s == "no" || s == "n" || s == "false" || s == "f" || s == "off") return false;
    return std::nullopt;
}

Result<Pattern> Pattern::parse(const std::string& text) {
    Pattern p;
    p.text_ = text;
    std::string seen;
    bool last_literal = true;
    for (size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if (c == '@' && i + 1 < text.size() && text[i + 1] == '@') {
            i++;
        } else if (c == '@') {
            if (i + 1 == text.size()) return Error(EINVAL) << "MatchPattern= ends in '@': " << text;
            char f = text[++i];
            if (kFields.find(f) == std::string_view::npos)
                return Error(EINVAL) << "MatchPattern= has an unknown field '@" << f << "': " << text;
            if (seen.find(f) != std::string::npos)
                return Error(EINVAL) << "MatchPattern= has '@" << f << "' twice: " << text;
            if (!last_literal)
                return Error(EINVAL) << "MatchPattern= has two fields without text between them: " << text;
            seen += f;
            p.elements_.push_back({f, ""});
            last_literal = false;
            continue;
        } else if (c == '/') {
            return Error(EINVAL) << "MatchPattern= with a '/' (files in subdirectories) is not supported: " << text;
        } else if (!valid_char(c)) {
            return Error(EINVAL) << "MatchPattern= has a character sysupdate refuses: " << text;
        }
        if (p.elements_.empty() || p.elements_.back().field) p.elements_.push_back({0, ""});
        p.elements_.back().literal += c;
        last_literal = true;
    }
    if (seen.find('v') == std::string::npos) return Error(EINVAL) << "MatchPattern= has no '@v': " << text;
    return p;
}

bool Pattern::match(const std::string& name, PatternFields* out) const {
    PatternFields f;
    size_t pos = 0;
    for (size_t i = 0; i < elements_.size(); i++) {
        const Element& e = elements_[i];
        if (!e.field) {
            if (name.compare(pos, e.literal.size(), e.literal) != 0) return false;
            pos += e.literal.size();
            continue;
        }
        // A field runs to the next literal's first occurrence, as in sysupdate.
        size_t end = i + 1 < elements_.size() ? name.find(elements_[i + 1].literal, pos) : name.size();
        if (end == std::string::npos) return false;
        if (!take_field(e.field, name.substr(pos, end - pos), f)) return false;
        pos = end;
    }
    if (pos != name.size()) return false;
    if (out) *out = std::move(f);
    return true;
}

Result<std::string> Pattern::format(const PatternFields& f) const {
    std::string out;
    auto flag = [&](const std::optional<bool>& b, char field) -> Result<void> {
        if (!b) return Error(ENXIO) << "no value for @" << field;
        out += *b ? "1" : "0";
        return {};
    };
    for (const Element& e : elements_) {
        switch (e.field) {
            case 0: out += e.literal; break;
            case 'v':
                if (f.version.empty()) return Error(ENXIO) << "no version";
                out += f.version;
                break;
            case 'u':
                if (!f.uuid) return Error(ENXIO) << "no value for @u";
                out += *f.uuid;
                break;
            case 'f': {
                if (!f.flags) return Error(ENXIO) << "no value for @f";
                char buf[32];
                std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(*f.flags));
                out += buf;
                break;
            }
            case 'm': {
                if (!f.mode) return Error(ENXIO) << "no value for @m";
                char buf[16];
                std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(*f.mode));
                out += buf;
                break;
            }
            case 't': RDEXT_TRY(put(out, f.mtime, 't')); break;
            case 's': RDEXT_TRY(put(out, f.size, 's')); break;
            case 'd': RDEXT_TRY(put(out, f.tries_done, 'd')); break;
            case 'l': RDEXT_TRY(put(out, f.tries_left, 'l')); break;
            case 'a': RDEXT_TRY(flag(f.no_auto, 'a')); break;
            case 'r': RDEXT_TRY(flag(f.read_only, 'r')); break;
            case 'g': RDEXT_TRY(flag(f.growfs, 'g')); break;
            case 'h':
                if (!f.sha256) return Error(ENXIO) << "no value for @h";
                out += *f.sha256;
                break;
        }
    }
    return out;
}

}  // namespace rdext
