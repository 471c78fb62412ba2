// Settings from the kernel command line.
//
// Words are split the way systemd's proc_cmdline does (whitespace separates,
// '...' and "..." group and are removed anywhere in a word, backslashes are
// plain characters, an unterminated quote ends with the line), and keys
// compare with '-' and '_' treated as equal. Nothing on the command line is
// fatal: anything rdext cannot use becomes a warning and is ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "target/target.h"

namespace rdext {

struct CmdlineSettings {
    // rd.sysext.* and rd.confext.*, in the merge's own shape (ClassSettings):
    // every value validated here, a bad one warned about and ignored.
    PerClassSettings classes;
    std::optional<std::string> log_level;  // validated with parse_log_level()
    // Human-readable, one per ignored word, e.g.
    // "unknown option rd.sysext.foo=1, ignored".
    std::vector<std::string> warnings;

    ClassSettings& of(ImageClass c) { return classes[static_cast<size_t>(c)]; }
    const ClassSettings& of(ImageClass c) const { return classes[static_cast<size_t>(c)]; }
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
