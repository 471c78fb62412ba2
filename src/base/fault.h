// Fault injection for tests: builds with -DRDEXT_FAULT_INJECTION=ON make
// the Nth pass through a named failure point fail when the environment says
// RDEXT_FAULT=NAME:N (N counts from 1). Release builds compile the points
// to nothing. Tests use it to prove every failure path leaves the root as
// it was.
#pragma once

#include "base/result.h"

namespace rdext {

#ifdef RDEXT_FAULT_INJECTION
Result<void> fault_point(const char* name);
#else
inline Result<void> fault_point(const char*) { return {}; }
#endif

}  // namespace rdext
