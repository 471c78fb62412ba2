// A connection to systemd's service manager over D-Bus (libdbus-1: small,
// maintained, and buildable as a static archive for the initrd binary; see
// scripts/static-deps.sh). As root it talks to the manager's private socket
// (/run/systemd/private), as systemctl and systemd-sysext do, which works
// without a bus daemon; otherwise, or when that fails, through the system
// bus. Every call waits for the manager's answer.
//
// Covered by the VM scenario tests/vm/scenarios/reload.sh.
#pragma once

#include <string>

#include "base/result.h"

struct DBusConnection;

namespace rdext {

class ManagerBus {
public:
    static Result<ManagerBus> connect();

    ManagerBus(ManagerBus&& other) noexcept : c_(other.c_) { other.c_ = nullptr; }
    ManagerBus& operator=(ManagerBus&&) = delete;
    ManagerBus(const ManagerBus&) = delete;
    ~ManagerBus();

    // org.freedesktop.systemd1.Manager.Reload (daemon-reload); returns once
    // the manager has loaded its units again.
    Result<void> reload();

    // RestartUnit, or ReloadOrRestartUnit when `reload_allowed`, in "replace"
    // mode; a unit the manager does not have (its file gone, or it failed to
    // load) is stopped instead, so nothing of it keeps running. Returns once
    // the job is queued.
    Result<void> restart_unit(const std::string& unit, bool reload_allowed);

private:
    explicit ManagerBus(DBusConnection* c) : c_(c) {}
    DBusConnection* c_;
};

}  // namespace rdext
