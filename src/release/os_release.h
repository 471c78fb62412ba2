// os-release(5) and extension-release files: KEY=VALUE in the env-file
// syntax systemd's parse_env_file() accepts, so rdext reads every file the
// same way systemd-sysext does (quoting, escapes, comments, "ID = x").
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "base/result.h"

namespace rdext {

using ReleaseFields = std::map<std::string, std::string>;

// Release files are tiny; the cap keeps a hostile image from making us
// allocate without bound.
inline constexpr size_t kMaxReleaseFileSize = 64 * 1024;

// Parses env-file text. Lines without '=' and keys that are not valid
// environment variable names are ignored; a repeated key keeps its last
// value. A NUL byte anywhere, or invalid UTF-8 in a key or value, fails the
// whole file ("binary content"), as systemd refuses such files too.
Result<ReleaseFields> parse_os_release(std::string_view text);

// Reads an already opened release file: it must be a regular file of at
// most kMaxReleaseFileSize bytes. `what` names it in error messages.
Result<ReleaseFields> read_release_fd(int fd, const std::string& what);

// The target's os-release: <root>/etc/os-release, else
// <root>/usr/lib/os-release, both resolved inside root_fd.
Result<ReleaseFields> read_host_os_release(int root_fd);

// The value of `key`, or "" when absent: most rules treat both alike.
std::string release_value(const ReleaseFields& fields, const std::string& key);

}  // namespace rdext
