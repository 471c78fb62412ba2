#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace rdext {
namespace {

LogLevel g_level = LogLevel::Info;
LogSink g_sink = LogSink::Stderr;

std::vector<CapturedLog>& captured() {
    static std::vector<CapturedLog> records;
    return records;
}

// One write(2) per record: the kernel turns each write to /dev/kmsg into one
// record, and a single write keeps stderr lines whole between processes.
void write_all(int fd, const std::string& s) {
    (void)!::write(fd, s.data(), s.size());
}

void emit_kmsg(LogLevel level, const std::string& text) {
    static int fd = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        write_all(STDERR_FILENO, "rdext: " + text + "\n");
        return;
    }
    write_all(fd, "<" + std::to_string(static_cast<int>(level)) + ">rdext: " + text + "\n");
}

// Names and paths in messages come from the untrusted root; a newline in
// one must not forge a second record. Control characters become \xNN.
std::string escape_controls(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }
void log_set_sink(LogSink sink) { g_sink = sink; }
std::vector<CapturedLog>& log_captured() { return captured(); }

bool parse_log_level(const std::string& s, LogLevel* out) {
    static const struct {
        const char* name;
        LogLevel level;
    } names[] = {
        {"err", LogLevel::Error},       {"error", LogLevel::Error},   {"3", LogLevel::Error},
        {"warning", LogLevel::Warning}, {"warn", LogLevel::Warning},  {"4", LogLevel::Warning},
        {"notice", LogLevel::Notice},   {"5", LogLevel::Notice},      {"info", LogLevel::Info},
        {"6", LogLevel::Info},          {"debug", LogLevel::Debug},   {"7", LogLevel::Debug},
    };
    for (const auto& n : names)
        if (s == n.name) {
            *out = n.level;
            return true;
        }
    return false;
}

LogRecord::~LogRecord() {
    std::string text = escape_controls(s_.str());
    switch (g_sink) {
        case LogSink::Stderr: {
            const char* tag = level_ == LogLevel::Error     ? "error: "
                              : level_ == LogLevel::Warning ? "warning: "
                                                            : "";
            write_all(STDERR_FILENO, std::string("rdext: ") + tag + text + "\n");
            break;
        }
        case LogSink::Kmsg:
            emit_kmsg(level_, text);
            break;
        case LogSink::Capture: {
            // Images are staged on several threads (base/parallel.h).
            static std::mutex lock;
            std::lock_guard<std::mutex> hold(lock);
            captured().push_back({level_, std::move(text)});
            break;
        }
    }
}

}  // namespace rdext
