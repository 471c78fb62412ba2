#include "base/boolean.h"

#include <algorithm>
#include <iterator>

namespace rdext {

std::optional<bool> parse_boolean(std::string_view s) {
    static const char* const yes[] = {"1", "yes", "y", "true", "t", "on"};
    static const char* const no[] = {"0", "no", "n", "false", "f", "off"};
    auto is = [&](const char* word) {
        std::string_view w(word);
        return s.size() == w.size() &&
               std::equal(s.begin(), s.end(), w.begin(), [](char a, char b) {
                   return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
               });
    };
    if (std::any_of(std::begin(yes), std::end(yes), is)) return true;
    if (std::any_of(std::begin(no), std::end(no), is)) return false;
    return std::nullopt;
}

}  // namespace rdext
