#include "varlink/varlink.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "base/fd.h"
#include "base/log.h"

namespace rdext {
namespace {

// A connection that sends nothing for this long is closed: with one
// connection at a time, a silent peer would hold up everyone else.
constexpr int kConnectionIdleMs = 60 * 1000;

// org.varlink.service as systemd 257 describes it (varlink.org's text),
// so `varlinkctl introspect` shows the same.
const char* const kServiceIdl =
    "# General Varlink service interface\n"
    "interface org.varlink.service\n"
    "\n"
    "# Get service meta information\n"
    "method GetInfo() -> (\n"
    "\t# String identifying the vendor of this service\n"
    "\tvendor: string,\n"
    "\t# String identifying the product implementing this service\n"
    "\tproduct: string,\n"
    "\t# Version string of this product\n"
    "\tversion: string,\n"
    "\t# Web URL pointing to additional information about this service\n"
    "\turl: string,\n"
    "\t# List of interfaces implemented by this service\n"
    "\tinterfaces: []string\n"
    ")\n"
    "\n"
    "# Get description of an implemented interface in Varlink IDL format\n"
    "method GetInterfaceDescription(\n"
    "\t# Name of interface to query interface description of\n"
    "\tinterface: string\n"
    ") -> (\n"
    "\t# Interface description in Varlink IDL format\n"
    "\tdescription: string\n"
    ")\n"
    "\n"
    "# Error returned if a method is called on an unknown interface\n"
    "error InterfaceNotFound(\n"
    "\t# Name of interface that was called but does not exist\n"
    "\tinterface: string\n"
    ")\n"
    "\n"
    "# Error returned if an unknown method is called on an known interface\n"
    "error MethodNotFound(\n"
    "\t# Name of method that was called but does not exist\n"
    "\tmethod: string\n"
    ")\n"
    "\n"
    "# Error returned if an method is called that is known but not implemented\n"
    "error MethodNotImplemented(\n"
    "\t# Name of method that was called but is not implemented.\n"
    "\tmethod: string\n"
    ")\n"
    "\n"
    "# Error returned if a method is called with an invalid parameter\n"
    "error InvalidParameter(\n"
    "\t# Name of the invalid parameter\n"
    "\tparameter: string\n"
    ")\n"
    "\n"
    "# General permission error\n"
    "error PermissionDenied()\n"
    "\n"
    "# A method was called with the 'more' flag off, but it may only be called with the flag turned on\n"
    "error ExpectedMore()\n";

// A protocol violation: the connection is closed without a reply, as
// sd-varlink does.
Error protocol_error(const std::string& what) { return Error(EPROTO) << "varlink: " << what; }

bool peer_is_root(int fd) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == 0;
}

// The call a message holds. Only the fields the protocol defines, each of
// its type; "upgrade" (the connection changes protocol) is not offered.
Result<VarlinkCall> parse_call(json_object* msg) {
    if (!json_object_is_type(msg, json_type_object)) return protocol_error("a message that is no JSON object");
    VarlinkCall call;
    bool have_method = false;
    json_object_object_foreach(msg, key, val) {
        const std::string_view k(key);
        if (k == "method" && json_object_is_type(val, json_type_string)) {
            call.method = json_object_get_string(val);
            have_method = true;
        } else if (k == "parameters" && json_object_is_type(val, json_type_object))
            call.parameters = val;
        else if (k == "more" && json_object_is_type(val, json_type_boolean))
            call.more = json_object_get_boolean(val);
        else if (k == "oneway" && json_object_is_type(val, json_type_boolean))
            call.oneway = json_object_get_boolean(val);
        else
            return protocol_error("unexpected field '" + std::string(k) + "' in a call");
    }
    if (!have_method) return protocol_error("a call without a method");
    if (call.more && call.oneway) return protocol_error("a call with both 'more' and 'oneway'");
    return call;
}

const VarlinkInterface* find_interface(const VarlinkService& s, const std::string& name) {
    for (const auto& i : s.interfaces)
        if (i.name == name) return &i;
    return nullptr;
}

void get_info(const VarlinkService& s, VarlinkReplier& r) {
    std::vector<std::string> names{"org.varlink.service"};
    for (const auto& i : s.interfaces) names.push_back(i.name);
    std::sort(names.begin(), names.end());
    json_object* o = json_object_new_object();
    json_object_object_add(o, "vendor", json_object_new_string(s.vendor.c_str()));
    json_object_object_add(o, "product", json_object_new_string(s.product.c_str()));
    json_object_object_add(o, "version", json_object_new_string(s.version.c_str()));
    json_object_object_add(o, "url", json_object_new_string(s.url.c_str()));
    json_object* arr = json_object_new_array();
    for (const auto& n : names) json_object_array_add(arr, json_object_new_string(n.c_str()));
    json_object_object_add(o, "interfaces", arr);
    r.reply(o);
}

void get_interface_description(const VarlinkService& s, const VarlinkCall& call, VarlinkReplier& r) {
    if (!check_parameters(call, {{"interface", ParamType::String}}, r)) return;
    json_object* name = nullptr;
    if (!json_object_object_get_ex(call.parameters, "interface", &name)) return r.invalid_parameter("interface");
    const std::string n = json_object_get_string(name);
    const VarlinkInterface* i = find_interface(s, n);
    if (!i && n != "org.varlink.service") {
        json_object* p = json_object_new_object();
        json_object_object_add(p, "interface", json_object_new_string(n.c_str()));
        return r.error("org.varlink.service.InterfaceNotFound", p);
    }
    json_object* o = json_object_new_object();
    json_object_object_add(o, "description", json_object_new_string(i ? i->description.c_str() : kServiceIdl));
    r.reply(o);
}

void dispatch(const VarlinkService& s, const VarlinkCall& call, VarlinkReplier& r) {
    if (call.method == "org.varlink.service.GetInfo") {
        if (check_parameters(call, {}, r)) get_info(s, r);
        return;
    }
    if (call.method == "org.varlink.service.GetInterfaceDescription") return get_interface_description(s, call, r);
    if (call.method.rfind("org.varlink.service.", 0) != 0 && s.handle(call, r)) return;
    json_object* p = json_object_new_object();
    json_object_object_add(p, "method", json_object_new_string(call.method.c_str()));
    r.error("org.varlink.service.MethodNotFound", p);
}

Result<void> handle_message(int fd, const std::string& text, const VarlinkService& s) {
    std::unique_ptr<json_tokener, decltype(&json_tokener_free)> tok(json_tokener_new_ex(32), &json_tokener_free);
    if (!tok) return Error(ENOMEM) << "varlink: cannot parse";
    JsonRef msg = json_ref(json_tokener_parse_ex(tok.get(), text.data(), static_cast<int>(text.size())));
    if (!msg || json_tokener_get_error(tok.get()) != json_tokener_success ||
        json_tokener_get_parse_end(tok.get()) != text.size())
        return protocol_error("a message that is not one JSON value");
    auto call = parse_call(msg.get());
    if (!call) return call.error();
    JsonRef empty = json_ref(json_object_new_object());
    if (!call->parameters) call->parameters = empty.get();
    VarlinkReplier r(fd, call->oneway);
    dispatch(s, *call, r);
    if (r.failed()) return Error(EPIPE) << "varlink: the peer went away";
    return {};
}

// Calls on one connection, in order, until the peer hangs up.
Result<void> serve_connection(int fd, const VarlinkService& s) {
    if (!peer_is_root(fd)) return Error(EPERM) << "varlink: refusing a peer that is not root";
    // Replies are written whole: a blocking socket, whatever the manager passed.
    if (int fl = ::fcntl(fd, F_GETFL); fl >= 0 && (fl & O_NONBLOCK)) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    std::string buf;
    char chunk[16384];
    for (;;) {
        size_t end;
        while ((end = buf.find('\0')) == std::string::npos) {
            if (buf.size() > kMaxVarlinkMessage)
                return protocol_error("a message over " + std::to_string(kMaxVarlinkMessage) + " bytes");
            struct pollfd p {fd, POLLIN, 0};
            const int n = ::poll(&p, 1, kConnectionIdleMs);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::sys(errno) << "varlink: poll";
            if (n == 0) return Error(ETIMEDOUT) << "varlink: no call for " << kConnectionIdleMs / 1000 << " s";
            const ssize_t got = ::read(fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got == 0 || (got < 0 && errno == ECONNRESET)) return {};
            if (got < 0) return Error::sys(errno) << "varlink: read";
            buf.append(chunk, static_cast<size_t>(got));
        }
        const std::string text = buf.substr(0, end);
        buf.erase(0, end + 1);
        if (text.size() > kMaxVarlinkMessage)
            return protocol_error("a message over " + std::to_string(kMaxVarlinkMessage) + " bytes");
        if (auto h = handle_message(fd, text, s); !h) return h.error();
    }
}

bool is_listening(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

int socket_option(int fd, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    return ::getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}

}  // namespace

void VarlinkReplier::send(json_object* message) {
    JsonRef owned = json_ref(message);
    if (oneway_ || failed_) return;
    const char* text = json_object_to_json_string_ext(message, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    const size_t len = std::strlen(text) + 1;  // the NUL ends the message
    for (size_t off = 0; off < len;) {
        const ssize_t n = ::send(fd_, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failed_ = true;
            return;
        }
        off += static_cast<size_t>(n);
    }
}

void VarlinkReplier::reply(json_object* parameters, bool continues) {
    json_object* m = json_object_new_object();
    json_object_object_add(m, "parameters", parameters ? parameters : json_object_new_object());
    if (continues) json_object_object_add(m, "continues", json_object_new_boolean(true));
    send(m);
}

void VarlinkReplier::error(const std::string& name, json_object* parameters) {
    json_object* m = json_object_new_object();
    json_object_object_add(m, "error", json_object_new_string(name.c_str()));
    json_object_object_add(m, "parameters", parameters ? parameters : json_object_new_object());
    send(m);
}

void VarlinkReplier::invalid_parameter(const std::string& name) {
    json_object* p = json_object_new_object();
    json_object_object_add(p, "parameter", json_object_new_string(name.c_str()));
    error("org.varlink.service.InvalidParameter", p);
}

bool check_parameters(const VarlinkCall& call, const std::vector<ParamSpec>& specs, VarlinkReplier& r) {
    json_object_object_foreach(call.parameters, key, val) {
        auto spec = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return std::strcmp(s.name, key) == 0; });
        const json_type want = spec == specs.end() ? json_type_null
                               : spec->type == ParamType::String ? json_type_string : json_type_boolean;
        if (spec == specs.end() || !json_object_is_type(val, want)) {
            r.invalid_parameter(key);
            return false;
        }
    }
    return true;
}

Result<int> varlink_listen_fd(bool need_name) {
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    const char* names = std::getenv("LISTEN_FDNAMES");
    if (!pid || !fds || std::to_string(::getpid()) != pid)
        return Error(ENXIO) << "no socket passed (LISTEN_FDS): rdext varlink is started by rdext-sysext.socket";
    if (std::string_view(fds) != "1") return Error(EINVAL) << "expects one socket, LISTEN_FDS=" << fds;
    if (need_name && (!names || std::string_view(names) != "varlink"))
        return Error(ENXIO) << "the socket passed is not named 'varlink'";
    constexpr int fd = 3;  // SD_LISTEN_FDS_START
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || socket_option(fd, SO_DOMAIN) != AF_UNIX ||
        socket_option(fd, SO_TYPE) != SOCK_STREAM)
        return Error(ENOTSOCK) << "fd 3 is not a unix stream socket";
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    // Nothing rdext starts (depmod) is the socket's service.
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return fd;
}

Result<void> varlink_serve(int fd, const VarlinkService& service, int idle_exit_ms) {
    if (!is_listening(fd)) return serve_connection(fd, service);
    for (;;) {
        struct pollfd p {fd, POLLIN, 0};
        const int n = ::poll(&p, 1, idle_exit_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::sys(errno) << "varlink: poll";
        if (n == 0) return {};  // idle: the socket unit starts us again on the next connection
        UniqueFd conn(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
            return Error::sys(errno) << "varlink: accept";
        }
        if (auto r = serve_connection(conn.get(), service); !r) log_warning() << r.error().what();
    }
}

}  // namespace rdext
