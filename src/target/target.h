// The root being extended and the settings a run works with.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "policy/policy_file.h"
#include "target/mutable_mode.h"

namespace rdext {

// What the trusted side sets for one class of extensions: the kernel
// command line's rd.sysext.* / rd.confext.* keys (cmdline/cmdline.h), and
// --mutable= over them. One shape for the command line and the merge.
struct ClassSettings {
    bool enabled = true;                // rd.sysext=, rd.confext= (and systemd.*)
    std::string disabled_by;            // the word that switched it off ("rd.sysext=0"), for status
    std::set<std::string> exclude;      // rd.sysext.exclude=NAME,...
    // rd.sysext.require=: extensions the boot cannot do without; if one is
    // not merged, the merge fails so the initrd takes its emergency path.
    std::set<std::string> require;
    // rd.sysext.pin=NAME=VERSION: the version to take from NAME's versioned
    // directory (a downgrade that survives updates); for one name the last wins.
    std::map<std::string, std::string> pin;
    // rd.sysext.image_policy=, as written: the image policy parses it (an
    // invalid one refuses every image of the class). A bare key (no '=') is
    // kept as the key itself: not a valid policy.
    std::optional<std::string> image_policy;
    MutableMode mutable_mode = MutableMode::No;  // rd.sysext.mutable=, --mutable=
    // rd.sysext.block_devices=: whether a block device node in a search
    // directory may be merged. Off by default: the root's node can name any
    // device of the machine.
    bool block_devices = false;
};

// Indexed by ImageClass.
using PerClassSettings = std::array<ClassSettings, 2>;

// Mutable= of sysext.conf / confext.conf per class (target/ext_conf.h).
using PerClassMode = std::array<std::optional<MutableMode>, 2>;

// The mutable mode per class, as systemd-sysext takes it: --mutable= (both
// classes) over SYSTEMD_SYSEXT_MUTABLE_MODE / SYSTEMD_CONFEXT_MUTABLE_MODE
// over Mutable= of the configuration files (`conf`) over what `classes`
// holds (rd.sysext.mutable=, rd.confext.mutable=, or no). An unknown mode
// in the environment is warned about and ignored.
void apply_mutable_mode_overrides(PerClassSettings& classes, std::optional<MutableMode> option,
                                  const PerClassMode& conf = {});

// SYSTEMD_SYSEXT_HIERARCHIES / SYSTEMD_CONFEXT_HIERARCHIES, as systemd
// reads them: colon-separated absolute, normalized paths (no "." or ".."
// component, no "//"), not "/", at least one, in place of the class's
// built-in hierarchies (base/image_class.h). Beyond systemd: a hierarchy
// given twice, one inside another, or one both classes claim is refused
// (rdext merges both classes in one run). EINVAL names the variable.
Result<void> apply_hierarchy_overrides();
// The list one variable holds (exposed for the unit tests).
Result<std::vector<std::string>> parse_hierarchy_list(const std::string& var, const std::string& value);

struct Settings {
    std::string root = "/";
    PerClassSettings classes;
    // Image policy: the trusted side (the initrd's /etc/rdext/policy.conf,
    // the command line) and the root's own file, which may only tighten.
    PolicyConfig policy;
    bool force = false;          // --force: no release/compatibility check
    std::optional<bool> noexec;  // --noexec=: MS_NOEXEC set (true) or cleared on every overlay
    // --always-refresh=yes: a refresh never stops at "unchanged" (that check
    // does not see every change inside a directory image: merge/refresh.cc,
    // add_directory_tops).
    bool always_refresh = false;

    const ClassSettings& of(ImageClass c) const { return classes[static_cast<size_t>(c)]; }
    bool class_enabled(ImageClass c) const { return of(c).enabled; }
    const std::set<std::string>& excluded(ImageClass c) const { return of(c).exclude; }
    const std::set<std::string>& required(ImageClass c) const { return of(c).require; }
    MutableMode mutable_mode(ImageClass c) const { return of(c).mutable_mode; }
    bool block_devices_allowed(ImageClass c) const { return of(c).block_devices; }
    // "" when NAME is not pinned.
    std::string pinned(ImageClass c, const std::string& name) const {
        auto it = of(c).pin.find(name);
        return it == of(c).pin.end() ? std::string() : it->second;
    }
};

struct Target {
    std::string root_path;  // as given, for messages
    UniqueFd root_fd;       // O_PATH directory: everything is resolved inside it
    bool in_initrd = false; // rdext itself runs in an initrd

    static Result<Target> open(const std::string& root);

    // rdext's runtime directory: /run/rdext of the running system when in
    // the initrd or when the root is "/" (the initrd's /run becomes the real
    // system's /run at switch-root), else <root>/run/rdext.
    Result<UniqueFd> runtime_dir(bool create) const;

    // Whether the root is the running system's own "/".
    bool is_running_root() const;

    // A hierarchy ("/usr") resolved inside the root, O_PATH.
    Result<UniqueFd> open_hierarchy(const std::string& h) const;

    // Creates a hierarchy missing from the root (its parent must exist), mode
    // 0755, as systemd-sysext does for a hierarchy an extension has files
    // for. The result removes it again (remove()) when the merge fails.
    struct CreatedDir {
        UniqueFd parent;
        std::string name;
        UniqueFd dir;  // O_PATH of the new directory
        void remove() const;
    };
    Result<CreatedDir> create_hierarchy(const std::string& h) const;
};

// Whether the running system is an initrd (/etc/initrd-release exists).
bool running_in_initrd();

}  // namespace rdext
