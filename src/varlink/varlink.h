// A small varlink server (https://varlink.org): NUL-terminated JSON
// messages over a unix stream socket, the socket passed by the service
// manager (LISTEN_FDS, as systemd's socket units do). No varlink library
// is packaged for Debian bookworm (sd-varlink is public from libsystemd
// 257 on), so this is the protocol's minimum, kept strict: messages of
// at most kMaxMessage bytes, only the fields the protocol defines, one
// connection at a time, root peers only (as systemd-sysext's server).
//
// Covered by tests/integration/varlink.sh (against varlinkctl 257).
#pragma once

#include <json-c/json.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace rdext {

// Requests are a method name and a few parameters; anything longer is not
// a request of any interface served here.
inline constexpr size_t kMaxVarlinkMessage = 64 * 1024;

using JsonRef = std::unique_ptr<json_object, decltype(&json_object_put)>;
inline JsonRef json_ref(json_object* o) { return JsonRef(o, &json_object_put); }

// One method call as received: "parameters" is always an object ({} when
// the call had none).
struct VarlinkCall {
    std::string method;     // "io.systemd.sysext.List"
    json_object* parameters = nullptr;  // owned by the message
    bool more = false;      // the caller takes several replies
    bool oneway = false;    // the caller takes none
};

// Sends the replies to one call (none for a oneway call). reply() with
// `continues` set sends one of several (a call with "more"); the last is
// sent without it. Takes ownership of `parameters` (null: {}).
class VarlinkReplier {
public:
    VarlinkReplier(int fd, bool oneway) : fd_(fd), oneway_(oneway) {}
    void reply(json_object* parameters, bool continues = false);
    void error(const std::string& name, json_object* parameters = nullptr);
    // org.varlink.service.InvalidParameter naming the parameter.
    void invalid_parameter(const std::string& name);
    bool failed() const { return failed_; }  // the peer went away

private:
    void send(json_object* message);
    int fd_;
    bool oneway_;
    bool failed_ = false;
};

struct VarlinkInterface {
    std::string name;         // "io.systemd.sysext"
    std::string description;  // its IDL text, as GetInterfaceDescription returns it
};

struct VarlinkService {
    std::string vendor, product, version, url;
    std::vector<VarlinkInterface> interfaces;  // org.varlink.service is added
    // Answers a call of one of `interfaces`; false when no such method
    // exists (the server replies MethodNotFound).
    std::function<bool(const VarlinkCall&, VarlinkReplier&)> handle;
};

// What one parameter of a method must be. 257's dispatch refuses null
// for every parameter of io.systemd.sysext, so no type here takes one.
enum class ParamType { String, Bool };
struct ParamSpec {
    const char* name;
    ParamType type;
};

// Checks the call's parameters against `specs`: an unknown name or a
// value of the wrong type is answered with InvalidParameter (false).
bool check_parameters(const VarlinkCall& call, const std::vector<ParamSpec>& specs, VarlinkReplier& r);

// The socket the service manager passed (LISTEN_PID is ours, LISTEN_FDS
// is 1: fd 3, a unix stream socket). `need_name`: only when LISTEN_FDNAMES
// is "varlink" (how systemd-sysext tells it was started as a service).
Result<int> varlink_listen_fd(bool need_name);

// Serves the socket: a connection (a socket unit's Accept=yes) until the
// peer hangs up; a listening socket (Accept=no) one connection after
// another until none came for `idle_exit_ms`.
Result<void> varlink_serve(int fd, const VarlinkService& service, int idle_exit_ms = 5000);

}  // namespace rdext
