#include "release/os_release.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/fault.h"
#include "base/fd.h"
#include "base/fs.h"
#include "release/release_utf8.h"

namespace rdext {
namespace {

bool is_newline(char c) { return c == '\n' || c == '\r'; }
bool is_whitespace(char c) { return c == ' ' || c == '\t' || is_newline(c); }
bool is_comment_start(char c) { return c == '#' || c == ';'; }
// Characters a backslash escapes inside double quotes, as in the shell.
bool is_shell_escapable(char c) { return c == '"' || c == '\\' || c == '`' || c == '$'; }

bool env_name_is_valid(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        if (!ok) return false;
    }
    return true;
}

// A character-at-a-time state machine with the same states and transitions
// as systemd's parse_env_file(), so odd but real-world files ("ID = x",
// ID="a"'b', unterminated quotes at the end) mean the same to both tools.
class EnvFileParser {
public:
    Result<ReleaseFields> parse(std::string_view text) {
        for (char c : text) {
            if (auto r = step(c); !r) return r.error();
        }
        if (state_ != State::PreKey && state_ != State::Key && state_ != State::Comment) {
            if (auto r = finish_assignment(); !r) return r.error();
        }
        return std::move(fields_);
    }

private:
    enum class State { PreKey, Key, PreValue, Value, ValueEscape, Single, Double, DoubleEscape, Comment };

    Result<void> step(char c) {
        switch (state_) {
            case State::PreKey: on_pre_key(c); return {};
            case State::Key: on_key(c); return {};
            case State::PreValue:
                if (is_newline(c)) return end_line();
                on_pre_value(c);
                return {};
            case State::Value:
                if (is_newline(c)) return end_line();
                on_value(c);
                return {};
            case State::ValueEscape:
                // A backslash-newline continues the value on the next line.
                if (!is_newline(c)) value_ += c;
                state_ = State::Value;
                return {};
            case State::Single:
                if (c == '\'') state_ = State::PreValue;
                else value_ += c;
                return {};
            case State::Double:
                if (c == '"') state_ = State::PreValue;
                else if (c == '\\') state_ = State::DoubleEscape;
                else value_ += c;
                return {};
            case State::DoubleEscape: on_double_escape(c); return {};
            case State::Comment:
                // Since systemd 254 a comment ends at the newline even after a
                // trailing backslash.
                if (is_newline(c)) state_ = State::PreKey;
                return {};
        }
        return {};
    }

    void on_pre_key(char c) {
        if (is_comment_start(c)) {
            state_ = State::Comment;
        } else if (!is_whitespace(c)) {
            key_.assign(1, c);
            state_ = State::Key;
        }
    }

    void on_key(char c) {
        if (is_newline(c)) {  // no '=' on this line: not an assignment
            key_.clear();
            state_ = State::PreKey;
        } else if (c == '=') {
            value_.clear();
            trailing_ws_ = std::string::npos;
            state_ = State::PreValue;
        } else {
            key_ += c;
        }
    }

    void on_pre_value(char c) {
        if (c == '\'') state_ = State::Single;
        else if (c == '"') state_ = State::Double;
        else if (c == '\\') state_ = State::ValueEscape;
        else if (!is_whitespace(c)) {
            value_ += c;
            state_ = State::Value;
        }
    }

    // Unquoted text: whitespace inside is kept, a trailing run is dropped.
    void on_value(char c) {
        if (c == '\\') {
            trailing_ws_ = std::string::npos;
            state_ = State::ValueEscape;
            return;
        }
        if (!is_whitespace(c)) trailing_ws_ = std::string::npos;
        else if (trailing_ws_ == std::string::npos) trailing_ws_ = value_.size();
        value_ += c;
    }

    // Like the shell: only \" \\ \` \$ lose their backslash; an escaped
    // newline joins lines; any other pair is kept as written.
    void on_double_escape(char c) {
        state_ = State::Double;
        if (is_shell_escapable(c)) {
            value_ += c;
        } else if (c != '\n') {
            value_ += '\\';
            value_ += c;
        }
    }

    Result<void> end_line() {
        auto r = finish_assignment();
        state_ = State::PreKey;
        return r;
    }

    Result<void> finish_assignment() {
        if (state_ == State::Value && trailing_ws_ != std::string::npos) value_.resize(trailing_ws_);
        trailing_ws_ = std::string::npos;
        size_t key_end = key_.find_last_not_of(" \t");
        key_.resize(key_end == std::string::npos ? 0 : key_end + 1);
        if (!utf8_is_valid(key_))
            return Error(EBADMSG) << "binary content: a key is not valid UTF-8";
        if (!utf8_is_valid(value_))
            return Error(EBADMSG) << "binary content: the value of " << key_ << " is not valid UTF-8";
        // systemd keeps such keys but nothing ever looks them up ("export ID"
        // is not "ID"); dropping them keeps the map to real variables.
        if (env_name_is_valid(key_)) fields_[key_] = value_;
        key_.clear();
        value_.clear();
        return {};
    }

    State state_ = State::PreKey;
    std::string key_;
    std::string value_;
    size_t trailing_ws_ = std::string::npos;
    ReleaseFields fields_;
};

}  // namespace

Result<ReleaseFields> parse_os_release(std::string_view text) {
    // systemd reads these files as C strings and refuses an embedded NUL
    // rather than silently truncating at it.
    if (size_t nul = text.find('\0'); nul != std::string_view::npos)
        return Error(EBADMSG) << "binary content: NUL byte at offset " << nul;
    return EnvFileParser().parse(text);
}

Result<ReleaseFields> read_release_fd(int fd, const std::string& what) {
    if (auto f = fault_point("release-file"); !f) return f.error().prefix(what + ": ");
    auto st = stat_fd(fd);
    if (!st) return st.error().prefix(what + ": ");
    if (!S_ISREG(st->st_mode)) return Error(EBADFD) << what << " is not a regular file";
    auto text = read_regular_file(fd, kMaxReleaseFileSize);
    if (!text) {
        if (text.error().code() == E2BIG)
            return Error(E2BIG) << what << " is too large for a release file ("
                                << text.error().message() << ")";
        return text.error().prefix("reading " + what + ": ");
    }
    auto fields = parse_os_release(*text);
    if (!fields) return fields.error().prefix(what + ": ");
    return fields;
}

Result<ReleaseFields> read_host_os_release(int root_fd) {
    // Only a missing file moves on to the next location (as in systemd): an
    // unreadable /etc/os-release must not silently be replaced by another.
    for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
        // Regular files only: a FIFO planted there must not hang the boot,
        // nor a device be opened.
        auto fd = open_regular_in_root(root_fd, path);
        if (!fd) {
            if (fd.error().code() == ENOENT) continue;
            return fd.error().prefix("cannot open the OS's os-release: ");
        }
        return read_release_fd(fd->get(), path);
    }
    return Error(ENOENT) << "the target root has neither /etc/os-release nor /usr/lib/os-release";
}

std::string release_value(const ReleaseFields& fields, const std::string& key) {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second;
}

}  // namespace rdext
