// What the service manager is asked to do after a merge, refresh or
// unmerge on a booted system, as systemd-sysext does it: the merged
// extensions' release files may set
//   EXTENSION_RELOAD_MANAGER=BOOL             reload the manager (daemon-reload)
//   EXTENSION_RESTART_UNITS=UNIT...           restart these units (start if stopped)
//   EXTENSION_RELOAD_OR_RESTART_UNITS=UNIT... reload them, or restart those that cannot
// Listing a unit implies the reload (a unit an extension ships is unknown
// to the manager until then); a unit in both lists is only restarted; a
// unit the manager no longer has (its file left with the extension) is
// stopped instead. Never in the initrd, never for another root, never with
// --no-reload: main.cc decides that.
//
// Covered by tests/unit/reload_test.cc (the keys) and the VM scenario
// tests/vm/scenarios/reload.sh (the manager).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "release/os_release.h"
#include "target/target.h"

namespace rdext {

// One merged extension's release file.
struct ExtensionRelease {
    std::string name;
    ReleaseFields fields;
};

struct ManagerActions {
    bool reload = false;
    std::vector<std::string> restart;            // sorted, no repeats
    std::vector<std::string> reload_or_restart;  // sorted, none of `restart`
    std::vector<std::string> warnings;           // values ignored, and why
};

// systemd's unit_name_is_valid() for plain and instance names:
// "foo.service", "getty@tty1.service"; not a template ("foo@.service").
bool unit_name_is_valid(std::string_view name);

// The actions the extensions ask for, together (any one asking for a
// reload is enough). Invalid booleans and unit names are ignored, each
// with a warning.
ManagerActions manager_actions(const std::vector<ExtensionRelease>& extensions);

// The release files of the extensions merged into the target now, as the
// merged hierarchies' metadata lists them (systemd-sysext's merges too),
// read from the merged tree. One that cannot be read is left out, with a
// debug message: it cannot ask for anything.
std::vector<ExtensionRelease> merged_extension_releases(const Target& target, const Settings& settings);

// Reloads the manager and restarts the units when the extensions ask for
// it. Nothing to do when none asks, or when systemd is not the running
// init (no /run/systemd/system: there is no manager to tell). Fails when
// the manager cannot be reached or refuses; a unit that fails is reported
// and the others still get their turn.
Result<void> notify_manager(const std::vector<ExtensionRelease>& extensions);

// Around an operation that changes the merge (merge, refresh, unmerge, on
// the command line or over varlink): the extensions merged before it (a
// refresh or unmerge may take them away, and the manager must forget
// their units too), then those merged after it. `tell` false: nothing is
// read and nobody is told.
struct ManagerNotice {
    bool tell = false;
    std::vector<ExtensionRelease> extensions;
};
ManagerNotice notice_before(const Target& target, const Settings& settings, bool tell, bool read_merged_now);
// Adds the extensions merged now (when `read_merged_now`) and tells the
// manager; a failure is logged here and returns false (the merge stays).
bool notify_after(ManagerNotice& notice, const Target& target, const Settings& settings, bool read_merged_now);

}  // namespace rdext
