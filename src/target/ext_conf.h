// sysext.conf / confext.conf (systemd v259, sysext.conf(5)): Mutable= and
// ImagePolicy= in the [Sysext] / [Confext] section. The main file is the
// first of /etc/systemd, /run/systemd, /usr/local/lib/systemd and
// /usr/lib/systemd that has one; then the drop-ins NAME.conf.d/*.conf of
// those directories, by file name (for one name the earlier directory's),
// each overriding what came before.
//
// Whose files count, and how much, is the caller's (main.cc, merge/trust.h):
// the running system's are trusted; a root that is not the running system
// is untrusted, its ImagePolicy= may only tighten.
//
// Covered by tests/integration/sysext_options.sh and tests/unit/ext_conf_test.cc.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "target/mutable_mode.h"

namespace rdext {

struct ConfValue {
    std::string value;
    std::string origin;  // "/etc/systemd/sysext.conf:2", for messages
};

struct ExtConf {
    std::optional<ConfValue> mutable_mode;  // Mutable=, as written
    std::optional<ConfValue> image_policy;  // ImagePolicy=, as written
};

// One file's settings of `section` ("Sysext") applied over `into`. Other
// sections and unknown keys are warned about (in `warnings`) and ignored,
// as systemd does; a line that is neither is an error naming it.
Result<void> parse_ext_conf(std::string_view content, std::string_view section, const std::string& origin,
                            ExtConf& into, std::vector<std::string>& warnings);

// The class's configuration in the root root_fd (every path resolved
// inside it). Missing files are no error; one that is not a regular file,
// unreadable or malformed is, naming it.
Result<ExtConf> read_ext_conf(int root_fd, ImageClass cls, std::vector<std::string>& warnings);

struct Target;
using PerClassMode = std::array<std::optional<MutableMode>, 2>;

// Indexed by ImageClass: the running system's files (trusted) and, when
// the root is not the running system, the root's (untrusted).
struct ConfSources {
    std::array<ExtConf, 2> trusted;
    std::array<ExtConf, 2> root;
    // Why the root's files exist but cannot be used, naming the file; they
    // may only tighten, so every image is then refused (merge/trust.h).
    std::optional<std::string> root_unusable;
};

// An error of the running system's files is the caller's to report.
Result<ConfSources> load_ext_confs(const Target& target);

// Mutable= per class, the running system's over the root's; an unknown
// mode is warned about and ignored.
PerClassMode conf_mutable_modes(const ConfSources& confs);

}  // namespace rdext
