// Result<T>: a value or an Error, with std::expected's member names so a
// later move to C++23 is a search-and-replace. Errors carry an errno (0 when
// none applies) and a message built by streaming context:
//   return ErrnoError() << "open " << path;         // "open x: No such file..."
//   return Error(EBADMSG) << "binary content";      // the message says it all
// A failed system call (SysError/ErrnoError) shows strerror in what(); an
// error whose message is the whole explanation carries its code only for
// callers that branch on it.
#pragma once

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace rdext {

class Error {
public:
    explicit Error(int err = 0) : errno_(err) {}

    // An error from a failed system call: what() appends strerror.
    static Error sys(int err) {
        Error e(err);
        e.syscall_ = true;
        return e;
    }

    template <typename V>
    Error& operator<<(const V& v) & {
        std::ostringstream s;
        s << v;
        message_ += s.str();
        return *this;
    }
    template <typename V>
    Error&& operator<<(const V& v) && {
        return std::move(*this << v);
    }

    int code() const { return errno_; }
    // The message, with ": strerror" appended for a failed system call.
    std::string what() const {
        if (!syscall_ || errno_ == 0) return message_;
        return message_ + ": " + std::strerror(errno_);
    }
    const std::string& message() const { return message_; }

    // Prefix more context ("while doing X: " + inner).
    Error& prefix(const std::string& p) {
        message_ = p + message_;
        return *this;
    }

private:
    int errno_;
    bool syscall_ = false;
    std::string message_;
};

// Error carrying the current errno; call it right after the failing syscall.
inline Error ErrnoError() { return Error::sys(errno); }

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T& operator*() & { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }
    Error& error() { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), ok_(false) {}

    bool has_value() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return err_; }
    Error& error() { return err_; }

private:
    Error err_;
    bool ok_ = true;
};

// Propagate an error from an expression returning Result<...>.
#define RDEXT_TRY(expr)                                   \
    do {                                                  \
        auto rdext_try_r_ = (expr);                       \
        if (!rdext_try_r_) return rdext_try_r_.error();   \
    } while (0)

}  // namespace rdext
