// The root being extended and the settings a run works with.
#pragma once

#include <array>
#include <map>
#include <set>
#include <string>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "policy/policy_file.h"
#include "target/mutable_mode.h"

namespace rdext {

struct Settings {
    std::string root = "/";
    // Indexed by ImageClass.
    std::array<bool, 2> enabled{true, true};
    std::array<std::set<std::string>, 2> exclude;
    std::array<std::set<std::string>, 2> require;
    // Image policy: the trusted side (the initrd's /etc/rdext/policy.conf,
    // the command line) and the root's own file, which may only tighten.
    PolicyConfig policy;
    // rd.sysext.pin=NAME=VERSION: the version to take from NAME's versioned directory.
    std::array<std::map<std::string, std::string>, 2> pin;
    // --mutable=, rd.sysext.mutable=, rd.confext.mutable=.
    std::array<MutableMode, 2> mutable_modes{MutableMode::No, MutableMode::No};
    // rd.sysext.block_devices=, rd.confext.block_devices=: block device
    // entries are merged only when the trusted side allows them.
    std::array<bool, 2> block_devices{false, false};

    bool class_enabled(ImageClass c) const { return enabled[static_cast<size_t>(c)]; }
    const std::set<std::string>& excluded(ImageClass c) const { return exclude[static_cast<size_t>(c)]; }
    const std::set<std::string>& required(ImageClass c) const { return require[static_cast<size_t>(c)]; }
    MutableMode mutable_mode(ImageClass c) const { return mutable_modes[static_cast<size_t>(c)]; }
    bool block_devices_allowed(ImageClass c) const { return block_devices[static_cast<size_t>(c)]; }
    // "" when NAME is not pinned.
    std::string pinned(ImageClass c, const std::string& name) const {
        const auto& m = pin[static_cast<size_t>(c)];
        auto it = m.find(name);
        return it == m.end() ? std::string() : it->second;
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
};

// Whether the running system is an initrd (/etc/initrd-release exists).
bool running_in_initrd();

}  // namespace rdext
