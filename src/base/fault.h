// Fault injection for tests: builds with -DRDEXT_FAULT_INJECTION=ON make
// the Nth pass through a named failure point fail when the environment says
// RDEXT_FAULT=NAME:N (N counts from 1). Release builds compile the points
// to nothing. Tests use it to prove every failure path leaves the root as
// it was.
//
// Two more test hooks ride on the same points:
//   RDEXT_FAULT_TRACE=1  logs every pass ("fault point NAME:N"), so a test
//                        can enumerate the points a run goes through;
//   RDEXT_FAULT_PAUSE=NAME:N,FILE  at that pass, creates FILE and waits
//                        (up to 60 s) until the test removes it, so the test
//                        can change the root at that moment (e.g. swap an
//                        image between its checks and its mount).
#pragma once

#include "base/result.h"

namespace rdext {

#ifdef RDEXT_FAULT_INJECTION
Result<void> fault_point(const char* name);
// Whether a test asked for any of the above: the run is then kept on one
// thread (base/parallel.h), so the Nth pass is the same pass every time.
bool fault_injection_active();
#else
inline Result<void> fault_point(const char*) { return {}; }
inline bool fault_injection_active() { return false; }
#endif

}  // namespace rdext
