// Command line of the rdext tool.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "target/mutable_mode.h"

namespace rdext {

// --json=: off (text), short (one line) or pretty (indented); a bare
// --json is pretty.
enum class JsonMode { Off, Short, Pretty };

enum class Command { Merge, Unmerge, Refresh, Status, List, MarkGood, CountTries, Inspect, Fetch, Help, Version, MutableHelp, Varlink };

struct Options {
    Command command = Command::Help;
    std::string root;          // empty: /sysroot in an initrd, else /
    std::string cmdline_file;  // empty: /proc/cmdline
    std::optional<std::string> log_level;
    std::optional<std::string> image_policy;  // --image-policy=, for both classes
    std::optional<MutableMode> mutable_mode;  // --mutable=, for both classes
    bool force = false;                       // --force: no compatibility check
    std::optional<bool> noexec;               // --noexec=: noexec on (off) the merged trees
    bool always_refresh = false;              // --always-refresh=: no "unchanged" shortcut
    JsonMode json = JsonMode::Off;
    // inspect: the image, the OS to check it against, the trust anchors.
    std::string image;
    std::optional<std::string> os_release;  // --os-release=FILE
    std::vector<std::string> certificates;  // --certificate=FILE (repeatable)
    // fetch: the OpenPGP keyring for SHA256SUMS.gpg, the CA for https,
    // the time the whole fetch may take, and a refresh after it.
    std::optional<std::string> keyring;  // --keyring=FILE
    std::optional<std::string> ca;       // --ca=FILE
    std::optional<unsigned> timeout;     // --timeout=SECONDS
    bool refresh = false;                // --refresh
};

// systemd's booleans: 1/yes/y/true/t/on and 0/no/n/false/f/off.
Result<bool> parse_boolean(const char* text, const char* option);

// Usage errors carry EINVAL and a message fit for stderr.
Result<Options> parse_options(int argc, char** argv);

const char* usage_text();

}  // namespace rdext
