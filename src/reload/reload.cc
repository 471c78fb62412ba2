#include "reload/reload.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <utility>

#include "base/boolean.h"
#include "base/log.h"
#include "release/extension_release.h"
#include "reload/manager_bus.h"
#include "state/metadata.h"

namespace rdext {
namespace {

// systemd's UNIT_NAME_MAX counts the terminating NUL.
constexpr size_t kUnitNameMax = 256;

bool unit_type_is_valid(std::string_view t) {
    static constexpr std::array<std::string_view, 11> types = {
        "service", "mount", "swap", "socket", "target", "device",
        "automount", "timer", "path", "slice", "scope"};
    return std::find(types.begin(), types.end(), t) != types.end();
}

bool unit_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr(":-_.\\@", c) != nullptr;
}

// Adds the valid unit names of one list key to `into`.
void add_units(const ExtensionRelease& ext, const char* key, std::set<std::string>& into,
               std::vector<std::string>& warnings) {
    std::string value = release_value(ext.fields, key);
    size_t i = 0;
    while (i < value.size()) {
        i = value.find_first_not_of(" \t\n", i);
        if (i == std::string::npos) break;
        size_t end = value.find_first_of(" \t\n", i);
        std::string unit = value.substr(i, end == std::string::npos ? std::string::npos : end - i);
        i = end == std::string::npos ? value.size() : end;
        if (unit_name_is_valid(unit))
            into.insert(unit);
        else
            warnings.push_back("extension " + ext.name + ": invalid unit name '" + unit + "' in " + key + "=, ignored");
    }
}

bool has_words(const std::string& v) { return v.find_first_not_of(" \t\n") != std::string::npos; }

}  // namespace

bool unit_name_is_valid(std::string_view name) {
    if (name.empty() || name.size() >= kUnitNameMax) return false;
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || !unit_type_is_valid(name.substr(dot + 1))) return false;
    std::string_view prefix = name.substr(0, dot);
    if (!std::all_of(prefix.begin(), prefix.end(), unit_name_char)) return false;
    size_t at = prefix.find('@');
    // A plain name, or an instance: a prefix before the '@' and an instance after it.
    return at == std::string_view::npos || (at > 0 && at + 1 < prefix.size());
}

ManagerActions manager_actions(const std::vector<ExtensionRelease>& extensions) {
    ManagerActions a;
    std::set<std::string> restart, reload_or_restart;
    for (const auto& ext : extensions) {
        std::string v = release_value(ext.fields, "EXTENSION_RELOAD_MANAGER");
        if (!v.empty()) {
            auto b = parse_boolean(v);
            if (!b)
                a.warnings.push_back("extension " + ext.name + ": EXTENSION_RELOAD_MANAGER=" + v +
                                     " is no boolean, ignored");
            else if (*b)
                a.reload = true;
        }
        // A listed unit may be one the extension brings or takes away: the
        // manager must see the change before it is asked to act on it.
        for (const char* key : {"EXTENSION_RESTART_UNITS", "EXTENSION_RELOAD_OR_RESTART_UNITS"})
            if (has_words(release_value(ext.fields, key))) a.reload = true;
        add_units(ext, "EXTENSION_RESTART_UNITS", restart, a.warnings);
        add_units(ext, "EXTENSION_RELOAD_OR_RESTART_UNITS", reload_or_restart, a.warnings);
    }
    for (const auto& u : restart) reload_or_restart.erase(u);
    a.restart.assign(restart.begin(), restart.end());
    a.reload_or_restart.assign(reload_or_restart.begin(), reload_or_restart.end());
    return a;
}

std::vector<ExtensionRelease> merged_extension_releases(const Target& target, const Settings& settings) {
    std::vector<ExtensionRelease> out;
    std::set<std::pair<ImageClass, std::string>> seen;
    for (ImageClass cls : all_classes()) {
        if (!settings.class_enabled(cls)) continue;
        for (const auto& h : class_info(cls).hierarchies) {
            auto hier = target.open_hierarchy(h);
            if (!hier) continue;
            auto merged = read_merged(hier->get(), cls);
            if (!merged || !merged->merged) continue;
            for (const auto& name : merged->extensions) {
                if (!seen.insert({cls, name}).second) continue;
                // Read from the merged tree, as systemd-sysext does: the
                // images themselves are no longer at hand.
                auto fields = read_extension_release(target.root_fd.get(), cls, name);
                if (!fields) {
                    log_debug() << "extension " << name << ": release file: " << fields.error().what();
                    continue;
                }
                out.push_back({name, std::move(*fields)});
            }
        }
    }
    return out;
}

Result<void> notify_manager(const std::vector<ExtensionRelease>& extensions) {
    ManagerActions a = manager_actions(extensions);
    for (const auto& w : a.warnings) log_warning() << w;
    if (!a.reload) return {};
    if (::access("/run/systemd/system", F_OK) != 0) {
        log_notice() << "an extension asks for a service manager reload, but systemd is not running; not reloading";
        return {};
    }
    auto bus = ManagerBus::connect();
    if (!bus) return bus.error();
    RDEXT_TRY(bus->reload());
    log_info() << "reloaded the service manager";
    Result<void> result;
    auto act = [&](const std::string& unit, bool reload_allowed) {
        auto r = bus->restart_unit(unit, reload_allowed);
        if (!r) {
            log_error() << r.error().what();
            if (result) result = r.error();
        }
    };
    for (const auto& u : a.restart) act(u, false);
    for (const auto& u : a.reload_or_restart) act(u, true);
    return result;
}

ManagerNotice notice_before(const Target& target, const Settings& settings, bool tell, bool read_merged_now) {
    ManagerNotice n;
    n.tell = tell;
    if (tell && read_merged_now) n.extensions = merged_extension_releases(target, settings);
    return n;
}

bool notify_after(ManagerNotice& notice, const Target& target, const Settings& settings, bool read_merged_now) {
    if (!notice.tell) return true;
    if (read_merged_now)
        for (auto& e : merged_extension_releases(target, settings)) notice.extensions.push_back(std::move(e));
    auto r = notify_manager(notice.extensions);
    if (!r) log_error() << "service manager: " << r.error().what();
    return static_cast<bool>(r);
}

}  // namespace rdext
