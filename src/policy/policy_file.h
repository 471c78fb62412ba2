// Per-extension image policies (beyond systemd): rules chosen by extension
// name pattern, read from a policy file, and the "sysroot may only tighten"
// combination.
//
// Policy file (e.g. /etc/rdext/policy.conf inside the initrd):
//   # comment (also after a rule: everything from '#' on is ignored)
//   flatcar-*   root=signed+absent:usr=signed+absent
//   oem-*       usr=signed+absent
//   default     root=verity+signed+unprotected+absent:usr=verity+signed+unprotected+absent
// One rule per line: a pattern and an image policy (systemd syntax, see
// policy.h), separated by white space; the policy itself contains none.
// "default" is the rule for names no pattern matches ("[d]efault" matches
// an extension called "default"). A pattern is an fnmatch(3) glob (`*`,
// `?`, `[...]`) without '/', '\\' or '#'. A pattern or default given twice,
// a missing or extra field, a bad policy, a control character or a file
// larger than kPolicyFileMax is an error naming the line.
//
// Most specific pattern wins (more_specific()):
//   1. a pattern without wildcards (an exact name) beats every glob;
//   2. a longer literal prefix (characters before the first wildcard) wins;
//   3. then more literal characters in total ([...] counts as none);
//   4. then fewer wildcards;
//   5. then the rule written first.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "policy/policy.h"

namespace rdext {

inline constexpr size_t kPolicyFileMax = 64 * 1024;

struct PolicyRule {
    std::string pattern;
    ImagePolicy policy;
    unsigned line = 0;  // 0: not from a file
};

struct PolicyFile {
    std::string origin;  // where it came from, for messages
    std::vector<PolicyRule> rules;
    std::optional<ImagePolicy> default_policy;
    unsigned default_line = 0;
};

bool is_glob_pattern(std::string_view pattern);
bool pattern_matches(std::string_view pattern, std::string_view name);
// True if a is more specific than b by rules 1-4 above (false for a tie).
bool more_specific(std::string_view a, std::string_view b);

// The most specific rule matching name, or nullptr.
const PolicyRule* find_rule(const PolicyFile& file, std::string_view name);

Result<PolicyFile> parse_policy_file(std::string_view content, const std::string& origin);

// Reads `path` below root_fd (resolved inside it, see open_in_root). A
// missing file is nullopt, not an error; anything but a regular file is an
// error and is never opened for reading. Every error names `path`, after
// `label` (e.g. "trusted policy file"), and so does the file's origin: two
// files at the same path in different roots can be told apart.
Result<std::optional<PolicyFile>> read_policy_file(int root_fd, const std::string& path,
                                                   const std::string& label = "");

// The policy for one extension and where it came from.
struct ResolvedPolicy {
    ImagePolicy policy;
    std::string source;                 // e.g. "/etc/rdext/policy.conf:3 (oem-*)"
    std::vector<std::string> warnings;  // loosening attempts that were ignored
};

// The trusted (initrd) configuration plus an optional untrusted policy file
// from the sysroot.
struct PolicyConfig {
    PolicyFile trusted;
    std::optional<ImagePolicy> sysext_cmdline;  // rd.sysext.image_policy=
    std::optional<ImagePolicy> confext_cmdline;  // rd.confext.image_policy=
    // Both of the above are --image-policy='s (which overrides the kernel
    // command line's): the source that messages name.
    bool from_option = false;
    std::optional<PolicyFile> sysroot;
    // ImagePolicy= of sysext.conf / confext.conf (target/ext_conf.h), by
    // ImageClass: the running system's (trusted, below --image-policy=,
    // above rd.*.image_policy=) and the root's (may only tighten).
    struct ConfPolicy {
        ImagePolicy policy;
        std::string origin;  // "/etc/systemd/sysext.conf:2"
    };
    std::array<std::optional<ConfPolicy>, 2> trusted_conf;
    std::array<std::optional<ConfPolicy>, 2> sysroot_conf;
    // Why the sysroot's file exists but cannot be used (not a regular file,
    // unreadable, invalid), naming it. It may only tighten, so ignoring it would
    // loosen what it says: every image of both classes is refused instead.
    std::optional<std::string> sysroot_unusable;
};

// Trusted resolution, first that applies: the trusted file's most specific
// matching pattern; --image-policy=, else the running system's ImagePolicy=
// (sysext.conf), else the class's kernel command line policy; the trusted
// file's default; systemd's default for the class.
//
// An unusable sysroot file (sysroot_unusable) makes the result "~", which
// refuses every image (each offers a root or usr partition).
//
// Then, if a sysroot file is present and one of its rules applies (pattern
// or default), the result is intersect_policies(trusted, sysroot rule), and
// likewise with the root's ImagePolicy= (sysroot_conf): the
// sysroot can only remove allowed flags; flags it adds are dropped and
// reported in `warnings`. The combination is done per extension name rather
// than by merging the two files, because globs of the two files overlap in
// ways no single merged rule list can express (e.g. sysroot "flatcar-f*"
// against trusted "flatcar-*" and "flatcar-foo").
ResolvedPolicy resolve_policy(const PolicyConfig& config, ImageClass c, std::string_view name);

}  // namespace rdext
