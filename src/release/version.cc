#include "release/version.h"

#include <algorithm>

namespace rdext {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_version_char(char c) { return is_digit(c) || is_alpha(c) || c == '~' || c == '-' || c == '^' || c == '.'; }

int sign(long v) { return (v > 0) - (v < 0); }

// A read position in one version string; the end reads as '\0' like a C
// string, which is what the end-of-string rules below compare against.
struct Cursor {
    std::string_view s;
    size_t i = 0;

    char peek() const { return i < s.size() ? s[i] : '\0'; }
    void skip_separators() {
        while (i < s.size() && !is_version_char(s[i])) i++;
    }
    template <typename Pred>
    std::string_view take_while(Pred pred) {
        size_t start = i;
        while (i < s.size() && pred(s[i])) i++;
        return s.substr(start, i - start);
    }
};

// One prefix character ('~', '-', '^', '.'): if only one side has it, that
// side is older. Returns nonzero when that decides the comparison.
int compare_prefix(Cursor& a, Cursor& b, char prefix) {
    if (a.peek() != prefix && b.peek() != prefix) return 0;
    int r = sign(static_cast<int>(a.peek() != prefix) - static_cast<int>(b.peek() != prefix));
    if (r != 0) return r;
    a.i++;
    b.i++;
    return 0;
}

int compare_numeric(Cursor& a, Cursor& b) {
    std::string_view na = a.take_while(is_digit), nb = b.take_while(is_digit);
    // A number is newer than no number (i.e. than letters or the end).
    if (na.empty() != nb.empty()) return na.empty() ? -1 : 1;
    auto strip = [](std::string_view n) {
        size_t nz = n.find_first_not_of('0');
        return nz == std::string_view::npos ? std::string_view() : n.substr(nz);
    };
    na = strip(na);
    nb = strip(nb);
    // Compare by value without parsing, so any length works: longer is bigger.
    if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
    return sign(na.compare(nb));
}

int compare_alpha(Cursor& a, Cursor& b) {
    std::string_view wa = a.take_while(is_alpha), wb = b.take_while(is_alpha);
    size_t common = std::min(wa.size(), wb.size());
    if (int r = sign(wa.substr(0, common).compare(wb.substr(0, common))); r != 0) return r;
    // "abc" is older than "abcde".
    return sign(static_cast<long>(wa.size()) - static_cast<long>(wb.size()));
}

}  // namespace

int compare_versions(std::string_view a_text, std::string_view b_text) {
    Cursor a{a_text.substr(0, a_text.find('\0'))};
    Cursor b{b_text.substr(0, b_text.find('\0'))};
    for (;;) {
        a.skip_separators();
        b.skip_separators();
        // '~' goes first: a pre-release is older even than the end of string.
        if (int r = compare_prefix(a, b, '~'); r != 0) return r;
        // Otherwise the string with more segments is newer.
        if (a.peek() == '\0' || b.peek() == '\0')
            return sign(static_cast<unsigned char>(a.peek()) - static_cast<unsigned char>(b.peek()));
        for (char prefix : {'-', '^', '.'}) {
            if (int r = compare_prefix(a, b, prefix); r != 0) return r;
        }
        int r = is_digit(a.peek()) || is_digit(b.peek()) ? compare_numeric(a, b) : compare_alpha(a, b);
        if (r != 0) return r;
    }
}

bool version_less(std::string_view a, std::string_view b) {
    int r = compare_versions(a, b);
    return r != 0 ? r < 0 : a < b;
}

}  // namespace rdext
