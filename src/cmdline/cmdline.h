// Settings from the kernel command line.
//
// Words are split the way systemd's proc_cmdline does (whitespace separates,
// '...' and "..." group and are removed anywhere in a word, backslashes are
// plain characters, an unterminated quote ends with the line), and keys
// compare with '-' and '_' treated as equal. Nothing on the command line is
// fatal: anything rdext cannot use becomes a warning and is ignored.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace rdext {

struct CmdlineSettings {
    bool sysext_enabled = true;
    bool confext_enabled = true;
    std::set<std::string> sysext_exclude;
    std::set<std::string> confext_exclude;
    // Extensions the boot cannot do without: if one is not merged, the
    // merge fails so the initrd takes its emergency path.
    std::set<std::string> sysext_require;
    std::set<std::string> confext_require;
    // rd.sysext.pin=NAME=VERSION: take that version from NAME's versioned
    // directory (a downgrade that survives updates). Repeatable; for one
    // name the last occurrence wins.
    std::map<std::string, std::string> sysext_pin;
    std::map<std::string, std::string> confext_pin;
    // rd.sysext.image_policy= / rd.confext.image_policy=, as written; the
    // merge parses them (an invalid one refuses every image of the class).
    // A bare key (no '=') is kept as the key itself: not a valid policy.
    std::optional<std::string> sysext_image_policy;
    std::optional<std::string> confext_image_policy;
    // rd.sysext.mutable= / rd.confext.mutable=: a mode systemd-sysext knows
    // (no, auto, yes, import, ephemeral, ephemeral-import), validated.
    std::optional<std::string> sysext_mutable;
    std::optional<std::string> confext_mutable;
    // rd.sysext.block_devices= / rd.confext.block_devices=: whether a block
    // device node in a search directory may be merged. Off by default: the
    // root's node can name any device of the machine.
    bool sysext_block_devices = false;
    bool confext_block_devices = false;
    std::optional<std::string> log_level;  // validated with parse_log_level()
    // Human-readable, one per ignored word, e.g.
    // "unknown option rd.sysext.foo=1, ignored".
    std::vector<std::string> warnings;
};

// The words of a command line, quotes removed.
std::vector<std::string> split_cmdline(std::string_view text);

// systemd's boolean spellings: 1/yes/y/true/t/on and 0/no/n/false/f/off,
// case-insensitive.
std::optional<bool> parse_boolean(std::string_view s);

// Recognised keys (see the table in cmdline.cc):
//   rd.sysext=BOOL, rd.systemd.sysext=BOOL, systemd.sysext=BOOL
//   rd.confext=BOOL, rd.systemd.confext=BOOL, systemd.confext=BOOL
//   rd.sysext.exclude=NAME[,NAME...], rd.confext.exclude=NAME[,NAME...]
//   rd.sysext.require=NAME[,NAME...], rd.confext.require=NAME[,NAME...]
//   rd.sysext.pin=NAME=VERSION, rd.confext.pin=NAME=VERSION
//   rd.sysext.mutable=MODE, rd.confext.mutable=MODE
//   rd.sysext.block_devices=BOOL, rd.confext.block_devices=BOOL
//   rd.rdext.log_level=LEVEL
// A boolean key without "=" means true; the last occurrence wins.
// Exclusions accumulate. Unknown rd.sysext.*, rd.confext.* and rd.rdext.*
// keys are warned about; everything else belongs to someone else.
CmdlineSettings parse_cmdline(std::string_view text);

// Reads and parses a command line file (normally /proc/cmdline).
Result<CmdlineSettings> read_cmdline(const std::string& path = "/proc/cmdline");

}  // namespace rdext
