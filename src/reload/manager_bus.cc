#include "reload/manager_bus.h"

#include <unistd.h>

#include <dbus/dbus.h>

#include <memory>

#include "base/log.h"

namespace rdext {
namespace {

constexpr const char* kPrivateSocket = "unix:path=/run/systemd/private";
// systemctl's limit for a daemon-reload: a manager with many units takes a while.
constexpr int kReloadTimeoutMs = 6 * 60 * 1000;
constexpr int kUnitTimeoutMs = 25 * 1000;

struct ErrorGuard {
    DBusError e;
    ErrorGuard() { dbus_error_init(&e); }
    ~ErrorGuard() { dbus_error_free(&e); }
    bool is(const char* name) const { return dbus_error_has_name(&e, name); }
    std::string text() const { return std::string(e.message ? e.message : "") + " (" + (e.name ? e.name : "?") + ")"; }
};

struct MessageUnref {
    void operator()(DBusMessage* m) const { dbus_message_unref(m); }
};
using Message = std::unique_ptr<DBusMessage, MessageUnref>;

void close_connection(DBusConnection* c) {
    dbus_connection_close(c);
    dbus_connection_unref(c);
}

// The manager's private socket: only root may connect, and no bus daemon
// has to run.
DBusConnection* connect_private(ErrorGuard& err) {
    if (::geteuid() != 0) return nullptr;
    DBusConnection* c = dbus_connection_open_private(kPrivateSocket, &err.e);
    if (!c) log_debug() << "service manager's private socket: " << err.text() << "; trying the system bus";
    dbus_error_free(&err.e);
    return c;
}

Message method_call(const char* method) {
    return Message(dbus_message_new_method_call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                                "org.freedesktop.systemd1.Manager", method));
}

// METHOD(unit, "replace"); a null reply with `err` set when it failed.
Message unit_call(DBusConnection* c, const char* method, const std::string& unit, DBusError* err) {
    Message m = method_call(method);
    const char* name = unit.c_str();
    const char* mode = "replace";
    if (!m || !dbus_message_append_args(m.get(), DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &mode, DBUS_TYPE_INVALID)) {
        dbus_set_error_const(err, DBUS_ERROR_NO_MEMORY, "out of memory");
        return nullptr;
    }
    return Message(dbus_connection_send_with_reply_and_block(c, m.get(), kUnitTimeoutMs, err));
}

}  // namespace

Result<ManagerBus> ManagerBus::connect() {
    ErrorGuard err;
    DBusConnection* c = connect_private(err);
    if (!c) {
        c = dbus_bus_get_private(DBUS_BUS_SYSTEM, &err.e);
        if (!c) return Error(ECONNREFUSED) << "cannot reach the service manager: " << err.text();
    }
    // libdbus ends the process when a bus connection drops; rdext reports it.
    dbus_connection_set_exit_on_disconnect(c, FALSE);
    return ManagerBus(c);
}

ManagerBus::~ManagerBus() {
    if (c_) close_connection(c_);
}

Result<void> ManagerBus::reload() {
    Message m = method_call("Reload");
    if (!m) return Error(ENOMEM) << "service manager reload: out of memory";
    ErrorGuard err;
    Message reply(dbus_connection_send_with_reply_and_block(c_, m.get(), kReloadTimeoutMs, &err.e));
    if (!reply) return Error(EIO) << "service manager reload failed: " << err.text();
    return {};
}

Result<void> ManagerBus::restart_unit(const std::string& unit, bool reload_allowed) {
    const char* method = reload_allowed ? "ReloadOrRestartUnit" : "RestartUnit";
    ErrorGuard err;
    Message reply = unit_call(c_, method, unit, &err.e);
    // The unit left with the extension: stop what still runs of it.
    if (!reply && (err.is("org.freedesktop.systemd1.NoSuchUnit") || err.is("org.freedesktop.systemd1.LoadFailed"))) {
        dbus_error_free(&err.e);
        method = "StopUnit";
        reply = unit_call(c_, method, unit, &err.e);
    }
    if (!reply) return Error(EIO) << "unit " << unit << ": " << method << " failed: " << err.text();
    log_info() << "unit " << unit << ": " << method << " queued";
    return {};
}

}  // namespace rdext
