// Logging as a stream: `log_warning() << "image " << name << ": " << why;`
// One record per statement. Sinks: stderr (default), /dev/kmsg records
// ("<prio>rdext: ...", used in the initrd where stderr may go nowhere), and
// a capture buffer for tests. Library code returns errors; the pipeline logs
// once, where the decision is made.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace rdext {

// syslog priorities, so kmsg records carry them unchanged.
enum class LogLevel { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

enum class LogSink { Stderr, Kmsg, Capture };

void log_set_level(LogLevel level);
LogLevel log_level();
void log_set_sink(LogSink sink);
// Parses "err", "warning", "notice", "info", "debug" or 3..7.
bool parse_log_level(const std::string& s, LogLevel* out);

struct CapturedLog {
    LogLevel level;
    std::string text;
};
// Records captured with LogSink::Capture (tests).
std::vector<CapturedLog>& log_captured();

class LogRecord {
public:
    explicit LogRecord(LogLevel level) : level_(level) {}
    LogRecord(const LogRecord&) = delete;
    ~LogRecord();
    template <typename V>
    LogRecord& operator<<(const V& v) {
        s_ << v;
        return *this;
    }

private:
    LogLevel level_;
    std::ostringstream s_;
};

// A for-statement rather than if/else so a log line inside an unbraced if
// cannot capture a following else; the arguments are not evaluated when
// the level is filtered out.
#define RDEXT_LOG(lvl) \
    for (bool rdext_log_once_ = (lvl) <= ::rdext::log_level(); rdext_log_once_; rdext_log_once_ = false) \
    ::rdext::LogRecord(lvl)

#define log_error() RDEXT_LOG(::rdext::LogLevel::Error)
#define log_warning() RDEXT_LOG(::rdext::LogLevel::Warning)
#define log_notice() RDEXT_LOG(::rdext::LogLevel::Notice)
#define log_info() RDEXT_LOG(::rdext::LogLevel::Info)
#define log_debug() RDEXT_LOG(::rdext::LogLevel::Debug)

}  // namespace rdext
