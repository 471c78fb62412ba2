// Runs a callable on scope exit unless disarmed: the undo step of a
// half-built resource, cancelled at the one point where it is accepted.
#pragma once

#include <utility>

namespace rdext {

template <typename F>
class ScopeGuard {
public:
    explicit ScopeGuard(F f) : f_(std::move(f)) {}
    ScopeGuard(ScopeGuard&& o) noexcept : f_(std::move(o.f_)), armed_(std::exchange(o.armed_, false)) {}
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
    ~ScopeGuard() {
        if (armed_) f_();
    }
    void disable() { armed_ = false; }

private:
    F f_;
    bool armed_ = true;
};

}  // namespace rdext
