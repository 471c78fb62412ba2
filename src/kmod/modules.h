// Kernel modules, loaded through libkmod right before the first use of
// what they provide (loop devices, a file system, overlayfs, dm-verity).
// In the initrd nothing else may have loaded them: the kernel's own
// request_module() needs a modprobe binary the initrd may not have.
// libkmod resolves the module in the running system's tree
// (/lib/modules/`uname -r`: the initrd's before switch-root, the booted
// system's after) and loads its dependencies first.
//
// A module that is already there (loaded or built in) or that the tree does
// not have is fine: the operation that needs it then fails with its own
// error if the kernel really lacks it. A module that is there but fails to
// load is an error naming it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

struct kmod_ctx;

namespace rdext {

class ModuleLoader {
public:
    struct Config {
        // Module tree; empty: the running kernel's (/lib/modules/`uname -r`).
        std::string module_dir;
        // modprobe.d configuration; empty with use_system_config: the
        // running system's (/etc/modprobe.d, /run, /lib).
        std::vector<std::string> config_paths;
        bool use_system_config = true;
        // Where to see what the kernel already has (tests point these elsewhere).
        std::string sys_module_dir = "/sys/module";
        std::string proc_filesystems = "/proc/filesystems";
    };

    ModuleLoader();
    explicit ModuleLoader(Config config);
    ~ModuleLoader();
    ModuleLoader(const ModuleLoader&) = delete;
    ModuleLoader& operator=(const ModuleLoader&) = delete;

    // The module (a name or an alias) is loaded, built in, or not in the tree.
    Result<void> ensure_module(const std::string& name);
    // The kernel knows the file system type, loading "fs-TYPE" if needed.
    Result<void> ensure_filesystem(const std::string& fstype);
    // Why the kernel may lack a module ensure_module() passed over: e.g.
    // "kernel module dm_verity is not loaded, and there is no module tree
    // /lib/modules/6.1.0"; "" when it is loaded (or built in) or the tree
    // had it. For the error of the operation that then fails, which the
    // kernel words without naming the module ("Operation not supported").
    std::string why_missing(const std::string& name);

private:
    bool module_present(const std::string& name) const;
    bool filesystem_present(const std::string& fstype) const;
    Result<void> load(const std::string& name);
    Result<kmod_ctx*> context();

    Config config_;
    std::mutex lock_;            // images are staged on several threads (base/parallel.h)
    kmod_ctx* ctx_ = nullptr;    // created on first use, once per run
    std::set<std::string> done_;  // names already ensured in this run
    std::string kmod_message_;    // libkmod's last notice, for the error of a failed load
    std::map<std::string, std::string> missing_;  // names the tree did not have, and why
};

// The process-wide loader for the running kernel.
ModuleLoader& system_modules();

// Shorthands for system_modules().ensure_*().
inline Result<void> ensure_module(const std::string& name) { return system_modules().ensure_module(name); }
inline Result<void> ensure_filesystem(const std::string& fstype) {
    return system_modules().ensure_filesystem(fstype);
}

}  // namespace rdext
