// Version comparison of the UAPI Version Format Specification, exactly as
// systemd's strverscmp_improved() (`systemd-analyze compare-versions`), so
// rdext stacks extensions and picks versions in the same order systemd does.
#pragma once

#include <string_view>

namespace rdext {

// <0 when a is older than b, 0 when equivalent, >0 when a is newer.
// Characters outside [A-Za-z0-9~^.-] only separate segments; '~' sorts
// before everything (pre-releases), then the end of the string, then '-',
// then '^', then '.', then a segment without a prefix. Numbers compare by
// value ("007" == "7") and are newer than letters. Like the C original, the
// text ends at a NUL byte.
int compare_versions(std::string_view a, std::string_view b);

// A strict weak ordering for sorting: by compare_versions(), and bytewise
// when two strings are equivalent ("1.07" vs "1.7"), so the order never
// depends on the input order.
bool version_less(std::string_view a, std::string_view b);

}  // namespace rdext
