// systemd's boolean spellings, shared by the kernel command line and the
// release files' keys.
#pragma once

#include <optional>
#include <string_view>

namespace rdext {

// 1/yes/y/true/t/on and 0/no/n/false/f/off, case-insensitive; anything
// else is no boolean.
std::optional<bool> parse_boolean(std::string_view s);

}  // namespace rdext
