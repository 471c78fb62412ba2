#include "kmod/modules.h"

#include <fcntl.h>
#include <libkmod.h>
#include <syslog.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/scope_guard.h"

namespace rdext {
namespace {

// libkmod's own messages (which file it read, why a lookup failed) are
// details: they go to the debug log. Its last notice or warning (for a
// failed load: the module file the kernel refused) is kept in *data for the
// error: the module that failed may be a dependency of the one asked for.
void kmod_log(void* data, int priority, const char*, int, const char*, const char* format, va_list args) {
    if (priority > LOG_INFO && log_level() < LogLevel::Debug) return;
    char buf[512];
    std::vsnprintf(buf, sizeof(buf), format, args);
    std::string s = buf;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    if (priority <= LOG_INFO) *static_cast<std::string*>(data) = s;
    log_debug() << "libkmod: " << s;
}

// A compressed module file named in libkmod's message ('PATH').
bool names_compressed_file(const std::string& message) {
    for (const char* ext : {".ko.xz'", ".ko.zst'", ".ko.gz'"})
        if (message.find(ext) != std::string::npos) return true;
    return false;
}

// Why a kernel refuses a compressed module file that libkmod passed on as it
// is (the static rdext's libkmod has no decompressors, see
// scripts/static-deps.sh): the errors of finit_module(MODULE_INIT_COMPRESSED_FILE).
bool kernel_cannot_decompress(int err) {
#ifdef RDEXT_KMOD_KERNEL_DECOMPRESS
    return err == EOPNOTSUPP || err == EINVAL || err == ENOEXEC;
#else
    (void)err;
    return false;  // libkmod decompresses
#endif
}

// /sys/module uses the kernel's spelling of module names.
std::string sysfs_name(std::string name) {
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

bool kmod_state_present(kmod_module* mod) {
    int s = kmod_module_get_initstate(mod);
    return s == KMOD_MODULE_BUILTIN || s == KMOD_MODULE_LIVE || s == KMOD_MODULE_COMING;
}

}  // namespace

ModuleLoader::ModuleLoader() : ModuleLoader(Config{}) {}

ModuleLoader::ModuleLoader(Config config) : config_(std::move(config)) {}

ModuleLoader::~ModuleLoader() {
    if (ctx_) kmod_unref(ctx_);
}

Result<kmod_ctx*> ModuleLoader::context() {
    if (ctx_) return ctx_;
    std::vector<const char*> paths;
    for (const auto& p : config_.config_paths) paths.push_back(p.c_str());
    paths.push_back(nullptr);
    bool system_config = config_.use_system_config && config_.config_paths.empty();
    ctx_ = kmod_new(config_.module_dir.empty() ? nullptr : config_.module_dir.c_str(),
                    system_config ? nullptr : paths.data());
    if (!ctx_) return Error(ENOMEM) << "libkmod: cannot create a context";
    kmod_set_log_fn(ctx_, kmod_log, &kmod_message_);
    kmod_set_log_priority(ctx_, LOG_DEBUG);
    return ctx_;
}

bool ModuleLoader::module_present(const std::string& name) const {
    // Loaded modules, and built-in ones with parameters, have a directory.
    return open_path(config_.sys_module_dir + "/" + sysfs_name(name), O_PATH | O_DIRECTORY).has_value();
}

bool ModuleLoader::filesystem_present(const std::string& fstype) const {
    auto fd = open_path(config_.proc_filesystems, O_RDONLY);
    if (!fd) return false;
    auto text = read_regular_file(fd->get(), 1 << 16);
    if (!text) return false;
    // Lines are "nodev\tNAME" or "\tNAME".
    for (const auto& line : split(*text, '\n')) {
        auto tab = line.rfind('\t');
        if (tab != std::string::npos && line.substr(tab + 1) == fstype) return true;
    }
    return false;
}

Result<void> ModuleLoader::load(const std::string& name) {
    auto ctx = context();
    if (!ctx) return ctx.error();
    kmod_list* list = nullptr;
    int r = kmod_module_new_from_lookup(*ctx, name.c_str(), &list);
    if (r < 0) {
        log_debug() << "kernel module " << name << ": lookup failed (" << std::strerror(-r)
                    << "), leaving it to the kernel";
        missing_[name] = "kernel module " + name + " is not loaded, and looking it up failed (" +
                         std::strerror(-r) + ")";
        return {};
    }
    if (!list) {
        log_debug() << "kernel module " << name << ": not in the module tree (built in, or not there)";
        const std::string tree = kmod_get_dirname(*ctx);
        missing_[name] = "kernel module " + name +
                         (open_path(tree, O_PATH | O_DIRECTORY) ? " is neither loaded nor in the module tree "
                                                                : " is not loaded, and there is no module tree ") +
                         tree;
        return {};
    }
    ScopeGuard unref([&] { kmod_module_unref_list(list); });
    int last_err = 0;
    std::string last_name;
    kmod_list* it;
    kmod_list_foreach(it, list) {
        kmod_module* mod = kmod_module_get_module(it);
        ScopeGuard unref_mod([&] { kmod_module_unref(mod); });
        std::string mod_name = kmod_module_get_name(mod);
        bool was_present = kmod_state_present(mod);
        kmod_message_.clear();
        // Flags 0, as `modprobe NAME`: asked for by name, so no blacklist;
        // dependencies and modprobe.d options apply.
        r = kmod_module_probe_insert_module(mod, 0, nullptr, nullptr, nullptr, nullptr);
        if (r == 0) {
            if (!was_present) log_info() << "loaded kernel module " << mod_name;
            return {};
        }
        last_err = r < 0 ? -r : EINVAL;
        last_name = mod_name;
    }
    std::string what = "cannot load kernel module " + last_name;
    if (last_name != name) what += " (for " + name + ")";
    if (kmod_message_.empty()) return Error::sys(last_err) << what;
    // libkmod's message names the file and the kernel's reason.
    Error e = Error(last_err) << what << ": libkmod: " << kmod_message_;
    if (names_compressed_file(kmod_message_) && kernel_cannot_decompress(last_err))
        e << " (a compressed module: this rdext leaves decompressing it to the kernel, "
             "which needs Linux 5.17 or later built with CONFIG_MODULE_DECOMPRESS for that format)";
    return e;
}

Result<void> ModuleLoader::ensure_module(const std::string& name) {
    std::lock_guard<std::mutex> hold(lock_);
    if (done_.count(name)) return {};
    // Before the check for a loaded module, so tests can fail a load on a
    // kernel that has everything built in.
    if (auto f = fault_point("module-load"); !f) return f.error().prefix("kernel module " + name + ": ");
    if (!module_present(name)) RDEXT_TRY(load(name));
    done_.insert(name);
    return {};
}

Result<void> ModuleLoader::ensure_filesystem(const std::string& fstype) {
    std::string key = "fs-" + fstype;  // the alias file system modules carry
    std::lock_guard<std::mutex> hold(lock_);
    if (done_.count(key)) return {};
    if (auto f = fault_point("module-load"); !f) return f.error().prefix("kernel module " + key + ": ");
    if (!filesystem_present(fstype)) RDEXT_TRY(load(key));
    done_.insert(key);
    return {};
}

std::string ModuleLoader::why_missing(const std::string& name) {
    std::lock_guard<std::mutex> hold(lock_);
    auto it = missing_.find(name);
    // Loaded since (by someone else): not the cause.
    if (it == missing_.end() || module_present(name)) return "";
    return it->second;
}

ModuleLoader& system_modules() {
    static ModuleLoader loader;
    return loader;
}

}  // namespace rdext
